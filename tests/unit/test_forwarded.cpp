// Proxy headers: the trusted-address list (--forwarded-allow-ips) and how the client and scheme
// are read from X-Forwarded-For and X-Forwarded-Proto.
#include <doctest/doctest.h>

#include "conf/address_list.hpp"
#include "workers/http/forwarded.hpp"

using rotor::conf::AddressList;
using rotor::http::forwarded_client;
using rotor::http::forwarded_scheme;

namespace {

AddressList list(const char* text) {
  AddressList l;
  std::string error;
  REQUIRE_MESSAGE(AddressList::parse(text, &l, &error), error);
  return l;
}

}  // namespace

TEST_CASE("address list: addresses, networks and *") {
  AddressList l = list("127.0.0.1, 10.0.0.0/8,192.168.1.128/25 ,2001:db8::/32,::1");
  CHECK(l.contains("127.0.0.1"));
  CHECK_FALSE(l.contains("127.0.0.2"));
  CHECK(l.contains("10.255.1.2"));
  CHECK_FALSE(l.contains("11.0.0.1"));
  CHECK(l.contains("192.168.1.200"));
  CHECK_FALSE(l.contains("192.168.1.127"));
  CHECK(l.contains("2001:db8:1::5"));
  CHECK_FALSE(l.contains("2001:db9::1"));
  CHECK(l.contains("::1"));
  CHECK(l.contains("::ffff:10.1.2.3"));  // an IPv4 peer on a dual-stack socket
  CHECK_FALSE(l.contains(""));           // a unix-socket peer
  CHECK_FALSE(l.contains("not-an-ip"));
  CHECK_FALSE(l.any());

  AddressList all = list("*");
  CHECK(all.any());
  CHECK(all.contains("203.0.113.9"));
  CHECK(all.contains(""));

  AddressList none = list("");
  CHECK_FALSE(none.contains("127.0.0.1"));

  CHECK(list("0.0.0.0/0").contains("203.0.113.9"));
  CHECK(list("10.1.2.3/32").contains("10.1.2.3"));
  CHECK_FALSE(list("10.1.2.3/32").contains("10.1.2.4"));
}

TEST_CASE("address list: bad entries are refused with the entry named") {
  for (const char* bad : {"300.1.1.1", "10.0.0.0/33", "::1/129", "10.0.0.0/x", "10.0.0.0/",
                          "localhost", "127.0.0.1,nope", "10.0.0.0/-1"}) {
    AddressList l;
    std::string error;
    INFO(std::string(bad));
    CHECK_FALSE(AddressList::parse(bad, &l, &error));
    CHECK(error.find("expected '*' or IP addresses") == 0);
  }
  CHECK(rotor::conf::check_address_list("1.2.3.4/24, *").empty());
  CHECK(rotor::conf::check_address_list("1.2.3.4/").find("'1.2.3.4/' is neither") !=
        std::string::npos);
}

TEST_CASE("forwarded client: the rightmost address that is not a trusted proxy") {
  AddressList proxies = list("127.0.0.1,10.0.0.0/8");
  CHECK(forwarded_client("203.0.113.7", proxies) == "203.0.113.7");
  // A client may send its own X-Forwarded-For: what the trusted proxies appended wins.
  CHECK(forwarded_client("6.6.6.6, 198.51.100.2, 10.0.0.5", proxies) == "198.51.100.2");
  CHECK(forwarded_client(" 198.51.100.2 ,10.1.1.1,", proxies) == "198.51.100.2");
  CHECK(forwarded_client("10.0.0.9, 127.0.0.1", proxies) == "10.0.0.9");  // all trusted
  CHECK(forwarded_client("", proxies).empty());
  CHECK(forwarded_client(" , ", proxies).empty());
  // "*": every hop is trusted, so the leftmost is the client.
  CHECK(forwarded_client("198.51.100.2, 203.0.113.1", list("*")) == "198.51.100.2");
}

TEST_CASE("forwarded client: what is not an address names nobody") {
  AddressList proxies = list("127.0.0.1,10.0.0.0/8");
  CHECK(forwarded_client("not-an-ip", proxies).empty());
  CHECK(forwarded_client("203.0.113.7, not-an-ip", proxies).empty());
  CHECK(forwarded_client("not-an-ip, 10.0.0.5", proxies).empty());
  CHECK(forwarded_client("unknown", list("*")).empty());
  CHECK(forwarded_client("203.0.113.7:4711", proxies).empty());
  CHECK(forwarded_client("<script>", proxies).empty());
  // Addresses still count, IPv6 and an IPv4-mapped one too.
  CHECK(forwarded_client("not-an-ip, 2001:db8::7", proxies) == "2001:db8::7");
  CHECK(forwarded_client("::ffff:203.0.113.7", proxies) == "::ffff:203.0.113.7");
}

TEST_CASE("forwarded scheme: http or https from the nearest proxy") {
  CHECK(forwarded_scheme("https") == "https");
  CHECK(forwarded_scheme(" HTTPS ") == "https");
  CHECK(forwarded_scheme("http") == "http");
  CHECK(forwarded_scheme("https, http") == "http");
  CHECK(forwarded_scheme("ftp").empty());
  CHECK(forwarded_scheme("").empty());
  CHECK(forwarded_scheme("https\r\nx").empty());
}
