#include "workers/http/grammar.hpp"

namespace rotor::http {

bool iequals(std::string_view a, std::string_view lower) {
  if (a.size() != lower.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (ascii_lower(a[i]) != lower[i]) return false;
  return true;
}

std::string_view trim_ows(std::string_view v) {
  while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
  while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
  return v;
}

bool next_list_item(std::string_view* list, std::string_view* item) {
  while (!list->empty()) {
    size_t comma = list->find(',');
    *item = trim_ows(list->substr(0, comma));
    list->remove_prefix(comma == std::string_view::npos ? list->size() : comma + 1);
    if (!item->empty()) return true;
  }
  return false;
}

bool is_token(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s)
    if (!in_class(c, kTchar)) return false;
  return true;
}

bool all_digits(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s)
    if (!is_digit(c)) return false;
  return true;
}

bool is_field_value(std::string_view v) {
  for (char c : v)
    if (!in_class(c, kFieldVchar) && c != ' ' && c != '\t') return false;
  return true;
}

}  // namespace rotor::http
