// What a trusted reverse proxy says about the client: X-Forwarded-For and X-Forwarded-Proto, read
// as uvicorn reads them (--proxy-headers, --forwarded-allow-ips).
#pragma once

#include <string>
#include <string_view>

#include "conf/address_list.hpp"

namespace rotor::http {

// `chain` is every X-Forwarded-For value joined by commas, each proxy having appended the peer
// it saw. From the right, the first address that is not itself a trusted proxy is the client;
// when all are trusted (or trust is "*") the leftmost is. "" when the chain names no address, or
// the hop found is not an IP address.
std::string forwarded_client(std::string_view chain, const conf::AddressList& trusted);

// "http" or "https" from the last entry of an X-Forwarded-Proto value (the nearest proxy's), in
// any case; "" for anything else.
std::string_view forwarded_scheme(std::string_view value);

}  // namespace rotor::http
