#include "workers/http/target.hpp"

#include "workers/http/grammar.hpp"

namespace rotor::http {

namespace {

// Percent signs are followed by two hex digits.
bool valid_escapes(std::string_view s) {
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') continue;
    if (i + 2 >= s.size()) return false;
    if (!in_class(s[i + 1], kHexDigit) || !in_class(s[i + 2], kHexDigit)) return false;
    i += 2;
  }
  return true;
}

// uri-host: IP-literal, IPv4address or reg-name (RFC 3986 section 3.2.2).
bool valid_uri_host(std::string_view h) {
  if (h.empty()) return false;
  if (h.front() == '[') {
    if (h.size() < 3 || h.back() != ']') return false;
    std::string_view in = h.substr(1, h.size() - 2);
    if (in.front() == 'v' || in.front() == 'V') {  // IPvFuture
      size_t dot = in.find('.');
      if (dot == std::string_view::npos || dot < 2 || dot + 1 == in.size()) return false;
      for (size_t i = 1; i < dot; ++i)
        if (!in_class(in[i], kHexDigit)) return false;
      for (size_t i = dot + 1; i < in.size(); ++i)
        if (!in_class(in[i], kRegNameChar) && in[i] != ':') return false;
      return true;
    }
    for (char c : in)
      if (!in_class(c, kHexDigit) && c != ':' && c != '.') return false;
    return in.find(':') != std::string_view::npos;
  }
  for (size_t i = 0; i < h.size(); ++i) {
    if (h[i] == '%') {
      if (i + 2 >= h.size() || !in_class(h[i + 1], kHexDigit) || !in_class(h[i + 2], kHexDigit)) {
        return false;
      }
      i += 2;
    } else if (!in_class(h[i], kRegNameChar)) {
      return false;
    }
  }
  return true;
}

// host [":" port], host required; `port_required` for authority-form.
bool valid_authority(std::string_view a, bool port_required) {
  size_t colon = std::string_view::npos;
  if (!a.empty() && a.front() == '[') {
    size_t close = a.find(']');
    if (close == std::string_view::npos) return false;
    if (close + 1 < a.size()) {
      if (a[close + 1] != ':') return false;
      colon = close + 1;
    }
  } else {
    colon = a.rfind(':');
  }
  std::string_view host = a.substr(0, colon);
  std::string_view port = colon == std::string_view::npos ? "" : a.substr(colon + 1);
  if (!valid_uri_host(host)) return false;
  if (port_required && port.empty()) return false;
  for (char c : port)
    if (!is_digit(c)) return false;
  return true;
}

}  // namespace

bool valid_host(std::string_view value) {
  return value.empty() || valid_authority(value, false);
}

namespace {

uint32_t offset(std::string_view whole, std::string_view part) {
  return static_cast<uint32_t>(part.data() - whole.data());
}

// "http://authority[/path][?query]" or https: only the schemes this server answers for. On
// success `*rest` is what follows the authority.
const char* check_absolute_form(std::string_view target, std::string_view* rest,
                                TargetParts* parts) {
  size_t colon = target.find(':');
  if (colon == std::string_view::npos) return "invalid request-target";
  std::string_view scheme = target.substr(0, colon);
  bool http = scheme.size() == 4 && iequals(scheme, "http");
  bool https = scheme.size() == 5 && iequals(scheme, "https");
  if (!http && !https) return "invalid request-target";
  std::string_view after = target.substr(colon + 1);
  if (!after.starts_with("//")) return "invalid request-target";
  after.remove_prefix(2);
  size_t path = after.find_first_of("/?");
  std::string_view authority = after.substr(0, path);
  if (authority.find('@') != std::string_view::npos) return "userinfo in request-target";
  if (!valid_authority(authority, false)) return "invalid authority in request-target";
  parts->authority_off = offset(target, authority);
  parts->authority_len = static_cast<uint32_t>(authority.size());
  *rest = after.substr(authority.size());
  return nullptr;
}

}  // namespace

const char* check_target(std::string_view method, std::string_view target, TargetParts* parts) {
  TargetParts unused;
  TargetParts& out = parts ? *parts : unused;
  out = {};
  out.query_off = static_cast<uint32_t>(target.size());
  if (target.empty()) return "empty request-target";
  if (method == "CONNECT") {
    if (!valid_authority(target, true)) return "CONNECT needs an authority-form target";
    out.authority_len = static_cast<uint32_t>(target.size());
    return nullptr;
  }
  if (target == "*") {
    return method == "OPTIONS" ? nullptr : "asterisk-form target is for OPTIONS only";
  }
  std::string_view rest = target;
  if (target.front() != '/') {
    if (const char* why = check_absolute_form(target, &rest, &out)) return why;
  }
  if (!valid_escapes(rest)) return "invalid percent-encoding in request-target";
  out.path_off = offset(target, rest);
  size_t q = rest.find('?');
  if (q != std::string_view::npos) out.query_off = out.path_off + static_cast<uint32_t>(q);
  return nullptr;
}

}  // namespace rotor::http
