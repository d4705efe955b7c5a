// The master's signals, collected from one read of the signalfd and then acted on in a fixed
// order, as nginx's master loop does: a stop first, and a stop wins over everything else in
// the batch or after it. A HUP would bind its new addresses (accepting connections nobody will
// serve) and may run a gunicorn.conf.py in a master that is leaving; a TTIN would raise the
// target of a pool that is draining. A pure decision: the arbiter carries the plan out.
#pragma once

namespace rotor {

enum class StopKind { kNone, kGraceful, kFast };

struct SignalPlan {
  StopKind stop = StopKind::kNone;  // begin a stop of this kind
  bool reload = false;              // HUP
  int scale = 0;                    // TTIN minus TTOU
  bool reopen = false;              // USR1: logs are reopened, also while stopping
  int ignored = 0;                  // HUP, TTIN, TTOU dropped because of a stop
};

class SignalBatch {
 public:
  void add(int sig);
  // What to do, given whether the master was already stopping before this batch.
  SignalPlan plan(bool stopping) const;

 private:
  bool term_ = false, fast_ = false, hup_ = false, usr1_ = false;
  int ttin_ = 0, ttou_ = 0;
};

}  // namespace rotor
