#include "workers/http/forwarded.hpp"

#include <vector>

#include "workers/http/request.hpp"

namespace rotor::http {

std::string forwarded_client(std::string_view chain, const conf::AddressList& trusted) {
  std::vector<std::string_view> hops;
  for (std::string_view hop; next_list_item(&chain, &hop);) hops.push_back(hop);
  if (hops.empty()) return "";
  std::string_view client = hops.front();
  if (!trusted.any()) {
    for (auto it = hops.rbegin(); it != hops.rend(); ++it) {
      if (!trusted.contains(*it)) {
        client = *it;
        break;
      }
    }
  }
  // What is not an address (a proxy passing on what its client made up) names nobody.
  return conf::is_ip_address(client) ? std::string(client) : "";
}

std::string_view forwarded_scheme(std::string_view value) {
  size_t comma = value.rfind(',');
  std::string_view last =
      trim_ows(comma == std::string_view::npos ? value : value.substr(comma + 1));
  if (iequals(last, "https")) return "https";
  if (iequals(last, "http")) return "http";
  return "";
}

}  // namespace rotor::http
