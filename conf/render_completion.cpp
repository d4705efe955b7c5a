// The bash completion for rotor (--help-bash-completion), derived from the option table so it
// cannot drift from it: every flag, and after a flag that takes a value, what that value can be;
// and the `rotor ctl` / `rotor top` subcommands' words.
#include <string>
#include <string_view>
#include <vector>

#include "conf/load.hpp"
#include "conf/options.hpp"

namespace rotor::conf {
namespace {

enum class ValueKind { kNone, kFile, kDirectory, kWords, kFree };

// Paths are told by their metavar, the one place the table says what a value is.
ValueKind value_kind(const Option& option) {
  if (option.kind == Kind::kBool) return ValueKind::kNone;
  if (!option.choices.empty() || !option.words.empty()) return ValueKind::kWords;
  if (option.metavar == "FILE" || option.metavar == "PATH") return ValueKind::kFile;
  if (option.metavar == "DIR") return ValueKind::kDirectory;
  return ValueKind::kFree;
}

std::string joined(const std::vector<std::string>& items, std::string_view separator) {
  std::string out;
  for (const std::string& item : items) out += (out.empty() ? "" : std::string(separator)) + item;
  return out;
}

std::string case_arm(const std::vector<std::string>& flags, std::string_view body) {
  return "    " + joined(flags, "|") + ")\n      " + std::string(body) + "\n      return ;;\n";
}

// The flags after which the word being completed is a value, grouped by what completes it.
std::string value_arms() {
  std::vector<std::string> files, directories, free;
  std::string out;
  for (const Option& option : options()) {
    if (!option.flags.starts_with('-')) continue;  // the positional APP
    std::vector<std::string> names = flag_names(option.flags);
    switch (value_kind(option)) {
      case ValueKind::kNone:
        break;
      case ValueKind::kFile:
        files.insert(files.end(), names.begin(), names.end());
        break;
      case ValueKind::kDirectory:
        directories.insert(directories.end(), names.begin(), names.end());
        break;
      case ValueKind::kFree:
        free.insert(free.end(), names.begin(), names.end());
        break;
      case ValueKind::kWords: {
        std::vector<std::string> words(option.choices.begin(), option.choices.end());
        for (auto [word, value] : option.words) words.emplace_back(word);
        out += case_arm(names, "_rotor_words '" + joined(words, " ") + "'");
        break;
      }
    }
  }
  out += case_arm(files, "_rotor_paths -f");
  out += case_arm(directories, "_rotor_paths -d");
  return out + case_arm(free, "COMPREPLY=()");
}

std::string all_flags() {
  std::vector<std::string> flags;
  for (const Option& option : options()) {
    if (!option.flags.starts_with('-')) continue;
    for (const std::string& name : flag_names(option.flags)) flags.push_back(name);
    if (!option.negation.empty()) flags.emplace_back(option.negation);
  }
  for (const ActionFlag& flag : action_flags()) {
    if (flag.hidden) continue;
    for (const std::string& name : flag_names(flag.flags)) flags.push_back(name);
  }
  return joined(flags, " ");
}

constexpr std::string_view kHeader =
    R"(# bash completion for rotor(1). Generated from rotor's option table by
# `rotor --help-bash-completion` (scripts/update-options-table.sh); do not edit.

_rotor_words() {
  mapfile -t COMPREPLY < <(compgen -W "$1" -- "$cur")
}

_rotor_paths() {
  compopt -o filenames 2>/dev/null
  mapfile -t COMPREPLY < <(compgen "$1" -- "$cur")
}

# rotor ctl and rotor top: their own options and commands.
_rotor_subcommand() {
  case $prev in
    --socket|-s|--config|-c) _rotor_paths -f; return ;;
  esac
  if [[ ${COMP_WORDS[1]} == top ]]; then
    _rotor_words '--socket --config --once'
  else
    _rotor_words '--socket --config --json status workers reload scale add remove rotate reopen stop'
  fi
}

_rotor() {
  local cur=${COMP_WORDS[COMP_CWORD]} prev=
  ((COMP_CWORD > 0)) && prev=${COMP_WORDS[COMP_CWORD - 1]}
  if ((COMP_CWORD >= 2)) && [[ ${COMP_WORDS[1]} == ctl || ${COMP_WORDS[1]} == top ]]; then
    _rotor_subcommand
    return
  fi
  if ((COMP_CWORD == 1)) && [[ -n $cur && $cur != -* ]]; then
    _rotor_words 'ctl top'
    return
  fi
  case $prev in
)";

constexpr std::string_view kFooter = R"(  esac
  COMPREPLY=()
  [[ $cur == -* ]] || return
  _rotor_words '@FLAGS@'
}

complete -F _rotor rotor
)";

}  // namespace

std::string options_bash_completion() {
  std::string footer(kFooter);
  footer.replace(footer.find("@FLAGS@"), 7, all_flags());
  return std::string(kHeader) + value_arms() + footer;
}

}  // namespace rotor::conf
