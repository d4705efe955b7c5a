// The request-target (RFC 9112 section 3.2) and the Host field (RFC 9110 section 7.2): which
// forms a request may use, and where the parts of its target are.
#pragma once

#include <cstdint>
#include <string_view>

namespace rotor::http {

// Offsets into the target. The path runs from path_off to query_off; query_off is the first
// '?' or the target's end.
struct TargetParts {
  uint32_t path_off = 0, query_off = 0;
  uint32_t authority_off = 0, authority_len = 0;  // absolute-form and authority-form only
};

// Request-target check for `method`: origin-form, absolute-form (http and https),
// authority-form for CONNECT only, asterisk-form for OPTIONS only. Characters are already known
// to be visible ASCII other than '#'. Returns the failure reason, or null (then `parts`, when
// given, says where the parts are).
const char* check_target(std::string_view method, std::string_view target,
                         TargetParts* parts = nullptr);
// Host field value: uri-host [ ":" port ]; empty is allowed.
bool valid_host(std::string_view value);

}  // namespace rotor::http
