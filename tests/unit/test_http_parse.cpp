// workers/http/parser: the request judging of the engine, without sockets. Every case is judged
// whole, split in two at every byte boundary, and fed one byte at a time: all three must give
// the same verdict (the same requests delivered, the same error).
#include <doctest/doctest.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "workers/http/parser.hpp"

using namespace rotor::http;
using namespace std::string_literals;

namespace {

// Everything observable about how a byte stream was judged.
struct Verdict {
  std::vector<std::string> messages;  // one summary per delivered request, in order
  int error = 0;                      // status of the rejection; 0 = none
  std::string phase = "idle";         // where the parser stood when the input ran out
  std::string reason;                 // for failure messages only
  bool operator==(const Verdict& o) const {
    return messages == o.messages && error == o.error && phase == o.phase;
  }
};

std::ostream& operator<<(std::ostream& os, const Verdict& v) {
  os << "{error=" << v.error << " (" << v.reason << ") phase=" << v.phase << " messages=[";
  for (const auto& m : v.messages) os << "\n  " << m;
  return os << "]}";
}

std::string summary(const RequestParser& p) {
  const Request& r = p.request();
  std::string s = std::string(r.method_name()) + " " + std::string(r.target()) + " 1." +
                  std::to_string(r.http_minor);
  for (const auto& f : r.fields) {
    s += " [" + std::string(r.name(f)) + "=" + std::string(r.value(f)) + "]";
  }
  s += " body=" + std::to_string(r.body_bytes);
  if (!r.keep_alive) s += " close";
  if (p.upgrade()) s += " upgrade";
  return s;
}

// Feeds `input` cut at `cuts`; each piece is a fresh heap copy that is freed right after, so
// the parser cannot keep pointers into earlier input unnoticed (ASan builds).
Verdict judge(std::string_view input, const std::vector<size_t>& cuts, const ParseLimits& lim) {
  RequestParser parser(lim);
  Verdict v;
  size_t from = 0;
  std::vector<size_t> ends = cuts;
  ends.push_back(input.size());
  for (size_t to : ends) {
    if (to <= from) continue;
    auto piece = std::make_unique<char[]>(to - from);
    std::copy(input.begin() + static_cast<std::ptrdiff_t>(from),
              input.begin() + static_cast<std::ptrdiff_t>(to), piece.get());
    size_t off = 0, len = to - from;
    while (off < len) {
      size_t used = 0;
      auto ev = parser.feed(piece.get() + off, len - off, &used);
      off += used;
      if (ev == RequestParser::Event::kError) {
        v.error = parser.error_status();
        v.reason = parser.error_reason();
        v.phase = "error";
        return v;
      }
      if (ev == RequestParser::Event::kNeedMore) break;
      v.messages.push_back(summary(parser));
      // Like the connection: nothing after these is parsed as HTTP.
      if (!parser.request().keep_alive || parser.upgrade()) {
        v.phase = "closed";
        return v;
      }
      parser.next();
    }
    from = to;
  }
  switch (parser.phase()) {
    case RequestParser::Phase::kIdle:
      v.phase = "idle";
      break;
    case RequestParser::Phase::kHead:
      v.phase = "head";
      break;
    case RequestParser::Phase::kBody:
      v.phase = "body";
      break;
  }
  return v;
}

ParseLimits small_limits() {
  ParseLimits lim;
  lim.request_line = 40;
  lim.fields = 4;
  lim.field_size = 40;
  lim.body = 10;
  lim.chunk_extensions = 16;
  return lim;
}

// The verdict on `input` whole, after checking that every split gives the same one.
Verdict judge_every_split(std::string_view input, const ParseLimits& lim = small_limits()) {
  Verdict whole = judge(input, {}, lim);
  for (size_t cut = 1; cut < input.size(); ++cut) {
    Verdict split = judge(input, {cut}, lim);
    INFO("split at byte ", cut, " of ", input.size());
    REQUIRE(split == whole);
  }
  std::vector<size_t> bytes;
  for (size_t i = 1; i < input.size(); ++i) bytes.push_back(i);
  Verdict trickled = judge(input, bytes, lim);
  INFO("one byte at a time");
  REQUIRE(trickled == whole);
  return whole;
}

struct Case {
  const char* name;
  std::string input;
  int status;       // expected rejection; 0 = accepted
  size_t messages;  // requests delivered (before the rejection, if any)
};

void run_cases(const std::vector<Case>& cases) {
  for (const Case& c : cases) {
    std::string name = c.name;
    CAPTURE(name);
    CAPTURE(c.input);
    Verdict v = judge_every_split(c.input);
    CAPTURE(v);
    CHECK(v.error == c.status);
    CHECK(v.messages.size() == c.messages);
  }
}

const std::string kGet = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
const std::string kPost = "POST / HTTP/1.1\r\nHost: a\r\n";
const std::string kChunked = kPost + "Transfer-Encoding: chunked\r\n\r\n";

}  // namespace

TEST_SUITE("http parser") {
  TEST_CASE("valid requests are delivered whole and in order") {
    run_cases({
        {"simple GET", kGet, 0, 1},
        {"pipelined", kGet + kGet + kGet, 0, 3},
        {"blank lines before a request", "\r\n\r\n" + kGet, 0, 1},
        {"HTTP/1.0 without Host", "GET / HTTP/1.0\r\n\r\n", 0, 1},
        {"obs-text in a value", "GET / HTTP/1.1\r\nHost: a\r\nX: \xe9t\xe9\r\n\r\n", 0, 1},
        {"OWS around a value", "GET / HTTP/1.1\r\nHost: \t a \t\r\n\r\n", 0, 1},
        {"empty value", "GET / HTTP/1.1\r\nHost: a\r\nX:\r\n\r\n", 0, 1},
        {"Content-Length body", kPost + "Content-Length: 5\r\n\r\nhello" + kGet, 0, 2},
        {"Content-Length with leading zeros and OWS", kPost + "Content-Length:  005 \r\n\r\nhello",
         0, 1},
        {"chunked body with extensions and trailer",
         kChunked + "5;a=b\r\nhello\r\n3;q=\"x y\"\r\nabc\r\n0\r\nX-Sum: 1\r\n\r\n" + kGet, 0, 2},
        {"CHUNKED in capitals", kPost + "Transfer-Encoding: CHUNKED\r\n\r\n0\r\n\r\n", 0, 1},
        {"OPTIONS *", "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", 0, 1},
        {"absolute-form", "GET http://a.b:80/x?y=%20 HTTP/1.1\r\nHost: a.b\r\n\r\n", 0, 1},
        {"CONNECT authority-form", "CONNECT a.b:443 HTTP/1.1\r\nHost: a.b:443\r\n\r\n", 0, 1},
        {"IPv6 Host", "GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n", 0, 1},
        {"query with brackets and quotes", "GET /a?f[x]=\"1\"|{} HTTP/1.1\r\nHost: a\r\n\r\n", 0,
         1},
        {"Connection: close ends the stream",
         "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n" + kGet, 0, 1},
        {"upgrade ends the stream",
         "GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: x\r\n\r\n\x16\x03", 0, 1},
    });
  }

  TEST_CASE("the head: line endings, folding, names and values") {
    run_cases({
        {"obs-fold", "GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n", 400, 0},
        {"obs-fold with a tab", "GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n\tb\r\n\r\n", 400, 0},
        {"whitespace before the first field", "GET / HTTP/1.1\r\n Host: a\r\n\r\n", 400, 0},
        {"empty header name", "GET / HTTP/1.1\r\nHost: a\r\n: v\r\n\r\n", 400, 0},
        {"bare LF after the request line", "GET / HTTP/1.1\nHost: a\r\n\r\n", 400, 0},
        {"bare LF after a field", "GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n", 400, 0},
        {"bare LF ending the head", "GET / HTTP/1.1\r\nHost: a\r\n\n", 400, 0},
        {"bare LF before a request", "\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", 400, 0},
        {"bare CR in the request line", "GET / HTTP/1.1\rHost: a\r\n\r\n", 400, 0},
        {"bare CR in a value", "GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n", 400, 0},
        {"bare CR ending the head", "GET / HTTP/1.1\r\nHost: a\r\n\rX", 400, 0},
        {"NUL in a value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n"s, 400, 0},
        {"control character in a value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\x01z\r\n\r\n", 400, 0},
        {"DEL in a value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\x7f\r\n\r\n", 400, 0},
        {"space before the colon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400, 0},
        {"tab before the colon", "GET / HTTP/1.1\r\nHost\t: a\r\n\r\n", 400, 0},
        {"invalid token in a name", "GET / HTTP/1.1\r\nHo(st: a\r\n\r\n", 400, 0},
        {"non-ASCII in a name", "GET / HTTP/1.1\r\nHost: a\r\nX\xc3\xa9: b\r\n\r\n", 400, 0},
        {"invalid token in the method", "G(T / HTTP/1.1\r\nHost: a\r\n\r\n", 400, 0},
        {"method unknown to llhttp", "FOO / HTTP/1.1\r\nHost: a\r\n\r\n", 400, 0},
        {"two spaces after the method", "GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400, 0},
        {"tab after the method", "GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n", 400, 0},
        {"space after the version", "GET / HTTP/1.1 \r\nHost: a\r\n\r\n", 400, 0},
        {"garbage", "\x00\x01\x02 this is not http\r\n\r\n"s, 400, 0},
        {"second request bad after a good one", kGet + "GET / HTTP/1.1\r\nHost: a\r\n b\r\n\r\n",
         400, 1},
    });
  }

  TEST_CASE("request-target and version") {
    run_cases({
        {"relative target", "GET x HTTP/1.1\r\nHost: a\r\n\r\n", 400, 0},
        {"fragment", "GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n", 400, 0},
        {"bad percent-encoding", "GET /%zz HTTP/1.1\r\nHost: a\r\n\r\n", 400, 0},
        {"truncated percent-encoding", "GET /a%4 HTTP/1.1\r\nHost: a\r\n\r\n", 400, 0},
        {"non-ASCII target", "GET /\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n", 400, 0},
        {"control character in target", "GET /\x7f HTTP/1.1\r\nHost: a\r\n\r\n", 400, 0},
        {"asterisk with GET", "GET * HTTP/1.1\r\nHost: a\r\n\r\n", 400, 0},
        {"asterisk and more with OPTIONS", "OPTIONS *x HTTP/1.1\r\nHost: a\r\n\r\n", 400, 0},
        {"CONNECT with a path", "CONNECT /x HTTP/1.1\r\nHost: a\r\n\r\n", 400, 0},
        {"CONNECT without a port", "CONNECT a.b HTTP/1.1\r\nHost: a\r\n\r\n", 400, 0},
        {"authority-form with GET", "GET a.b:80 HTTP/1.1\r\nHost: a\r\n\r\n", 400, 0},
        {"userinfo in absolute-form", "GET http://u:p@a.b/ HTTP/1.1\r\nHost: a.b\r\n\r\n", 400, 0},
        {"other scheme", "GET ftp://a.b/ HTTP/1.1\r\nHost: a.b\r\n\r\n", 400, 0},
        {"no version (HTTP/0.9)", "GET /\r\n\r\n", 400, 0},
        {"HTTP/2.0", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505, 0},
        {"HTTP/0.9 with a version", "GET / HTTP/0.9\r\nHost: a\r\n\r\n", 505, 0},
        {"HTTP/1.2", "GET / HTTP/1.2\r\nHost: a\r\n\r\n", 505, 0},
        {"lower-case protocol", "GET / http/1.1\r\nHost: a\r\n\r\n", 400, 0},
        {"RTSP", "DESCRIBE / RTSP/1.0\r\n\r\n", 400, 0},
        {"h2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 400, 0},  // * is for OPTIONS
    });
  }

  TEST_CASE("Host") {
    run_cases({
        {"missing on 1.1", "GET / HTTP/1.1\r\nX: a\r\n\r\n", 400, 0},
        {"duplicate on 1.1", "GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", 400, 0},
        {"duplicate on 1.0", "GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", 400, 0},
        {"empty on 1.1", "GET / HTTP/1.1\r\nHost:\r\n\r\n", 0, 1},
        {"with a path", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400, 0},
        {"with userinfo", "GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", 400, 0},
        {"with a space", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400, 0},
        {"with a bad port", "GET / HTTP/1.1\r\nHost: a:8x\r\n\r\n", 400, 0},
    });
  }

  TEST_CASE("Content-Length and Transfer-Encoding") {
    run_cases({
        {"CL +1", kPost + "Content-Length: +1\r\n\r\na", 400, 0},
        {"CL -0", kPost + "Content-Length: -0\r\n\r\n", 400, 0},
        {"CL 0_1", kPost + "Content-Length: 0_1\r\n\r\n", 400, 0},
        {"CL list", kPost + "Content-Length: 1, 1\r\n\r\na", 400, 0},
        {"CL with inner space", kPost + "Content-Length: 1 1\r\n\r\na", 400, 0},
        {"CL hex", kPost + "Content-Length: 0x1\r\n\r\na", 400, 0},
        {"CL empty", kPost + "Content-Length: \r\n\r\n", 400, 0},
        {"CL overflow", kPost + "Content-Length: 99999999999999999999999\r\n\r\n", 400, 0},
        {"CL duplicate, same value", kPost + "Content-Length: 1\r\nContent-Length: 1\r\n\r\na", 400,
         0},
        {"CL conflicting", kPost + "Content-Length: 1\r\nContent-Length: 2\r\n\r\nab", 400, 0},
        {"Content-Type twice",
         kPost + "Content-Type: text/plain\r\ncontent-type: application/json\r\n"
                 "Content-Length: 2\r\n\r\n{}",
         400, 0},
        {"CL with TE", kPost + "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
         400, 0},
        {"TE with CL", kPost + "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
         400, 0},
        {"TE unknown coding before chunked", kPost + "Transfer-Encoding: gzip, chunked\r\n\r\n",
         501, 0},
        {"TE unknown coding, separate fields",
         kPost + "Transfer-Encoding: foo\r\nTransfer-Encoding: chunked\r\n\r\n", 501, 0},
        {"TE chunked not last", kPost + "Transfer-Encoding: chunked, gzip\r\n\r\n", 400, 0},
        {"TE without chunked", kPost + "Transfer-Encoding: gzip\r\n\r\n", 400, 0},
        {"TE identity", kPost + "Transfer-Encoding: identity\r\n\r\n", 400, 0},
        {"TE chunked twice", kPost + "Transfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n", 400,
         0},
        {"TE chunked twice, separate fields",
         kPost + "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400,
         0},
        {"TE chunked with a parameter", kPost + "Transfer-Encoding: chunked;q=1\r\n\r\n0\r\n\r\n",
         400, 0},
        {"TE chunkedchunked", kPost + "Transfer-Encoding: chunkedchunked\r\n\r\n0\r\n\r\n", 400, 0},
        {"TE on HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400,
         0},
    });
  }

  TEST_CASE("chunked framing and trailers") {
    run_cases({
        {"chunk size not hex", kChunked + "zz\r\nhello\r\n0\r\n\r\n", 400, 0},
        {"negative chunk size", kChunked + "-5\r\nhello\r\n0\r\n\r\n", 400, 0},
        {"0x chunk size", kChunked + "0x5\r\nhello\r\n0\r\n\r\n", 400, 0},
        {"chunk size overflow", kChunked + "fffffffffffffffffff\r\nhello\r\n0\r\n\r\n", 400, 0},
        {"space before extension", kChunked + "5 ;a\r\nhello\r\n0\r\n\r\n", 400, 0},
        {"extension without a name", kChunked + "5;\r\nhello\r\n0\r\n\r\n", 400, 0},
        {"control character in an extension", kChunked + "5;a=\x01\r\nhello\r\n0\r\n\r\n", 400, 0},
        {"unbalanced quote in an extension", kChunked + "5;a=\"b\r\nhello\r\n0\r\n\r\n", 400, 0},
        {"extensions too long", kChunked + "1;aaaaaaaa=bbbbbbbbbbbb\r\nx\r\n0\r\n\r\n", 400, 0},
        {"bare LF after the chunk size", kChunked + "5\nhello\r\n0\r\n\r\n", 400, 0},
        {"chunk data not followed by CRLF", kChunked + "5\r\nhelloXX0\r\n\r\n", 400, 0},
        {"chunk data followed by a bare LF", kChunked + "5\r\nhello\n0\r\n\r\n", 400, 0},
        {"bare LF ending the trailers", kChunked + "0\r\n\n", 400, 0},
        {"bare LF in a trailer", kChunked + "0\r\nX: a\nY: b\r\n\r\n", 400, 0},
        {"obs-fold in a trailer", kChunked + "0\r\nX: a\r\n b\r\n\r\n", 400, 0},
        {"space before the colon in a trailer", kChunked + "0\r\nX : a\r\n\r\n", 400, 0},
        {"Content-Length trailer", kChunked + "0\r\nContent-Length: 5\r\n\r\n", 400, 0},
        {"Transfer-Encoding trailer", kChunked + "0\r\nTransfer-Encoding: gzip\r\n\r\n", 400, 0},
        {"Host trailer", kChunked + "0\r\nhOsT: x\r\n\r\n", 400, 0},
        {"allowed trailers", kChunked + "0\r\nX-Sum: 1\r\nServer-Timing: a\r\n\r\n", 0, 1},
        {"too many trailers", kChunked + "0\r\nA: 1\r\nB: 1\r\nC: 1\r\nD: 1\r\nE: 1\r\n\r\n", 431,
         0},
    });
  }

  TEST_CASE("limits apply at the exact byte") {
    // request line limit 40, 4 fields, 40 bytes per field line (its CRLF included, as gunicorn
    // counts), 10 bytes of body
    std::string line40 = "GET /" + std::string(40 - 14, 'a') + " HTTP/1.1";
    REQUIRE(line40.size() == 40);
    std::string field38 = "X: " + std::string(35, 'v');  // + CRLF: 40
    std::string name38 = std::string(38, 'n');
    run_cases({
        {"request line at the limit", line40 + "\r\nHost: a\r\n\r\n", 0, 1},
        {"request line past the limit", "GET /a" + line40.substr(5) + "\r\nHost: a\r\n\r\n", 414,
         0},
        {"long method", "PROPFIND" + std::string(33, 'X') + " / HTTP/1.1\r\n\r\n", 400, 0},
        {"4 fields", "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 1\r\nC: 1\r\n\r\n", 0, 1},
        {"5 fields", "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 1\r\nC: 1\r\nD: 1\r\n\r\n", 431, 0},
        {"field line at the limit", "GET / HTTP/1.1\r\nHost: a\r\n" + field38 + "\r\n\r\n", 0, 1},
        {"field value past the limit", "GET / HTTP/1.1\r\nHost: a\r\n" + field38 + "v\r\n\r\n", 431,
         0},
        {"field whitespace past the limit", "GET / HTTP/1.1\r\nHost: a\r\n" + field38 + " \r\n\r\n",
         431, 0},
        {"field name past the limit", "GET / HTTP/1.1\r\nHost: a\r\n" + name38 + "n: v\r\n\r\n",
         431, 0},
        {"body at the limit", kPost + "Content-Length: 10\r\n\r\n0123456789", 0, 1},
        {"Content-Length past the limit", kPost + "Content-Length: 11\r\n\r\n01234567890", 413, 0},
        {"chunked body past the limit", kChunked + "6\r\n012345\r\n5\r\n01234\r\n0\r\n\r\n", 413,
         0},
        {"limit beats a later syntax error",
         "GET /" + std::string(40, 'a') + "\x01 HTTP/1.1\r\nHost: a\r\n\r\n", 414, 0},
        {"syntax error beats a later limit",
         "GET /\x01" + std::string(40, 'a') + " HTTP/1.1\r\nHost: a\r\n\r\n", 400, 0},
    });
  }

  TEST_CASE("the whole head is bounded, at the exact byte and per request") {
    ParseLimits lim = small_limits();
    lim.head = 80;
    auto head = [](size_t second) {
      return "GET / HTTP/1.1\r\nHost: a\r\nA: " + std::string(22, 'v') +
             "\r\nB: " + std::string(second, 'w') + "\r\n\r\n";
    };
    REQUIRE(head(21).size() == 80);
    Verdict at = judge_every_split(head(21), lim);
    CHECK(at.error == 0);
    CHECK(at.messages.size() == 1);
    Verdict past = judge_every_split(head(22), lim);
    CHECK(past.error == 431);
    CHECK(past.messages.empty());
    // Blank lines before a request line belong to its head.
    CHECK(judge_every_split("\r\n" + head(21), lim).error == 431);
    // Each request of a pipeline has its own budget.
    Verdict two = judge_every_split(head(21) + head(21), lim);
    CHECK(two.error == 0);
    CHECK(two.messages.size() == 2);
  }

  TEST_CASE("Expect") {
    run_cases({
        {"100-continue", kPost + "Expect: 100-continue\r\nContent-Length: 2\r\n\r\nab", 0, 1},
        {"other expectation", kPost + "Expect: 200-ok\r\nContent-Length: 2\r\n\r\nab", 417, 0},
        {"100-continue on HTTP/1.0",
         "POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nab", 0, 1},
    });
    ParseLimits lim = small_limits();
    RequestParser p(lim);
    std::string head = kPost + "Expect: 100-continue\r\nContent-Length: 2\r\n\r\n";
    size_t used = 0;
    CHECK(p.feed(head.data(), head.size(), &used) == RequestParser::Event::kNeedMore);
    CHECK(used == head.size());
    CHECK(p.phase() == RequestParser::Phase::kBody);
    CHECK(p.expect_continue());  // the head alone: the client waits for 100 Continue
    CHECK(p.feed("a", 1, &used) == RequestParser::Event::kNeedMore);
    CHECK_FALSE(p.expect_continue());  // the body is coming anyway
    CHECK(p.feed("b", 1, &used) == RequestParser::Event::kMessage);

    // Head and body together: no 100 needed. No body: never.
    RequestParser q(lim);
    std::string whole = head + "ab";
    CHECK(q.feed(whole.data(), whole.size(), &used) == RequestParser::Event::kMessage);
    CHECK_FALSE(q.expect_continue());
    RequestParser r(lim);
    std::string bodyless = "GET / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\r\n";
    CHECK(r.feed(bodyless.data(), bodyless.size(), &used) == RequestParser::Event::kMessage);
    CHECK_FALSE(r.expect_continue());
  }

  TEST_CASE("phases, and what a request looks like to the handler") {
    ParseLimits lim;
    RequestParser p(lim);
    size_t used = 0;
    CHECK(p.phase() == RequestParser::Phase::kIdle);
    CHECK(p.feed("\r\n", 2, &used) == RequestParser::Event::kNeedMore);
    CHECK(p.phase() == RequestParser::Phase::kHead);  // the head timeout runs from here
    std::string req =
        "POST /up?x=1 HTTP/1.1\r\nHost:  h:1 \r\nX-A: 1\r\nContent-Length: 3\r\n\r\nabc";
    CHECK(p.feed(req.data(), req.size(), &used) == RequestParser::Event::kMessage);
    const Request& r = p.request();
    CHECK(r.method_name() == "POST");
    CHECK(r.target() == "/up?x=1");
    CHECK(r.header("host") == "h:1");
    CHECK(r.header("x-a") == "1");
    CHECK(r.content_length == 3);
    CHECK(r.body_bytes == 3);
    CHECK(r.keep_alive);
    p.next();
    CHECK(p.phase() == RequestParser::Phase::kIdle);
    // After an error, nothing more is read.
    CHECK(p.feed("GET / HTTP/1.1\r\n\r\n", 18, &used) == RequestParser::Event::kError);
    CHECK(p.error_status() == 400);
    CHECK(p.feed("GET", 3, &used) == RequestParser::Event::kError);
    CHECK(used == 0);
  }

  TEST_CASE("head_method: an error answer to a HEAD has no body") {
    ParseLimits lim;
    size_t used = 0;
    RequestParser a(lim);
    std::string bad = "HEAD / HTTP/1.1\r\nX: a\r\n\r\n";  // no Host
    CHECK(a.feed(bad.data(), bad.size(), &used) == RequestParser::Event::kError);
    CHECK(a.head_method());
    RequestParser b(lim);
    CHECK(b.feed("HEA", 3, &used) == RequestParser::Event::kNeedMore);
    CHECK_FALSE(b.head_method());  // not known yet: HEAD or HEADER?
    CHECK(b.feed("D /", 3, &used) == RequestParser::Event::kNeedMore);
    CHECK(b.head_method());
    RequestParser c(lim);
    CHECK(c.feed("GET /\x01", 6, &used) == RequestParser::Event::kError);
    CHECK_FALSE(c.head_method());
  }

  TEST_CASE("a head past the hard cap is refused even without limits") {
    ParseLimits none;
    none.request_line = none.fields = none.field_size = none.head = 0;
    RequestParser p(none);
    std::string field = "X: " + std::string(1 << 20, 'v') + "\r\n";
    size_t used = 0;
    std::string start = "GET / HTTP/1.1\r\nHost: a\r\n";
    REQUIRE(p.feed(start.data(), start.size(), &used) == RequestParser::Event::kNeedMore);
    RequestParser::Event ev = RequestParser::Event::kNeedMore;
    for (int i = 0; i < 40 && ev == RequestParser::Event::kNeedMore; ++i) {
      ev = p.feed(field.data(), field.size(), &used);
    }
    CHECK(ev == RequestParser::Event::kError);
    CHECK(p.error_status() == 431);
  }

  TEST_CASE("the parser says where the target's path, query and authority are") {
    struct Parts {
      const char* request_line;
      std::string_view path, query, authority;
    };
    for (const Parts& t : std::vector<Parts>{
             {"GET /a/b?c=d?e HTTP/1.1", "/a/b", "c=d?e", ""},
             {"GET /a? HTTP/1.1", "/a", "", ""},
             {"GET http://h.example:8080/p?q=1 HTTP/1.1", "/p", "q=1", "h.example:8080"},
             {"GET HTTPS://[::1]?q HTTP/1.1", "", "q", "[::1]"},
             {"GET http://h HTTP/1.1", "", "", "h"},
             {"OPTIONS * HTTP/1.1", "*", "", ""},
             {"CONNECT h:443 HTTP/1.1", "h:443", "", "h:443"},
         }) {
      ParseLimits lim;
      RequestParser p(lim);
      std::string req = std::string(t.request_line) + "\r\nHost: h\r\n\r\n";
      size_t used = 0;
      INFO(t.request_line);
      REQUIRE(p.feed(req.data(), req.size(), &used) == RequestParser::Event::kMessage);
      CHECK(p.request().path() == t.path);
      CHECK(p.request().query() == t.query);
      CHECK(p.request().authority() == t.authority);
    }
  }

  TEST_CASE("a field size limit under 4 refuses every field line; 4 takes the shortest") {
    for (uint64_t size : {1, 2, 3, 4}) {
      ParseLimits lim;
      lim.field_size = size;
      RequestParser p(lim);
      std::string req = "GET / HTTP/1.0\r\na:\r\n\r\n";  // "a:" and CRLF: 4 bytes
      size_t used = 0;
      INFO("limit ", size);
      CHECK(p.feed(req.data(), req.size(), &used) ==
            (size == 4 ? RequestParser::Event::kMessage : RequestParser::Event::kError));
    }
  }

  TEST_CASE("list elements come without their whitespace, empty ones skipped") {
    std::string_view list = " a ,, \tb\t, ,c,";
    std::vector<std::string_view> items;
    for (std::string_view item; next_list_item(&list, &item);) items.push_back(item);
    CHECK(items == std::vector<std::string_view>{"a", "b", "c"});
    std::string_view empty = " , ";
    std::string_view item;
    CHECK_FALSE(next_list_item(&empty, &item));
  }

  TEST_CASE("check_target and valid_host") {
    CHECK(check_target("GET", "/") == nullptr);
    CHECK(check_target("GET", "/a/b?c=d&e=%2F") == nullptr);
    CHECK(check_target("GET", "https://h.example:8443") == nullptr);
    CHECK(check_target("GET", "HTTP://[::1]/x") == nullptr);
    CHECK(check_target("OPTIONS", "*") == nullptr);
    CHECK(check_target("CONNECT", "h:443") == nullptr);
    CHECK(check_target("CONNECT", "[::1]:443") == nullptr);
    CHECK(check_target("GET", "") != nullptr);
    CHECK(check_target("GET", "http://") != nullptr);
    CHECK(check_target("GET", "http:/x") != nullptr);
    CHECK(check_target("GET", "http://h/%") != nullptr);
    CHECK(check_target("CONNECT", "h:") != nullptr);
    CHECK(check_target("CONNECT", "u@h:1") != nullptr);
    CHECK(check_target("POST", "*") != nullptr);
    CHECK(valid_host(""));
    CHECK(valid_host("example.com"));
    CHECK(valid_host("example.com:80"));
    CHECK(valid_host("127.0.0.1:8000"));
    CHECK(valid_host("[2001:db8::1]:443"));
    CHECK(valid_host("[v1.x]"));
    CHECK(valid_host("xn--e1afmkfd.xn--p1ai"));
    CHECK_FALSE(valid_host(":80"));
    CHECK_FALSE(valid_host("[::1"));
    CHECK_FALSE(valid_host("[::1]x"));
    CHECK_FALSE(valid_host("a b"));
    CHECK_FALSE(valid_host("a:b:c"));
    CHECK_FALSE(valid_host("h%zz"));
  }
}
