// The master's half of --leak-report: which spawns are traced (a pure decision) and the report
// directory, checked before anything is forked. The tracing itself runs in the traced worker's
// Python (workers/asgi/leak_report.*).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>

namespace rotor {

// Whether the worker of the `spawn`th spawn (1, 2, ... in the master's order) is traced: with
// --leak-report on, the first and then one in `every`, so that one worker in `every` pays for
// tracemalloc whatever the number of workers.
bool traces_leaks(bool enabled, int64_t every, uint64_t spawn);

// Why `dir` cannot take the workers' JSON reports, as one line; empty when it can. A missing
// directory is created (given to `owner`/`group` when `give` is set: the workers' --user).
// Writability is proven by creating and removing a file, as root's access() would not.
std::string leak_report_dir_refusal(const std::string& dir, bool give, uid_t owner, gid_t group);

}  // namespace rotor
