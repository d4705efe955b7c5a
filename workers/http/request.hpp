// The head of one HTTP request as the engine parsed it. Names and values live in one arena
// owned by the connection and reused from request to request (no allocation per header).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace rotor::http {

struct Request {
  struct Field {
    uint32_t name_off, name_len, value_off, value_len;
  };

  std::string arena;  // target, then every header name and value, back to back
  uint32_t target_len = 0;
  std::vector<Field> fields;
  uint8_t method = 0;  // llhttp_method_t
  uint8_t http_major = 1, http_minor = 1;
  bool keep_alive = true;
  bool head = false;  // HEAD: answer without a body
  bool has_body = false;
  bool chunked = false;
  uint64_t content_length = 0;  // when not chunked
  uint64_t body_bytes = 0;      // read so far

  std::string_view target() const { return {arena.data(), target_len}; }
  std::string_view name(const Field& f) const { return {arena.data() + f.name_off, f.name_len}; }
  std::string_view value(const Field& f) const { return {arena.data() + f.value_off, f.value_len}; }
  std::string_view method_name() const;
  // First value of a header, case-insensitive name; empty view when absent.
  std::string_view header(std::string_view lower_name) const;

  void reset() {
    // Reused from request to request; a huge head does not pin its memory for good.
    if (arena.capacity() > kKeptArena) {
      std::string().swap(arena);
    } else {
      arena.clear();
    }
    target_len = 0;
    fields.clear();
    body_bytes = 0;
    content_length = 0;
    has_body = false;
    chunked = false;
  }
  static constexpr size_t kKeptArena = 64 * 1024;
};

bool iequals(std::string_view a, std::string_view lower);
// Without the optional whitespace (spaces, tabs) around a field value or list item.
std::string_view trim_ows(std::string_view v);

}  // namespace rotor::http
