// The WebSocket opening handshake's arithmetic (RFC 6455 section 4): the Sec-WebSocket-Accept a
// server answers with, and the checks of the client's request headers. Pure: no I/O.
#pragma once

#include <string>
#include <string_view>

namespace rotor::ws {

// Sec-WebSocket-Accept for a client's Sec-WebSocket-Key:
// base64(SHA-1(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")).
std::string accept_key(std::string_view client_key);
// A Sec-WebSocket-Key must be the base64 of 16 bytes: 24 characters of the base64 alphabet ending
// in "==" (after trimming spaces/tabs).
bool valid_client_key(std::string_view key);
// Whether a comma-separated header value (Connection, Upgrade) contains `token`,
// case-insensitively, ignoring spaces/tabs around items.
bool has_token(std::string_view header_value, std::string_view lower_token);
// SHA-1 digest (20 bytes) and standard base64 (with padding): exposed for tests.
std::string sha1(std::string_view data);
std::string base64(std::string_view data);

}  // namespace rotor::ws
