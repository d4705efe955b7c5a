// Sharing connections between workers. Every worker polls the same accept queue (and handoff
// queue); an idle worker would win every race and take them all, leaving the others idle
// while it saturates. So a worker takes a connection only while it holds no more than one
// more than the least loaded other accepting worker -- the least loaded always may, so
// connections never wait for everyone to decline.
#pragma once

#include <cstdint>
#include <limits>

namespace rotor::worker {

constexpr uint32_t kNoOtherWorker = std::numeric_limits<uint32_t>::max();

inline bool may_take_connection(uint64_t mine, uint32_t least_loaded_other) {
  if (least_loaded_other == kNoOtherWorker) return true;
  return mine <= static_cast<uint64_t>(least_loaded_other) + 1;
}

}  // namespace rotor::worker
