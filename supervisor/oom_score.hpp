// The OOM killer's preference among rotor's processes: the template and the workers get a higher
// oom_score_adj than the master, so that if the kernel must kill, it kills a worker (which the
// master replaces) and not the master (which would take every worker with it).
#pragma once

#include <optional>

namespace rotor {

// The score of a child of a master at `master_adj`: the master's raised by a fixed amount, within
// the kernel's range -1000..1000. The template and the workers get the same: among them the
// kernel then picks the largest, a leaking worker before the template it was forked from. Only
// ever a raise: an unprivileged process may not lower its score.
int child_oom_score_adj(int master_adj);

// This process's /proc/self/oom_score_adj; nothing when it cannot be read.
std::optional<int> read_own_oom_score_adj();

// Whether this process may set its score (it writes back its own, a no-op): the master checks
// once and warns, so that its children need not warn each time.
bool own_oom_score_adj_writable();

// In a child the master forked (so its score is still the master's): raises it. A failure is
// logged at debug level and never stops the child.
void raise_own_oom_score_adj();

}  // namespace rotor
