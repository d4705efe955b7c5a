#include "workers/worker_signals.hpp"

#include <unistd.h>

#include <csignal>
#include <iterator>
#include <type_traits>

namespace rotor::worker {

namespace {

constexpr int kLoopSignals[] = {SIGTERM, SIGINT, SIGQUIT, SIGUSR1, SIGUSR2};

void set_usr1_blocked(bool blocked) {
  sigset_t usr1;
  sigemptyset(&usr1);
  sigaddset(&usr1, SIGUSR1);
  sigprocmask(blocked ? SIG_BLOCK : SIG_UNBLOCK, &usr1, nullptr);
}

}  // namespace

void exit_at_once(int) {
  _exit(0);
}

void exit_on_stop_until_loop() {
  for (int s : {SIGTERM, SIGINT, SIGQUIT, SIGUSR2}) std::signal(s, exit_at_once);
  set_usr1_blocked(true);
  std::signal(SIGUSR1, SIG_DFL);  // blocked: kept pending, not discarded as when ignored
}

void LoopSignals::start(uv_loop_t* loop, uv_signal_cb on_signal, void* data) {
  static_assert(std::size(kLoopSignals) == std::extent_v<decltype(handles_)>);
  for (size_t i = 0; i < std::size(kLoopSignals); ++i) {
    uv_signal_init(loop, &handles_[i]);
    handles_[i].data = data;
    uv_signal_start(&handles_[i], on_signal, kLoopSignals[i]);
    uv_unref(reinterpret_cast<uv_handle_t*>(&handles_[i]));
  }
  set_usr1_blocked(false);
}

void exit_on_fast_stop() {
  for (int s : {SIGINT, SIGQUIT}) std::signal(s, exit_at_once);
}

}  // namespace rotor::worker
