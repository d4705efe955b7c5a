// Paths relative to rotor's own executable: a wheel's rotor finds its virtualenv, an installed
// rotor its plugins in ../lib/rotor.
#pragma once

#include <string>

namespace rotor::conf {

// The directory part of `path` ("." when it has none, "/" for a file at the root).
std::string parent_dir(const std::string& path);

// /proc/self/exe, or "" when it cannot be read.
std::string self_executable();

}  // namespace rotor::conf
