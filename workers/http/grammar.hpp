// HTTP's character classes and the small string rules built on them (RFC 9110 section 5.6,
// RFC 9112, RFC 3986 for targets and hosts), in one place: the parser, the response checks, the
// WebSocket handshake, the scope builder and the option checks all call these.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

namespace rotor::http {

enum CharClass : uint8_t {
  kTchar = 1,         // token character (RFC 9110 section 5.6.2)
  kTargetChar = 2,    // visible ASCII other than '#': request-target characters
  kFieldVchar = 4,    // VCHAR / obs-text: field value characters other than whitespace
  kHexDigit = 8,      //
  kRegNameChar = 16,  // unreserved / sub-delims (RFC 3986): host names, without '%'
  kDigit = 32,        //
};

namespace detail {
constexpr std::array<uint8_t, 256> make_char_classes() {
  std::array<uint8_t, 256> t{};
  for (int c = 0; c < 256; ++c) {
    uint8_t v = 0;
    bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    bool digit = c >= '0' && c <= '9';
    if (alpha || digit) v |= kTchar | kRegNameChar;
    if (digit) v |= kDigit;
    for (char s : std::string_view("!#$%&'*+-.^_`|~"))
      if (c == s) v |= kTchar;
    for (char s : std::string_view("-._~!$&'()*+,;="))
      if (c == s) v |= kRegNameChar;
    if (c > 0x20 && c < 0x7f && c != '#') v |= kTargetChar;
    if ((c > 0x20 && c < 0x7f) || c >= 0x80) v |= kFieldVchar;
    if (digit || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')) v |= kHexDigit;
    t[static_cast<size_t>(c)] = v;
  }
  return t;
}
}  // namespace detail

inline constexpr std::array<uint8_t, 256> kCharClasses = detail::make_char_classes();

// `c` belongs to one of the classes in `cls` (a CharClass or several or-ed).
inline bool in_class(char c, uint8_t cls) {
  return (kCharClasses[static_cast<unsigned char>(c)] & cls) != 0;
}
inline bool is_digit(char c) {
  return c >= '0' && c <= '9';
}
inline char ascii_lower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + ('a' - 'A')) : c;
}

// `a` equals `lower` (already lower-case) but for the case of ASCII letters.
bool iequals(std::string_view a, std::string_view lower);
// Without the optional whitespace (spaces, tabs) around a field value or list item.
std::string_view trim_ows(std::string_view v);
// Takes the next element of a comma-separated list (RFC 9110 section 5.6.1) off the front of
// `*list`, without its OWS; empty elements are skipped, as the RFC allows. False when none is
// left.
bool next_list_item(std::string_view* list, std::string_view* item);
// A non-empty run of token characters: a method, a field name, a transfer coding.
bool is_token(std::string_view s);
// A non-empty run of ASCII digits (no sign, no space): a Content-Length, a port.
bool all_digits(std::string_view s);
// A field value as it may go on the wire: visible characters, obs-text, space and tab; never
// CR, LF, NUL or another control character, which could split a message.
bool is_field_value(std::string_view v);

}  // namespace rotor::http
