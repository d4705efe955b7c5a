#include "supervisor/signal_batch.hpp"

#include <csignal>

namespace rotor {

void SignalBatch::add(int sig) {
  switch (sig) {
    case SIGTERM:
      term_ = true;
      break;
    case SIGINT:
    case SIGQUIT:
      fast_ = true;
      break;
    case SIGHUP:
      hup_ = true;
      break;
    case SIGTTIN:
      ++ttin_;
      break;
    case SIGTTOU:
      ++ttou_;
      break;
    case SIGUSR1:
      usr1_ = true;
      break;
    default:
      break;  // SIGCHLD: the sweep reaps
  }
}

SignalPlan SignalBatch::plan(bool stopping) const {
  SignalPlan p;
  p.stop = fast_ ? StopKind::kFast : term_ ? StopKind::kGraceful : StopKind::kNone;
  p.reopen = usr1_;
  if (stopping || p.stop != StopKind::kNone) {
    p.ignored = (hup_ ? 1 : 0) + ttin_ + ttou_;
    return p;
  }
  p.reload = hup_;
  p.scale = ttin_ - ttou_;
  return p;
}

}  // namespace rotor
