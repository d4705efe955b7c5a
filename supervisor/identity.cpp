#include "supervisor/identity.hpp"

#include <grp.h>
#include <pwd.h>
#include <unistd.h>

#include <charconv>

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

}  // namespace rotor
