// supervisor/pid_file: which directories a pid file may be written in.
#include <doctest/doctest.h>
#include <sys/stat.h>

#include "supervisor/pid_file.hpp"

using rotor::pid_directory_trusted;

TEST_SUITE("pid_file") {
  TEST_CASE("root trusts only directories that no other user can change, or sticky ones") {
    CHECK(pid_directory_trusted(S_IFDIR | 0755, 0, 0, 0, 0));   // /run
    CHECK(pid_directory_trusted(S_IFDIR | 0775, 0, 0, 0, 0));   // group root
    CHECK(pid_directory_trusted(S_IFDIR | 01777, 0, 0, 0, 0));  // /tmp
    // Sticky, but its owner may still replace root's file in it (and clear the bit).
    CHECK_FALSE(pid_directory_trusted(S_IFDIR | 01777, 65534, 65534, 0, 0));
    CHECK_FALSE(pid_directory_trusted(S_IFDIR | 01755, 65534, 0, 0, 0));
    CHECK_FALSE(pid_directory_trusted(S_IFDIR | 0777, 0, 0, 0, 0));
    CHECK_FALSE(pid_directory_trusted(S_IFDIR | 0755, 65534, 0, 0, 0));  // the owner can chmod
    CHECK_FALSE(pid_directory_trusted(S_IFDIR | 0775, 0, 65534, 0, 0));
    CHECK_FALSE(pid_directory_trusted(S_IFDIR | 0700, 65534, 0, 0, 0));
  }

  TEST_CASE("a user trusts its own directories and its own group's") {
    CHECK(pid_directory_trusted(S_IFDIR | 0755, 1000, 1000, 1000, 1000));
    CHECK(pid_directory_trusted(S_IFDIR | 0775, 1000, 1000, 1000, 1000));  // a private group
    CHECK_FALSE(pid_directory_trusted(S_IFDIR | 0775, 1000, 100, 1000, 1000));
    CHECK_FALSE(pid_directory_trusted(S_IFDIR | 0755, 1001, 1000, 1000, 1000));
    CHECK_FALSE(pid_directory_trusted(S_IFDIR | 0777, 1000, 1000, 1000, 1000));
  }
}
