// What the fuzz targets compare: how a byte stream was judged by a RequestParser.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "workers/http/parser.hpp"

namespace rotor::fuzz {

struct Verdict {
  std::vector<std::string> messages;  // a summary of each delivered request
  int error = 0;                      // rejection status, 0 = none
  bool error_head = false;            // the rejected request is a HEAD (no body in the answer)
  bool operator==(const Verdict& o) const {
    return messages == o.messages && error == o.error && error_head == o.error_head;
  }
};

inline std::string summary(const http::RequestParser& p) {
  const http::Request& r = p.request();
  std::string s(r.method_name());
  s += ' ';
  s += r.target();
  s += r.http_minor ? " 1.1" : " 1.0";
  for (const auto& f : r.fields) {
    s += " [";
    s += r.name(f);
    s += '=';
    s += r.value(f);
    s += ']';
  }
  s += " body=" + std::to_string(r.body_bytes);
  if (!r.keep_alive) s += " close";
  if (p.upgrade()) s += " upgrade";
  return s;
}

[[noreturn]] inline void fail(const char* what) {
  std::fprintf(stderr, "fuzz invariant broken: %s\n", what);
  std::abort();
}

// Judges `data` fed in pieces of the given sizes (the last piece takes the rest). Each piece is
// a fresh heap copy, freed right after its feed: ASan sees any pointer kept into old input.
inline Verdict judge(const uint8_t* data, size_t size, const std::vector<size_t>& pieces,
                     const http::ParseLimits& limits) {
  using Event = http::RequestParser::Event;
  http::RequestParser parser(limits);
  Verdict v;
  size_t from = 0;
  for (size_t i = 0; from < size; ++i) {
    size_t n = i < pieces.size() ? pieces[i] : size - from;
    if (n == 0 || n > size - from) n = size - from;
    auto piece = std::make_unique<char[]>(n);
    std::copy(data + from, data + from + n, piece.get());
    size_t off = 0;
    while (off < n) {
      size_t used = 0;
      Event ev = parser.feed(piece.get() + off, n - off, &used);
      if (used > n - off) fail("consumed more than given");
      off += used;
      if (ev == Event::kError) {
        v.error = parser.error_status();
        v.error_head = parser.head_method();
        if (v.error < 400 || v.error > 599) fail("error status out of range");
        size_t again = 1;
        if (parser.feed("x", 1, &again) != Event::kError || again != 0) fail("error not sticky");
        return v;
      }
      if (ev == Event::kNeedMore) {
        if (off != n) fail("kNeedMore with bytes left");
        break;
      }
      const http::Request& r = parser.request();
      if (r.target_len > r.arena.size()) fail("target outside the arena");
      for (const auto& f : r.fields) {
        if (f.name_off + f.name_len > r.arena.size() ||
            f.value_off + f.value_len > r.arena.size()) {
          fail("field outside the arena");
        }
      }
      v.messages.push_back(summary(parser));
      if (!r.keep_alive || parser.upgrade()) return v;  // nothing after it is HTTP
      parser.next();
    }
    from += n;
  }
  return v;
}

// Piece sizes from a seed: mostly small, sometimes one byte, sometimes large.
inline std::vector<size_t> pieces_from_seed(uint32_t seed, size_t size) {
  std::vector<size_t> out;
  uint32_t x = seed * 2654435761u + 1;
  size_t total = 0;
  while (total < size) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    size_t n = (x & 3) == 0 ? 1 : (x >> 8) % ((x & 4) ? 64 : 9) + 1;
    out.push_back(n);
    total += n;
  }
  return out;
}

inline http::ParseLimits limits_from(uint8_t selector) {
  http::ParseLimits lim;
  switch (selector % 3) {
    case 0:  // the defaults
      break;
    case 1:  // small: every limit is reachable by short inputs
      lim.request_line = 48;
      lim.fields = 4;
      lim.field_size = 32;
      lim.body = 16;
      lim.chunk_extensions = 8;
      break;
    default:  // none
      lim.request_line = lim.fields = lim.field_size = lim.body = lim.chunk_extensions = 0;
      break;
  }
  return lim;
}

}  // namespace rotor::fuzz
