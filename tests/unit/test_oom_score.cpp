// The oom_score_adj of the template and the workers, from the master's.
#include <doctest/doctest.h>

#include "supervisor/oom_score.hpp"

using rotor::child_oom_score_adj;

TEST_CASE("children score 300 above the master") {
  CHECK(child_oom_score_adj(0) == 300);
  CHECK(child_oom_score_adj(100) == 400);
  CHECK(child_oom_score_adj(-500) == -200);
}

TEST_CASE("children's score stays within the kernel's range") {
  CHECK(child_oom_score_adj(900) == 1000);
  CHECK(child_oom_score_adj(1000) == 1000);
  CHECK(child_oom_score_adj(-1000) == -700);
  // Out-of-range input (never from the kernel) is clamped before the raise.
  CHECK(child_oom_score_adj(5000) == 1000);
  CHECK(child_oom_score_adj(-5000) == -700);
}

TEST_CASE("children never score below the master") {
  for (int master = -1000; master <= 1000; master += 50) {
    CHECK(child_oom_score_adj(master) >= master);
  }
}
