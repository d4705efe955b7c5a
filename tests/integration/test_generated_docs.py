"""The man page docs/rotor.1 and the bash completion deploy/bash-completion/rotor are generated
from the option table (`rotor --help-man`, `rotor --help-bash-completion`, written by
scripts/update-options-table.sh): they match it byte for byte, the page renders without a groff
warning, and the completion completes what the table declares."""
import os
import re
import shlex
import shutil
import subprocess

import pytest

from conftest import BIN, ROOT

MAN_PAGE = ROOT / "docs" / "rotor.1"
COMPLETION = ROOT / "deploy" / "bash-completion" / "rotor"


def generated(flag):
    return subprocess.run([str(BIN), flag], capture_output=True, text=True, check=True,
                          timeout=15).stdout


def option_flags():
    """Every flag of the option table, from the binary's own --help (not from the generators)."""
    out = subprocess.run([str(BIN), "--help"], capture_output=True, text=True, check=True).stdout
    return set(re.findall(r"(?<![\w-])--?[a-z][a-z0-9_-]*", out))


def test_the_man_page_is_generated_from_the_option_table():
    assert MAN_PAGE.read_text() == generated("--help-man"), \
        "docs/rotor.1 is stale: run scripts/update-options-table.sh"


def test_the_bash_completion_is_generated_from_the_option_table():
    assert COMPLETION.read_text() == generated("--help-bash-completion"), \
        "deploy/bash-completion/rotor is stale: run scripts/update-options-table.sh"


def test_the_generators_are_hidden_from_help():
    out = subprocess.run([str(BIN), "--help"], capture_output=True, text=True, check=True).stdout
    assert "--help-man" not in out and "--help-bash-completion" not in out


@pytest.mark.skipif(shutil.which("groff") is None, reason="groff is not installed")
def test_the_man_page_renders_without_warnings():
    r = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z", str(MAN_PAGE)],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    text = subprocess.run(["groff", "-man", "-Tascii", "-P-cbou", "-rLL=200n", str(MAN_PAGE)],
                          capture_output=True, text=True, check=True, timeout=30).stdout
    for section in ("NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "EXIT STATUS", "SIGNALS",
                    "ENVIRONMENT", "FILES", "SEE ALSO"):
        assert f"\n{section}\n" in text, section
    flags = option_flags()
    assert "--max-requests-jitter" in flags and "--no-preload" in flags
    missing = [flag for flag in sorted(flags) if flag not in text]
    assert not missing, f"flags --help lists but the man page does not: {missing}"
    assert "Environment: ROTOR_MAX_REQUESTS." in text and "Default: 0." in text
    assert "$VIRTUAL_ENV/bin/python" in text


@pytest.mark.skipif(shutil.which("man") is None, reason="man is not installed")
def test_man_renders_the_page_without_warnings_as_lintian_asks_it():
    env = dict(os.environ, LC_ALL="C.UTF-8", MANROFFSEQ="", MANWIDTH="80")
    r = subprocess.run(["man", "--warnings", "-E", "UTF-8", "-l", "-Tutf8", "-Z", str(MAN_PAGE)],
                       capture_output=True, text=True, env=env, timeout=30)
    assert r.returncode == 0 and r.stderr == "", r.stderr


def complete(words, cwd=None):
    """What _rotor offers for the last of `words`, the word being completed."""
    quoted = " ".join(shlex.quote(word) for word in words)
    script = (f"source {shlex.quote(str(COMPLETION))}\n"
              f"COMP_WORDS=({quoted}); COMP_CWORD={len(words) - 1}\n"
              '_rotor; printf "%s\\n" "${COMPREPLY[@]}"\n')
    r = subprocess.run(["bash", "-c", script], capture_output=True, text=True, cwd=cwd,
                       timeout=15)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    return [line for line in r.stdout.splitlines() if line]


def test_completion_offers_the_flags_of_the_table():
    assert complete(["rotor", "--max-req"]) == ["--max-requests", "--max-requests-jitter"]
    assert set(complete(["rotor", "--"])) >= {"--bind", "--no-preload", "--check-config",
                                              "--limit-max-requests"}
    assert "--help-man" not in complete(["rotor", "--help"])
    assert "--workers" in complete(["rotor", "-w", "4", "--wor"])


def test_completion_offers_the_choices_after_an_enum_flag():
    assert complete(["rotor", "--worker-class", ""]) == ["auto", "asgi", "hello"]
    assert complete(["rotor", "-k", "a"]) == ["auto", "asgi"]
    assert complete(["rotor", "--log-level", "w"]) == ["warning"]
    assert complete(["rotor", "-w", ""]) == ["auto"]


def test_completion_offers_files_after_a_path_flag_and_nothing_after_others(tmp_path):
    (tmp_path / "rotor.toml").write_text("")
    (tmp_path / "app").mkdir()
    assert complete(["rotor", "-c", "rot"], cwd=tmp_path) == ["rotor.toml"]
    assert sorted(complete(["rotor", "--pid", ""], cwd=tmp_path)) == ["app", "rotor.toml"]
    assert complete(["rotor", "--chdir", ""], cwd=tmp_path) == ["app"]
    assert complete(["rotor", "--max-requests", ""], cwd=tmp_path) == []
    assert complete(["rotor", "--bind", ""], cwd=tmp_path) == []
    assert complete(["rotor", "--root-path", ""], cwd=tmp_path) == []  # a URL prefix
    assert complete(["rotor", "--python", "rot"], cwd=tmp_path) == ["rotor.toml"]
    assert complete(["rotor", "--preload", "rot"], cwd=tmp_path) == []  # APP: not a file
