#include "supervisor/oom_score.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>

#include "log/log.hpp"

namespace rotor {

namespace {

constexpr const char* kPath = "/proc/self/oom_score_adj";
constexpr int kMin = -1000;
constexpr int kMax = 1000;
// 300 thousandths of the machine's memory are added to a child's badness: a worker is chosen
// over a master up to that much larger than it.
constexpr int kChildRaise = 300;

bool write_own(int value) {
  std::ofstream out(kPath);
  out << value;
  out.flush();
  return static_cast<bool>(out);
}

}  // namespace

int child_oom_score_adj(int master_adj) {
  return std::clamp(std::clamp(master_adj, kMin, kMax) + kChildRaise, kMin, kMax);
}

std::optional<int> read_own_oom_score_adj() {
  std::ifstream in(kPath);
  int value = 0;
  if (!(in >> value)) return std::nullopt;
  return value;
}

bool own_oom_score_adj_writable() {
  std::optional<int> own = read_own_oom_score_adj();
  return own && write_own(*own);
}

void raise_own_oom_score_adj() {
  std::optional<int> master = read_own_oom_score_adj();
  int value = child_oom_score_adj(master.value_or(0));
  if (!master || !write_own(value)) {
    spdlog::debug("event=oom-score-failed value={} error={}", value,
                  log::quote(std::strerror(errno)));
  }
}

}  // namespace rotor
