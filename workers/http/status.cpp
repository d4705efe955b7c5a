#include "workers/http/status.hpp"

namespace rotor::http {

std::string_view status_line(int status) {
  switch (status) {
    case 100:
      return "100 Continue";
    case 101:
      return "101 Switching Protocols";
    case 200:
      return "200 OK";
    case 201:
      return "201 Created";
    case 202:
      return "202 Accepted";
    case 204:
      return "204 No Content";
    case 206:
      return "206 Partial Content";
    case 301:
      return "301 Moved Permanently";
    case 302:
      return "302 Found";
    case 303:
      return "303 See Other";
    case 304:
      return "304 Not Modified";
    case 307:
      return "307 Temporary Redirect";
    case 308:
      return "308 Permanent Redirect";
    case 400:
      return "400 Bad Request";
    case 401:
      return "401 Unauthorized";
    case 403:
      return "403 Forbidden";
    case 404:
      return "404 Not Found";
    case 405:
      return "405 Method Not Allowed";
    case 408:
      return "408 Request Timeout";
    case 409:
      return "409 Conflict";
    case 411:
      return "411 Length Required";
    case 413:
      return "413 Content Too Large";
    case 414:
      return "414 URI Too Long";
    case 415:
      return "415 Unsupported Media Type";
    case 417:
      return "417 Expectation Failed";
    case 422:
      return "422 Unprocessable Content";
    case 426:
      return "426 Upgrade Required";
    case 429:
      return "429 Too Many Requests";
    case 431:
      return "431 Request Header Fields Too Large";
    case 500:
      return "500 Internal Server Error";
    case 501:
      return "501 Not Implemented";
    case 502:
      return "502 Bad Gateway";
    case 503:
      return "503 Service Unavailable";
    case 504:
      return "504 Gateway Timeout";
    case 505:
      return "505 HTTP Version Not Supported";
    default:
      return {};
  }
}

}  // namespace rotor::http
