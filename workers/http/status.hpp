#pragma once

#include <string_view>

namespace rotor::http {

// "200 OK", "404 Not Found", ...: the status line's code and reason phrase.
std::string_view status_line(int status);

}  // namespace rotor::http
