// One client connection: reads with libuv, parses with llhttp (strict), hands complete
// requests to the handler one at a time (pipelined requests wait their turn) and writes the
// answers in order, batching everything one read produced into one write.
#pragma once

#include <llhttp.h>
#include <uv.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "workers/http/request.hpp"

namespace rotor::http {

class Server;

class Connection {
 public:
  explicit Connection(Server& server);
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Takes ownership of an accepted, non-blocking socket. False if libuv refused it (the fd is
  // closed then and the connection deletes itself).
  bool start(int fd, bool is_unix);

  // Answer the current request. `body` is omitted on the wire for HEAD.
  void respond(int status, std::string_view content_type, std::string_view body);

  // Server-driven transitions.
  void begin_drain();
  // At a request boundary with nothing buffered, passes the socket to another worker and
  // closes our side. False (and nothing changed) when it cannot.
  bool try_handoff();
  void close_now();
  void check_deadline(uint64_t now_ms);

  Connection* prev = nullptr;
  Connection* next = nullptr;

 private:
  static void on_alloc(uv_handle_t* h, size_t suggested, uv_buf_t* buf);
  static void on_read(uv_stream_t* s, ssize_t nread, const uv_buf_t* buf);
  static void on_write(uv_write_t* req, int status);
  static void on_shutdown(uv_shutdown_t* req, int status);
  static void on_close(uv_handle_t* h);

  // llhttp callbacks
  static int cb_message_begin(llhttp_t* p);
  static int cb_url(llhttp_t* p, const char* at, size_t len);
  static int cb_header_field(llhttp_t* p, const char* at, size_t len);
  static int cb_header_field_complete(llhttp_t* p);
  static int cb_header_value(llhttp_t* p, const char* at, size_t len);
  static int cb_header_value_complete(llhttp_t* p);
  static int cb_headers_complete(llhttp_t* p);
  static int cb_body(llhttp_t* p, const char* at, size_t len);
  static int cb_message_complete(llhttp_t* p);
  static const llhttp_settings_t& settings();

  void feed(const char* data, size_t len);
  int fail(int status, const char* reason);  // llhttp error return with our status
  void respond_error(int status);
  void after_response();
  void flush();
  void finish_output();
  void start_linger();
  void update_reading();
  void set_deadline(uint64_t ms_from_now);
  uint64_t now_ms() const;

  Server& server_;
  union {
    uv_handle_t handle;
    uv_stream_t stream;
    uv_tcp_t tcp;
    uv_pipe_t pipe;
  } h_;
  llhttp_t parser_;
  Request req_;
  bool field_open_ = false;  // a header name is being read (llhttp may split it)

  std::string out_;      // answers not yet handed to the kernel
  std::string writing_;  // the buffer of the uv_write in flight
  uv_write_t write_req_;
  uv_shutdown_t shutdown_req_;
  std::string pending_in_;  // bytes after a request whose answer is still pending

  void log_access(int status, uint64_t body_bytes);

  uint64_t deadline_ms_ = 0;  // 0 = none
  uint64_t started_hr_ = 0;   // request start (uv_hrtime), kept only for the access log
  int64_t started_wall_ = 0;
  std::string remote_;  // peer address, looked up once, for the access log
  int error_status_ = 0;
  bool reading_ = false;
  bool in_read_cb_ = false;
  bool in_message_ = false;  // between the first byte of a request and its last
  bool handling_ = false;    // the handler owns the current request
  bool paused_ = false;      // parser paused after a message (answer pending or closing)
  bool write_pending_ = false;
  bool close_after_ = false;  // close once the current answer is written
  bool lingering_ = false;
  bool closing_ = false;
  bool draining_ = false;
  bool answered_in_drain_ = false;  // one answer without Connection: close, then hand off
};

}  // namespace rotor::http
