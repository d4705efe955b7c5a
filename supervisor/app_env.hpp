// The app's environment variables (-e/--env KEY=VALUE). The master sets them just before it
// forks a template or a cold worker, to the list of the config that child runs: a reload's
// variables reach only its own generation, and one dropped from the list is unset again
// (or given back the value rotor started with).
#pragma once

#include <set>
#include <string>
#include <vector>

#include "conf/load.hpp"

namespace rotor {

class AppEnv {
 public:
  explicit AppEnv(const conf::Environment& original) : original_(original) {}

  // Each item is KEY=VALUE (checked by the option table); a later one wins.
  void apply(const std::vector<std::string>& assignments);

 private:
  const conf::Environment& original_;
  std::set<std::string> set_;  // keys the last apply() set
};

}  // namespace rotor
