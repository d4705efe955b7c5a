#include "workers/http/request.hpp"

#include <llhttp.h>

namespace rotor::http {

std::string_view trim_ows(std::string_view v) {
  while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
  while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
  return v;
}

bool iequals(std::string_view a, std::string_view lower) {
  if (a.size() != lower.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char c = a[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c + ('a' - 'A'));
    if (c != lower[i]) return false;
  }
  return true;
}

std::string_view Request::method_name() const {
  return llhttp_method_name(static_cast<llhttp_method_t>(method));
}

std::string_view Request::header(std::string_view lower_name) const {
  for (const auto& f : fields) {
    if (iequals(name(f), lower_name)) return value(f);
  }
  return {};
}

}  // namespace rotor::http
