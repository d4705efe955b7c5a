#include "conf/address_list.hpp"

#include <arpa/inet.h>

#include <charconv>
#include <cstring>

#include "workers/http/grammar.hpp"

namespace rotor::conf {

namespace {

// An address as 16 bytes: IPv4 in the first 4 (v6 false), IPv4-mapped IPv6 counted as IPv4.
bool parse_address(std::string_view text, bool* v6, std::array<uint8_t, 16>* bytes) {
  char buf[INET6_ADDRSTRLEN];
  if (text.empty() || text.size() >= sizeof buf) return false;
  std::memcpy(buf, text.data(), text.size());
  buf[text.size()] = '\0';
  bytes->fill(0);
  if (inet_pton(AF_INET, buf, bytes->data()) == 1) {
    *v6 = false;
    return true;
  }
  if (inet_pton(AF_INET6, buf, bytes->data()) != 1) return false;
  static const uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (std::memcmp(bytes->data(), kMapped, sizeof kMapped) == 0) {
    std::memmove(bytes->data(), bytes->data() + 12, 4);
    std::memset(bytes->data() + 4, 0, 12);
    *v6 = false;
    return true;
  }
  *v6 = true;
  return true;
}

}  // namespace

bool AddressList::parse(std::string_view text, AddressList* out, std::string* error) {
  *out = AddressList();
  for (std::string_view entry; http::next_list_item(&text, &entry);) {
    if (entry == "*") {
      out->any_ = true;
      continue;
    }
    Network n;
    std::string_view addr = entry;
    unsigned prefix = 128;  // none given: the whole address
    bool prefix_ok = true;
    if (size_t slash = entry.find('/'); slash != std::string_view::npos) {
      addr = entry.substr(0, slash);
      std::string_view bits = entry.substr(slash + 1);
      auto [end, ec] = std::from_chars(bits.data(), bits.data() + bits.size(), prefix);
      prefix_ok = !bits.empty() && ec == std::errc() && end == bits.data() + bits.size();
    }
    bool ok = parse_address(addr, &n.v6, &n.bytes);
    unsigned width = n.v6 ? 128 : 32;
    if (entry.find('/') == std::string_view::npos) prefix = width;
    if (!ok || !prefix_ok || prefix > width) {
      if (error) {
        *error =
            "expected '*' or IP addresses and networks (192.0.2.0/24, 2001:db8::/32) "
            "separated by commas ('" +
            std::string(entry) + "' is neither)";
      }
      return false;
    }
    n.prefix = static_cast<int>(prefix);
    out->networks_.push_back(n);
  }
  return true;
}

bool AddressList::contains(std::string_view address) const {
  if (any_) return true;
  bool v6 = false;
  std::array<uint8_t, 16> bytes{};
  if (!parse_address(address, &v6, &bytes)) return false;
  for (const Network& n : networks_) {
    if (n.v6 != v6) continue;
    int full = n.prefix / 8, rest = n.prefix % 8;
    if (std::memcmp(n.bytes.data(), bytes.data(), static_cast<size_t>(full)) != 0) continue;
    if (rest) {
      auto mask = static_cast<uint8_t>(0xff << (8 - rest));
      if ((n.bytes[static_cast<size_t>(full)] & mask) !=
          (bytes[static_cast<size_t>(full)] & mask)) {
        continue;
      }
    }
    return true;
  }
  return false;
}

bool is_ip_address(std::string_view text) {
  bool v6;
  std::array<uint8_t, 16> bytes;
  return parse_address(text, &v6, &bytes);
}

std::string check_address_list(std::string_view text) {
  AddressList list;
  std::string error;
  return AddressList::parse(text, &list, &error) ? std::string() : error;
}

}  // namespace rotor::conf
