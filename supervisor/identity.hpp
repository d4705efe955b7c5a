// --user/--group: resolved by the master at start-up (bad names fail early, exit 2) and
// applied by each worker after fork.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>

namespace rotor {

struct Identity {
  bool switch_user = false;
  uid_t uid = 0;
  gid_t gid = 0;
};

// Names or numeric ids. Empty strings keep the current user/group.
std::optional<Identity> resolve_identity(const std::string& user, const std::string& group,
                                         std::string* error);

}  // namespace rotor
