#include "supervisor/scoreboard.hpp"

#include <sys/mman.h>
#include <time.h>

#include <cerrno>
#include <cstring>
#include <new>
#include <stdexcept>
#include <string>

namespace rotor {

const char* to_string(WorkerState state) {
  switch (state) {
    case WorkerState::kFree:
      return "free";
    case WorkerState::kBooting:
      return "booting";
    case WorkerState::kReady:
      return "ready";
    case WorkerState::kRetiring:
      return "retiring";
    case WorkerState::kDraining:
      return "draining";
  }
  return "unknown";
}

Scoreboard::Scoreboard(size_t slots) : size_(slots) {
  void* mem = mmap(nullptr, sizeof(Header) + sizeof(Slot) * slots, PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) {
    throw std::runtime_error(std::string("scoreboard mmap failed: ") + std::strerror(errno));
  }
  header_ = new (mem) Header();
  slots_ = reinterpret_cast<Slot*>(static_cast<char*>(mem) + sizeof(Header));
  for (size_t i = 0; i < slots; ++i) new (&slots_[i]) Slot();
}

Scoreboard::~Scoreboard() {
  munmap(header_, sizeof(Header) + sizeof(Slot) * size_);
}

long Scoreboard::find_free() const {
  for (size_t i = 0; i < size_; ++i) {
    if (slots_[i].token.load(std::memory_order_relaxed) == 0) return static_cast<long>(i);
  }
  return -1;
}

void Scoreboard::claim(size_t index, uint64_t token, uint64_t request_limit) {
  Slot& s = slots_[index];
  s.request_limit.store(request_limit, std::memory_order_relaxed);
  s.generation.store(0, std::memory_order_relaxed);
  s.leak_trace.store(0, std::memory_order_relaxed);
  s.state.store(static_cast<uint32_t>(WorkerState::kBooting), std::memory_order_relaxed);
  s.connections.store(0, std::memory_order_relaxed);
  s.in_flight.store(0, std::memory_order_relaxed);
  s.requests.store(0, std::memory_order_relaxed);
  s.heartbeat_ns.store(monotonic_ns(), std::memory_order_relaxed);
  s.ready_ns.store(0, std::memory_order_relaxed);
  s.request_counters.reset();
  s.token.store(token, std::memory_order_release);
  if (index + 1 > header_->high_water.load(std::memory_order_relaxed)) {
    header_->high_water.store(static_cast<uint32_t>(index + 1), std::memory_order_release);
  }
}

void Scoreboard::release(size_t index) {
  slots_[index].state.store(static_cast<uint32_t>(WorkerState::kFree), std::memory_order_relaxed);
  slots_[index].token.store(0, std::memory_order_release);
}

int64_t monotonic_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

}  // namespace rotor
