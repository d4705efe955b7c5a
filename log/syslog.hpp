// --log-syslog: the error log's lines also go to a syslog daemon, as RFC 3164 messages
// ("<PRI>Mmm dd hh:mm:ss [HOST ]TAG[PID]: MESSAGE"), as gunicorn's --log-syslog does.
#pragma once

#include <string>
#include <string_view>

namespace rotor::log {

struct SyslogAddress {
  enum class Type { kUnix, kUdp, kTcp } type = Type::kUdp;
  std::string path;         // kUnix
  bool stream = false;      // kUnix: "#stream"; plain unix:// tries a datagram socket first
  bool dgram_only = false;  // kUnix: "#dgram"
  std::string host;         // kUdp, kTcp
  std::string port = "514";
};

// unix://PATH[#dgram|#stream], udp://HOST[:PORT], tcp://HOST[:PORT] (gunicorn's forms; an
// IPv6 host in brackets). "" on success, else what was expected.
std::string parse_syslog_address(std::string_view text, SyslogAddress* out);

// The syslog facility's number for its name ("user" 1, "local0" 16), -1 if unknown.
int syslog_facility(std::string_view name);

// Adds a syslog destination to the logger log::setup installed (call it after each setup).
// `tag` empty means "rotor". False with `error` set when the address cannot be reached.
bool add_syslog(const std::string& address, const std::string& tag, const std::string& facility,
                std::string* error);

}  // namespace rotor::log
