// A small JSON value, enough for the control socket's one-line requests and replies: parse with
// a depth and size the caller bounds, dump on one line. Numbers are doubles (pids and counts fit).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace rotor::json {

struct Value;
using Array = std::vector<Value>;
using Object = std::vector<std::pair<std::string, Value>>;  // in insertion order

struct Value {
  std::variant<std::nullptr_t, bool, double, std::string, Array, Object> v = nullptr;

  Value() = default;
  Value(std::nullptr_t) {}
  Value(bool b) : v(b) {}
  Value(double d) : v(d) {}
  Value(int64_t i) : v(static_cast<double>(i)) {}
  Value(uint64_t i) : v(static_cast<double>(i)) {}
  Value(int i) : v(static_cast<double>(i)) {}
  Value(unsigned i) : v(static_cast<double>(i)) {}
  Value(const char* s) : v(std::string(s)) {}
  Value(std::string s) : v(std::move(s)) {}
  Value(Array a) : v(std::move(a)) {}
  Value(Object o) : v(std::move(o)) {}

  const std::string* string() const { return std::get_if<std::string>(&v); }
  const double* number() const { return std::get_if<double>(&v); }
  const bool* boolean() const { return std::get_if<bool>(&v); }
  const Array* array() const { return std::get_if<Array>(&v); }
  const Object* object() const { return std::get_if<Object>(&v); }
  // The member `key` of an object; nullptr when this is no object or has no such member.
  const Value* get(std::string_view key) const;
};

// One JSON text (surrounding whitespace allowed); nothing, with `error` set, when it is not.
std::optional<Value> parse(std::string_view text, std::string* error);
// On one line, no spaces; integral numbers without a fraction.
std::string dump(const Value& value);

}  // namespace rotor::json
