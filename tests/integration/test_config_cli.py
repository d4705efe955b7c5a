"""Command line, TOML file and environment: errors are one clear line and exit code 2, and the
precedence is defaults < file < environment < command line."""
import os
import re
import signal
import subprocess

import pytest

from conftest import BIN


def clean_env(extra=None):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("ROTOR_") and k not in ("WEB_CONCURRENCY", "LISTEN_FDS")}
    env.update(extra or {})
    return env


def run(args, env=None, cwd=None, timeout=15):
    """Runs rotor to completion; an invocation that starts serving is killed and fails."""
    proc = subprocess.Popen([str(BIN), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=clean_env(env), cwd=cwd, start_new_session=True, text=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        raise AssertionError(f"rotor {args} did not exit (it started serving?):\n{err}")
    return proc.returncode, out, err


# Each case: arguments, environment, what the one error line must mention.
# "-b 127.0.0.1:0" keeps a wrongly accepted invocation from grabbing a real port.
BAD = {
    "workers-not-a-number": (["--workers", "abc"], None, ["--workers", "abc"]),
    "workers-zero": (["--workers", "0"], None, ["--workers", "0"]),
    "unknown-flag": (["--nope"], None, ["--nope"]),
    "max-requests-negative": (["--max-requests", "-1"], None, ["--max-requests", "-1"]),
    "timeout-not-a-number": (["--timeout", "soon"], None, ["--timeout", "soon"]),
    "env-workers-not-a-number": ([], {"ROTOR_WORKERS": "abc"}, ["ROTOR_WORKERS", "abc"]),
    "env-max-requests-negative": ([], {"ROTOR_MAX_REQUESTS": "-5"}, ["ROTOR_MAX_REQUESTS"]),
    "ws-max-size-zero": (["--ws-max-size", "0"], None, ["--ws-max-size", "0"]),
    "ws-ping-interval-negative": (["--ws-ping-interval", "-1"], None, ["--ws-ping-interval"]),
    "ws-ping-timeout-not-a-number": (["--ws-ping-timeout", "soon"], None,
                                     ["--ws-ping-timeout", "soon"]),
    "proxy-headers-not-a-bool": ([], {"ROTOR_PROXY_HEADERS": "maybe"}, ["ROTOR_PROXY_HEADERS"]),
    "forwarded-allow-ips-env": ([], {"FORWARDED_ALLOW_IPS": "10.0.0.1/40"},
                                ["FORWARDED_ALLOW_IPS", "10.0.0.1/40"]),
    "env-without-value": (["-e", "DEBUG"], None, ["--env", "DEBUG", "KEY=VALUE"]),
    "env-without-key": (["--env", "=1"], None, ["--env", "=1"]),
    "tls-certfile": (["--certfile", "cert.pem", "--keyfile", "key.pem"], None,
                     ["TLS is not supported", "proxy"]),
    "header-without-colon": (["--header", "X-Frame-Options DENY"], None,
                             ["--header", "NAME:VALUE"]),
    "header-name-not-a-token": (["--header", "X Frame:DENY"], None, ["--header", "token"]),
    "header-value-with-newline": (["--header", "X-A:b\r\nSet-Cookie: x"], None,
                                  ["--header", "control characters"]),
}


def assert_one_error_line(rc, err, mentions):
    assert rc == 2, f"exit {rc}, stderr:\n{err}"
    lines = err.splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got:\n{err}"
    assert lines[0].startswith("rotor: error:"), lines[0]
    for m in mentions:
        assert m in lines[0], f"{m!r} not named in: {lines[0]}"


@pytest.mark.parametrize("case", list(BAD))
def test_bad_option_is_one_line_exit_2(case):
    args, env, mentions = BAD[case]
    rc, out, err = run(["-k", "hello", "-b", "127.0.0.1:0", *args], env=env)
    assert_one_error_line(rc, err, mentions)
    assert out == ""


TOML_BAD = {
    "syntax": ("workers = [1,\n", []),
    "unterminated-string": ('worker_class = "hello\n', []),
    "unknown-key": ("wokers = 2\n", ["wokers"]),
    "wrong-type": ('workers = "two"\n', ["workers"]),
    "out-of-range": ("workers = 0\n", ["workers"]),
}


@pytest.mark.parametrize("case", list(TOML_BAD))
def test_bad_toml_file_is_one_line_exit_2(case, tmp_path):
    text, mentions = TOML_BAD[case]
    path = tmp_path / "rotor.toml"
    path.write_text(text)
    rc, _, err = run(["-c", str(path), "-b", "127.0.0.1:0"])
    assert_one_error_line(rc, err, [str(path), *mentions])


def test_missing_config_file_is_one_line_exit_2(tmp_path):
    path = tmp_path / "absent.toml"
    rc, _, err = run(["-c", str(path), "-b", "127.0.0.1:0"])
    assert_one_error_line(rc, err, [str(path)])


def printed_workers(out):
    m = re.findall(r"^workers\s*=\s*(\d+)\s*$", out, re.M)
    assert len(m) == 1, out
    return int(m[0])


def test_precedence_file_env_cli(tmp_path):
    path = tmp_path / "rotor.toml"
    path.write_text("workers = 3\nmax_requests = 100\n")

    rc, out, err = run(["-c", str(path), "--print-config"])
    assert rc == 0, err
    assert printed_workers(out) == 3
    assert re.search(r"^max_requests\s*=\s*100\s*$", out, re.M), out

    rc, out, err = run(["-c", str(path), "--print-config"], env={"ROTOR_WORKERS": "2"})
    assert rc == 0, err
    assert printed_workers(out) == 2

    rc, out, err = run(["-c", str(path), "-w", "1", "--print-config"],
                       env={"ROTOR_WORKERS": "2"})
    assert rc == 0, err
    assert printed_workers(out) == 1
    # Options that nobody overrode keep the file's value.
    assert re.search(r"^max_requests\s*=\s*100\s*$", out, re.M), out

    rc, out, err = run(["-c", str(path), "--check-config"], env={"ROTOR_WORKERS": "2"})
    assert rc == 0, f"{out}\n{err}"


def test_print_config_round_trips(tmp_path):
    """What --print-config prints is a valid config file that yields the same configuration."""
    rc, printed, err = run(["-w", "3", "--max-requests", "500", "--keep-alive", "2.5",
                            "-b", "127.0.0.1:0", "--print-config"])
    assert rc == 0, err
    path = tmp_path / "printed.toml"
    path.write_text(printed)
    rc, out, err = run(["-c", str(path), "--check-config"])
    assert rc == 0, f"{out}\n{err}"
    rc, again, err = run(["-c", str(path), "--print-config"])
    assert rc == 0, err
    assert again == printed


def test_check_config_rejects_bad_file(tmp_path):
    path = tmp_path / "rotor.toml"
    path.write_text("max_requests = -3\n")
    rc, _, err = run(["-c", str(path), "--check-config"])
    assert_one_error_line(rc, err, [str(path), "max_requests"])


def test_the_documented_option_table_is_generated_from_the_option_table():
    """docs/configuration.md's option table is `rotor --help-options-markdown`, character for
    character (regenerate it with scripts/update-options-table.sh)."""
    from conftest import BIN, ROOT
    generated = subprocess.run([str(BIN), "--help-options-markdown"], capture_output=True,
                               text=True, check=True).stdout.strip()
    doc = (ROOT / "docs" / "configuration.md").read_text()
    m = re.search(r"<!-- options:begin -->\n(.*?)\n<!-- options:end -->", doc, re.S)
    assert m, "docs/configuration.md lost its options markers"
    assert m.group(1).strip() == generated, \
        "docs/configuration.md's option table is stale: run scripts/update-options-table.sh"
