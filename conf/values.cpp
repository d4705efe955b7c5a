// One parser per option kind. Parsers are strict (no trimming, no partial numbers): a value that
// is not exactly right is an error, never silently something else.
#include "conf/values.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <type_traits>

namespace rotor::conf {
namespace {

std::string number(double v) {
  char buf[32];
  return std::string(buf, std::to_chars(buf, buf + sizeof buf, v).ptr);
}

std::string range(double min, double max) {
  if (max == kUnbounded) return ">= " + number(min);
  return "in " + number(min) + ".." + number(max);
}

std::string range(const Option& option) {
  return range(option.min, option.max);
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool in_range(const Option& option, double v) {
  return v >= option.min && v <= option.max;
}

Parsed parse_int(const Option& option, std::string_view text) {
  std::string words;
  for (auto [word, value] : option.words) {
    if (lower(text) == word) return {value, ""};
    words += " or " + std::string(word);
  }
  int64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() ||
      !in_range(option, static_cast<double>(v)))
    return {{}, "expected an integer " + range(option) + words};
  return {v, ""};
}

Parsed parse_seconds(const Option& option, std::string_view text) {
  double v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  double max = std::min(option.max, kMaxSeconds);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || !std::isfinite(v) ||
      v < option.min || v > max)
    return {{}, "expected a number of seconds " + range(option.min, max)};
  if (option.check) {
    if (std::string problem = option.check(text); !problem.empty()) return {{}, problem};
  }
  return {v + 0.0, ""};  // + 0.0 turns "-0" into 0
}

Parsed parse_bool(std::string_view text) {
  std::string v = lower(text);
  if (v == "true" || v == "1" || v == "yes" || v == "on") return {true, ""};
  if (v == "false" || v == "0" || v == "no" || v == "off") return {false, ""};
  return {{}, "expected true or false"};
}

Parsed parse_choice(const Option& option, std::string_view text) {
  std::string list;
  for (auto [alias, choice] : option.aliases) {
    if (lower(text) == lower(alias)) return {std::string(choice), ""};
  }
  for (std::string_view choice : option.choices) {
    if (lower(text) == choice) return {std::string(choice), ""};  // gunicorn lowercases too
    list += (list.empty() ? "" : ", ") + std::string(choice);
  }
  return {{}, "expected one of " + list};
}

// Like gunicorn's umask (Python's int(x, 0) after rewriting a leading 0 to 0o), except that a
// bare decimal is refused: "18" is far more likely a mistyped octal than a wanted 0o22.
Parsed parse_octal(const Option& option, std::string_view text) {
  int base = 0;  // 0: not a mode
  std::string_view digits = text;
  if (text.size() > 1 && text[0] == '0' && std::isalpha(static_cast<unsigned char>(text[1]))) {
    char prefix = static_cast<char>(std::tolower(static_cast<unsigned char>(text[1])));
    base = prefix == 'o' ? 8 : prefix == 'x' ? 16 : prefix == 'b' ? 2 : 0;
    digits = text.substr(2);
  } else if (text.starts_with('0')) {
    base = 8;
  }
  uint64_t v = 0;  // unsigned: from_chars then refuses a sign
  auto [end, ec] =
      std::from_chars(digits.data(), digits.data() + digits.size(), v, base ? base : 8);
  if (base == 0 || digits.empty() || ec != std::errc() || end != digits.data() + digits.size() ||
      !in_range(option, static_cast<double>(v))) {
    char max[24];
    auto max_end = std::to_chars(max, max + sizeof max, static_cast<int64_t>(option.max), 8).ptr;
    return {{}, "expected an octal mode like 022 or 0o22, at most 0o" + std::string(max, max_end)};
  }
  return {static_cast<int64_t>(v), ""};
}

Parsed parse_string(const Option& option, std::string_view text) {
  if (option.check) {
    if (std::string problem = option.check(text); !problem.empty()) return {{}, problem};
  }
  return {std::string(text), ""};
}

}  // namespace

Parsed parse_value(const Option& option, std::string_view text) {
  switch (option.kind) {
    case Kind::kInt:
      return parse_int(option, text);
    case Kind::kSeconds:
      return parse_seconds(option, text);
    case Kind::kBool:
      return parse_bool(text);
    case Kind::kChoice:
      return parse_choice(option, text);
    case Kind::kOctal:
      return parse_octal(option, text);
    case Kind::kString:
    case Kind::kStringList:
      return parse_string(option, text);
  }
  return {{}, "unknown option kind"};
}

void assign(const Option& option, const std::vector<Value>& values, Config& config) {
  std::visit(
      [&](auto member) {
        using T = std::remove_reference_t<decltype(config.*member)>;
        if constexpr (std::is_same_v<T, std::vector<std::string>>) {
          T items;
          for (const Value& v : values) items.push_back(std::get<std::string>(v));
          config.*member = std::move(items);
        } else if (!values.empty()) {
          config.*member = std::get<T>(values.back());  // throws if kind and member disagree
        }
      },
      option.member);
}

std::vector<std::string> split_list(std::string_view text) {
  std::vector<std::string> items;
  std::string item;
  for (char c : text) {
    if (c == ',' || std::isspace(static_cast<unsigned char>(c))) {
      if (!item.empty()) items.push_back(std::move(item));
      item.clear();
    } else {
      item += c;
    }
  }
  if (!item.empty()) items.push_back(std::move(item));
  return items;
}

}  // namespace rotor::conf
