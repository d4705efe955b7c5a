#include "supervisor/json.hpp"

#include <cmath>
#include <cstdlib>

#include <fmt/format.h>

namespace rotor::json {
namespace {

constexpr int kMaxDepth = 16;

class Parser {
 public:
  explicit Parser(std::string_view text) : s_(text) {}

  std::optional<Value> document(std::string* error) {
    auto v = value(0);
    skip_space();
    if (v && i_ != s_.size()) fail("trailing characters");
    if (!error_.empty()) {
      if (error) *error = error_ + " at byte " + std::to_string(i_);
      return std::nullopt;
    }
    return v;
  }

 private:
  std::optional<Value> value(int depth) {
    skip_space();
    if (depth > kMaxDepth) return fail("nested too deeply");
    if (i_ >= s_.size()) return fail("unexpected end");
    char c = s_[i_];
    if (c == '{') return object(depth);
    if (c == '[') return array(depth);
    if (c == '"') {
      auto str = string();
      if (!str) return std::nullopt;
      return Value(std::move(*str));
    }
    if (literal("true")) return Value(true);
    if (literal("false")) return Value(false);
    if (literal("null")) return Value(nullptr);
    return number();
  }

  std::optional<Value> object(int depth) {
    ++i_;
    Object out;
    skip_space();
    if (peek('}')) return Value(std::move(out));
    while (true) {
      skip_space();
      if (i_ >= s_.size() || s_[i_] != '"') return fail("expected a member name");
      auto key = string();
      if (!key) return std::nullopt;
      skip_space();
      if (!peek(':')) return fail("expected ':'");
      auto v = value(depth + 1);
      if (!v) return std::nullopt;
      out.emplace_back(std::move(*key), std::move(*v));
      skip_space();
      if (peek('}')) return Value(std::move(out));
      if (!peek(',')) return fail("expected ',' or '}'");
    }
  }

  std::optional<Value> array(int depth) {
    ++i_;
    Array out;
    skip_space();
    if (peek(']')) return Value(std::move(out));
    while (true) {
      auto v = value(depth + 1);
      if (!v) return std::nullopt;
      out.push_back(std::move(*v));
      skip_space();
      if (peek(']')) return Value(std::move(out));
      if (!peek(',')) return fail("expected ',' or ']'");
    }
  }

  // Escapes other than \uXXXX are kept; \u below 0x80 is decoded, others become UTF-8.
  std::optional<std::string> string() {
    ++i_;
    std::string out;
    while (i_ < s_.size()) {
      char c = s_[i_++];
      if (c == '"') return out;
      if (static_cast<unsigned char>(c) < 0x20) return fail_text("control character in string");
      if (c != '\\') {
        out.push_back(c);
        continue;
      }
      if (i_ >= s_.size()) break;
      char e = s_[i_++];
      switch (e) {
        case '"':
        case '\\':
        case '/':
          out.push_back(e);
          break;
        case 'n':
          out.push_back('\n');
          break;
        case 't':
          out.push_back('\t');
          break;
        case 'r':
          out.push_back('\r');
          break;
        case 'b':
          out.push_back('\b');
          break;
        case 'f':
          out.push_back('\f');
          break;
        case 'u':
          if (!unicode(out)) return fail_text("bad \\u escape");
          break;
        default:
          return fail_text("bad escape");
      }
    }
    return fail_text("unterminated string");
  }

  bool unicode(std::string& out) {
    if (i_ + 4 > s_.size()) return false;
    unsigned cp = 0;
    for (int k = 0; k < 4; ++k) {
      char h = s_[i_++];
      cp <<= 4;
      if (h >= '0' && h <= '9')
        cp |= static_cast<unsigned>(h - '0');
      else if (h >= 'a' && h <= 'f')
        cp |= static_cast<unsigned>(h - 'a' + 10);
      else if (h >= 'A' && h <= 'F')
        cp |= static_cast<unsigned>(h - 'A' + 10);
      else
        return false;
    }
    if (cp < 0x80) {
      out.push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
      out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
      out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
      out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
    return true;
  }

  std::optional<Value> number() {
    size_t start = i_;
    if (i_ < s_.size() && s_[i_] == '-') ++i_;
    size_t digits = i_;
    while (i_ < s_.size() &&
           std::string_view("0123456789.eE+-").find(s_[i_]) != std::string_view::npos)
      ++i_;
    if (i_ == digits) return fail("unexpected character");
    std::string text(s_.substr(start, i_ - start));
    char* end = nullptr;
    double d = std::strtod(text.c_str(), &end);
    if (end != text.c_str() + text.size() || !std::isfinite(d)) return fail("bad number");
    return Value(d);
  }

  void skip_space() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r'))
      ++i_;
  }
  bool peek(char c) {
    if (i_ < s_.size() && s_[i_] == c) {
      ++i_;
      return true;
    }
    return false;
  }
  bool literal(std::string_view word) {
    if (s_.substr(i_, word.size()) != word) return false;
    i_ += word.size();
    return true;
  }
  std::nullopt_t fail(const char* what) {
    if (error_.empty()) error_ = what;
    return std::nullopt;
  }
  std::nullopt_t fail_text(const char* what) { return fail(what); }

  std::string_view s_;
  size_t i_ = 0;
  std::string error_;
};

void dump_string(const std::string& s, std::string& out) {
  out.push_back('"');
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(static_cast<char>(c));
    } else if (c < 0x20) {
      out += fmt::format("\\u{:04x}", c);
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
  out.push_back('"');
}

void dump_to(const Value& value, std::string& out) {
  if (std::holds_alternative<std::nullptr_t>(value.v)) {
    out += "null";
  } else if (auto b = value.boolean()) {
    out += *b ? "true" : "false";
  } else if (auto d = value.number()) {
    if (std::floor(*d) == *d && std::fabs(*d) < 9e15)
      out += fmt::format("{}", static_cast<int64_t>(*d));
    else
      out += fmt::format("{}", *d);
  } else if (auto s = value.string()) {
    dump_string(*s, out);
  } else if (auto a = value.array()) {
    out.push_back('[');
    for (size_t k = 0; k < a->size(); ++k) {
      if (k) out.push_back(',');
      dump_to((*a)[k], out);
    }
    out.push_back(']');
  } else if (auto o = value.object()) {
    out.push_back('{');
    for (size_t k = 0; k < o->size(); ++k) {
      if (k) out.push_back(',');
      dump_string((*o)[k].first, out);
      out.push_back(':');
      dump_to((*o)[k].second, out);
    }
    out.push_back('}');
  }
}

}  // namespace

const Value* Value::get(std::string_view key) const {
  const Object* o = object();
  if (!o) return nullptr;
  for (const auto& member : *o) {
    if (member.first == key) return &member.second;
  }
  return nullptr;
}

std::optional<Value> parse(std::string_view text, std::string* error) {
  return Parser(text).document(error);
}

std::string dump(const Value& value) {
  std::string out;
  dump_to(value, out);
  return out;
}

}  // namespace rotor::json
