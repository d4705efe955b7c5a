#include "supervisor/identity.hpp"

#include <grp.h>
#include <pwd.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>

#include <spdlog/spdlog.h>

#include "log/log.hpp"

namespace rotor {

namespace {

bool parse_id(const std::string& s, unsigned long* out) {
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && p == s.data() + s.size();
}

}  // namespace

std::optional<Identity> resolve_identity(const std::string& user, const std::string& group,
                                         std::string* error) {
  Identity id;
  id.uid = getuid();
  id.gid = getgid();
  unsigned long num = 0;
  if (!user.empty()) {
    const passwd* pw =
        parse_id(user, &num) ? getpwuid(static_cast<uid_t>(num)) : getpwnam(user.c_str());
    if (pw) {
      id.uid = pw->pw_uid;
      id.gid = pw->pw_gid;
    } else if (parse_id(user, &num)) {
      id.uid = static_cast<uid_t>(num);
    } else {
      *error = "--user: no such user '" + user + "'";
      return std::nullopt;
    }
    id.switch_user = true;
  }
  if (!group.empty()) {
    const struct group* gr =
        parse_id(group, &num) ? getgrgid(static_cast<gid_t>(num)) : getgrnam(group.c_str());
    if (gr) {
      id.gid = gr->gr_gid;
    } else if (parse_id(group, &num)) {
      id.gid = static_cast<gid_t>(num);
    } else {
      *error = "--group: no such group '" + group + "'";
      return std::nullopt;
    }
    id.switch_user = true;
  }
  return id;
}

bool switch_identity(const Identity& id, std::string* error) {
  if (!id.switch_user) return true;
  // Not root (already switched, or started unprivileged): setgroups is refused and the
  // group list is not ours to change; setgid/setuid below still fail if the ids differ.
  if (setgroups(0, nullptr) != 0 && errno != EPERM) {
    *error = std::string("cannot switch user: setgroups: ") + std::strerror(errno);
    return false;
  }
  if (setgid(id.gid) != 0 || setuid(id.uid) != 0) {
    *error = std::string("cannot switch user: ") + std::strerror(errno);
    return false;
  }
  // A process that could go back to root has not dropped anything.
  if (id.uid != 0 && (setuid(0) == 0 || geteuid() != id.uid || getegid() != id.gid)) {
    *error = "cannot switch user: root could be regained";
    return false;
  }
  return true;
}

void warn_if_app_dir_unreadable() {
  char buf[4096];
  if (!getcwd(buf, sizeof buf)) return;  // unknown: Python will say what it finds
  // The whole path, as an import by absolute path resolves it: a parent the user cannot
  // search hides the directory as well.
  if (access(buf, R_OK | X_OK) == 0) return;
  std::string why = std::string("cannot read ") + buf + " as uid " + std::to_string(geteuid()) +
                    ": " + std::strerror(errno);
  spdlog::warn("event=app-dir-unreadable error={}", log::quote(why));
}

}  // namespace rotor
