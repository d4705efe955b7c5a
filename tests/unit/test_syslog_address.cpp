// log/syslog: gunicorn's forms of --log-syslog-to, and the facility names.
#include <doctest/doctest.h>

#include "log/syslog.hpp"

using rotor::log::parse_syslog_address;
using rotor::log::syslog_facility;
using rotor::log::SyslogAddress;

TEST_SUITE("syslog address") {
  TEST_CASE("a unix socket, its type chosen or tried") {
    SyslogAddress a;
    CHECK(parse_syslog_address("unix:///dev/log", &a) == "");
    CHECK(a.type == SyslogAddress::Type::kUnix);
    CHECK(a.path == "/dev/log");
    CHECK_FALSE(a.stream);
    CHECK_FALSE(a.dgram_only);
    CHECK(parse_syslog_address("unix:///run/log.sock#stream", &a) == "");
    CHECK(a.path == "/run/log.sock");
    CHECK(a.stream);
    CHECK(parse_syslog_address("unix:///run/log.sock#dgram", &a) == "");
    CHECK(a.dgram_only);
    CHECK(parse_syslog_address("unix://", &a) != "");
    CHECK(parse_syslog_address("unix:///dev/log#raw", &a) != "");
  }

  TEST_CASE("udp and tcp: a host, a port that defaults to 514, IPv6 in brackets") {
    SyslogAddress a;
    CHECK(parse_syslog_address("udp://localhost", &a) == "");
    CHECK(a.type == SyslogAddress::Type::kUdp);
    CHECK(a.host == "localhost");
    CHECK(a.port == "514");
    CHECK(parse_syslog_address("tcp://log.example:6514", &a) == "");
    CHECK(a.type == SyslogAddress::Type::kTcp);
    CHECK(a.host == "log.example");
    CHECK(a.port == "6514");
    CHECK(parse_syslog_address("udp://[::1]", &a) == "");
    CHECK(a.host == "::1");
    CHECK(a.port == "514");
    CHECK(parse_syslog_address("udp://[::1]:515", &a) == "");
    CHECK(a.port == "515");
    for (const char* bad :
         {"udp://", "udp://:514", "udp://host:0", "udp://host:65536", "udp://host:x", "udp://[::1",
          "udp://[::1]x", "tcp://a b:1", "http://host", "localhost:514", ""}) {
      CAPTURE(bad);
      CHECK(parse_syslog_address(bad, nullptr) != "");
    }
  }

  TEST_CASE("facility names as gunicorn's, in any case") {
    CHECK(syslog_facility("user") == 1);
    CHECK(syslog_facility("LOCAL3") == 19);
    CHECK(syslog_facility("security") == 4);
    CHECK(syslog_facility("local8") == -1);
    CHECK(syslog_facility("") == -1);
  }
}
