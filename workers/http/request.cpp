#include "workers/http/request.hpp"

#include <llhttp.h>

namespace rotor::http {

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
