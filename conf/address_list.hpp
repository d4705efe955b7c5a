// Address lists in options (--forwarded-allow-ips): "*", or IPv4/IPv6 addresses and CIDR
// networks separated by commas. Parsed once; matched against a peer's textual address.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace rotor::conf {

class AddressList {
 public:
  // False with `error` ("expected ...") when an entry is neither an address nor a network.
  static bool parse(std::string_view text, AddressList* out, std::string* error);

  // Whether `address` ("192.0.2.1", "::1", "::ffff:192.0.2.1") is in the list. An empty address
  // (a unix-socket peer) is only in "*".
  bool contains(std::string_view address) const;
  bool any() const { return any_; }

 private:
  struct Network {
    bool v6 = false;
    std::array<uint8_t, 16> bytes{};
    int prefix = 0;  // leading bits that must match
  };
  bool any_ = false;
  std::vector<Network> networks_;
};

// Whether `text` is one IPv4 or IPv6 address, as written in a peer's address.
bool is_ip_address(std::string_view text);

// The option's check: "" when `text` parses, else what was expected.
std::string check_address_list(std::string_view text);

}  // namespace rotor::conf
