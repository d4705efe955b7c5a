// What each option kind accepts: one parser per kind, shared by every source (defaults, TOML
// file, environment, command line), so a value means the same thing wherever it comes from.
#pragma once

#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "conf/config.hpp"
#include "conf/options.hpp"

namespace rotor::conf {

using Value = std::variant<int64_t, double, bool, std::string>;

struct Parsed {
  Value value;
  std::string error;  // "" on success, else "expected ..." (the caller adds where and what)
};

// Parses one value (one item of a list option) as the option's kind and checks it.
Parsed parse_value(const Option& option, std::string_view text);

// Stores parsed values in the option's member: a list takes all of them (replacing what was
// there), a scalar the last one.
void assign(const Option& option, const std::vector<Value>& values, Config& config);

// The environment's list syntax: items separated by commas and/or whitespace.
std::vector<std::string> split_list(std::string_view text);

}  // namespace rotor::conf
