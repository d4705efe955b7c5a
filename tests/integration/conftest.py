"""Fixtures that run the real rotor binary on real sockets.

Every test starts its own master on 127.0.0.1:0 (the kernel picks a free port, the master
logs the address it bound) and waits on conditions with generous deadlines, never on sleeps.
"""
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(os.environ.get("ROTOR_SOURCE_DIR", Path(__file__).resolve().parents[2]))
BIN = Path(os.environ.get("ROTOR_BIN", ROOT / "build" / "rotor"))
DEADLINE = float(os.environ.get("ROTOR_TEST_DEADLINE", "30"))


def wait_for(predicate, timeout=DEADLINE, interval=0.05, what="condition"):
    """Polls `predicate` until it returns a truthy value; fails the test after `timeout`."""
    end = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def parse_fields(line):
    """key=value fields of one log line (values may be double-quoted)."""
    return {k: v.strip('"') for k, v in re.findall(r'(\w+)=("(?:[^"\\]|\\.)*"|\S+)', line)}


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purposes.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        # Reading /proc of a process that is being reaped can fail with ESRCH.
        return False


class Rotor:
    """One rotor master started with the given arguments; its log goes to a file."""

    def __init__(self, args, tmp_path, env=None, bind=True, cwd=None):
        self.log_path = Path(tmp_path) / f"rotor-{time.monotonic_ns()}.log"
        self.args = [str(BIN)] + list(args)
        if bind:
            self.args += ["-b", "127.0.0.1:0"]
        full_env = dict(os.environ)
        full_env.pop("LISTEN_FDS", None)
        if env:
            full_env.update(env)
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(self.args, stdout=self._log, stderr=subprocess.STDOUT,
                                     env=full_env, cwd=cwd, start_new_session=True)
        self.port = None

    @property
    def pid(self):
        return self.proc.pid

    def log(self):
        return self.log_path.read_text(errors="replace")

    def lines(self, event=None):
        out = []
        for line in self.log().splitlines():
            if event is None or f"event={event} " in line + " ":
                out.append(line)
        return out

    def events(self, event):
        return [parse_fields(l) for l in self.lines(event)]

    def wait_listening(self, timeout=DEADLINE):
        def bound():
            if self.proc.poll() is not None:
                raise AssertionError(f"rotor exited {self.proc.returncode}:\n{self.log()}")
            for f in self.events("listening"):
                m = re.match(r"http://127\.0\.0\.1:(\d+)", f.get("address", ""))
                if m:
                    return int(m.group(1))
            return None
        self.port = wait_for(bound, timeout, what="the listening line")
        return self.port

    def wait_ready(self, count, timeout=DEADLINE):
        """Waits until `count` workers are alive and ready (after the last spawns)."""
        wait_for(lambda: len(self.ready_pids()) >= count, timeout,
                 what=f"{count} ready workers\n{self.log()}")
        return self.ready_pids()

    def ready_pids(self):
        exited = {int(f["pid"]) for f in self.events("worker-exit")}
        ready = [int(f["pid"]) for f in self.events("worker-ready")]
        return [p for p in ready if p not in exited and pid_alive(p)]

    def start(self, workers=1):
        self.wait_listening()
        self.wait_ready(workers)
        return self

    def url(self, path="/"):
        return f"http://127.0.0.1:{self.port}{path}"

    def signal(self, sig):
        self.proc.send_signal(sig)

    def wait_exit(self, timeout=DEADLINE):
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"rotor did not exit within {timeout}s:\n{self.log()}")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=DEADLINE)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        # Nothing of this master may outlive it.
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self._log.close()


@pytest.fixture
def rotor(tmp_path):
    started = []

    def start(*args, env=None, bind=True, cwd=None, wait=True, workers=None):
        r = Rotor(args, tmp_path, env=env, bind=bind, cwd=cwd)
        started.append(r)
        if wait:
            n = workers
            if n is None:
                n = 1
                for i, a in enumerate(args):
                    if a in ("-w", "--workers") and i + 1 < len(args):
                        n = int(args[i + 1])
            r.start(n)
        return r

    yield start
    for r in started:
        r.stop()


APPS = ROOT / "tests" / "apps"


def serve(rotor, app, *args, workers=1, **kw):
    """Starts `app` from tests/apps with `workers` workers, through the `rotor` fixture."""
    return rotor("--chdir", str(APPS), "-w", str(workers), *args, app, workers=workers, **kw)


def run_wrk(url, duration=5, connections=16, threads=2, timeout="5s"):
    """Runs wrk and returns its figures; wrk counts every failed request as an error."""
    assert shutil.which("wrk"), "wrk is not installed (scripts/install-deps.sh)"
    out = subprocess.run(
        ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{duration}s",
         "--timeout", timeout, "--latency", url],
        capture_output=True, text=True, timeout=duration + 60).stdout
    stats = {"requests": 0, "connect": 0, "read": 0, "write": 0, "timeout": 0, "non2xx": 0,
             "raw": out}
    m = re.search(r"(\d+) requests in", out)
    if m:
        stats["requests"] = int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        stats.update(connect=int(m.group(1)), read=int(m.group(2)), write=int(m.group(3)),
                     timeout=int(m.group(4)))
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        stats["non2xx"] = int(m.group(1))
    stats["errors"] = (stats["connect"] + stats["read"] + stats["write"] + stats["timeout"]
                       + stats["non2xx"])
    return stats

