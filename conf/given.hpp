// One option's value(s) as one source gave them, before parsing: every source (defaults, a
// config file, the environment, a command line) is turned into these, and one parser per kind
// reads them all (conf/values.cpp).
#pragma once

#include <string>
#include <vector>

#include "conf/options.hpp"

namespace rotor::conf {

struct Given {
  const Option* option;
  std::string where;               // names the source in messages: "--workers", "ROTOR_WORKERS"
  std::vector<std::string> texts;  // one per list item; scalars: the last one wins
};
using Layer = std::vector<Given>;

}  // namespace rotor::conf
