// The app's environment variables (-e/--env KEY=VALUE), exported by the master so that every
// process it forks afterwards, the template's import included, inherits them.
#pragma once

#include <string>
#include <vector>

namespace rotor {

// Each item is KEY=VALUE (checked by the option table); a later one wins.
void export_app_env(const std::vector<std::string>& assignments);

}  // namespace rotor
