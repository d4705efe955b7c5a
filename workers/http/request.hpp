// The head of one HTTP request as the engine parsed it. Names and values live in one arena
// owned by the connection and reused from request to request (no allocation per header).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "workers/http/grammar.hpp"
#include "workers/http/target.hpp"

namespace rotor::http {

struct Request {
  struct Field {
    uint32_t name_off, name_len, value_off, value_len;
  };

  std::string arena;  // target, then every header name and value, back to back
  uint32_t target_len = 0;
  TargetParts target_parts;  // set by the parser's check of the target
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
  // The path as sent: origin-form's, absolute-form's after the authority (empty when it has
  // none), and the whole target in the asterisk and authority forms.
  std::string_view path() const {
    return {arena.data() + target_parts.path_off, target_parts.query_off - target_parts.path_off};
  }
  // After the first '?', without it; empty when there is none.
  std::string_view query() const {
    uint32_t q = target_parts.query_off;
    return q < target_len ? std::string_view(arena.data() + q + 1, target_len - q - 1)
                          : std::string_view();
  }
  // Absolute-form's and authority-form's; empty in the other forms.
  std::string_view authority() const {
    return {arena.data() + target_parts.authority_off, target_parts.authority_len};
  }
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
    target_parts = {};
    fields.clear();
    body_bytes = 0;
    content_length = 0;
    has_body = false;
    chunked = false;
  }
  static constexpr size_t kKeptArena = 64 * 1024;
};

}  // namespace rotor::http
