// --user/--group: resolved by the master at start-up (bad names fail early, exit 2) and
// applied by every child before it loads any app code: the template before its import, a cold
// worker before its own. Only the master keeps root (binding, creating the log files).
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

// Switches this process to `id` (no supplementary groups, then the group, then the user; from
// root that also clears every capability). True when there is nothing to switch. The
// parent-death signal is cleared by the switch: the caller sets it again. False with `error`
// set when the switch fails or did not take.
bool switch_identity(const Identity& id, std::string* error);

// After a switch, before the import: warns (event=app-dir-unreadable) when the app's directory
// (the current one, --chdir) cannot be read as the new user. Python would report only that the
// app's module does not exist; a warning, since an installed package imports all the same.
void warn_if_app_dir_unreadable();

}  // namespace rotor
