"""--memory-budget: the private memory all workers together may use. From the growth per request
it measures, the master gives each new worker a request limit that keeps the workers within the
budget; near the budget it rotates the largest worker first. `auto` takes the budget from the
cgroup's memory limit: tested in a real v1 memory cgroup made for the test (root and a writable
memory hierarchy, else skipped), where the same load without the budget is OOM-killed."""
import contextlib
import http.client
import os
import subprocess
import threading
import time
from pathlib import Path

import pytest

import conftest
from conftest import BIN, wait_for
from test_flow_example import EXAMPLE, Client, flow
from test_workers_auto import remove_cgroup, v1_hierarchy

LEAK = {"FLOW_LEAK_KB": "1024"}  # the flow example keeps 1 MiB per run


def serve(rotor, *args, workers=2, env=None, wait=True):
    return rotor("--chdir", str(EXAMPLE), "-w", str(workers), *args, "app:app", workers=workers,
                 env=env, wait=wait)


class Load:
    """`threads` clients POSTing a flow over keep-alive connections until `runs` answers (or
    stop()); every answer that is not a 200, and every broken connection, is a failure."""

    def __init__(self, port, runs, threads=2, pause=0.0):
        self.port, self.runs, self.pause = port, runs, pause
        self.done, self.failures, self.pids = 0, [], set()
        self.lock, self.stopped = threading.Lock(), threading.Event()
        self.threads = [threading.Thread(target=self.run, daemon=True) for _ in range(threads)]

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def stop(self):
        self.stopped.set()
        for t in self.threads:
            t.join(timeout=60)

    def wait(self, timeout):
        wait_for(lambda: self.done >= self.runs or self.failures, timeout=timeout,
                 what=f"{self.runs} runs")
        self.stop()

    def run(self):
        c = Client(self.port)
        while not self.stopped.is_set():
            with self.lock:
                if self.done >= self.runs:
                    return
            try:
                status, out = c.post(flow("stats"))
            except (OSError, http.client.HTTPException) as exc:
                c.close()
                self.note(repr(exc))
                continue
            if status != 200:
                self.note((status, out))
                continue
            with self.lock:
                self.done += 1
                self.pids.add(out["pid"])
            if self.pause:
                time.sleep(self.pause)
        c.close()

    def note(self, failure):
        with self.lock:
            self.failures.append(failure)


def exits(r, reason=None):
    return [f for f in r.events("worker-exit") if reason is None or f["reason"] == reason]


# --- without a cgroup --------------------------------------------------------------------------

def test_an_explicit_budget_sets_each_new_workers_request_limit_from_the_growth(rotor):
    # 2 workers in 160 MiB, a share of 160 / 3 each (one more for a retiring worker's memory),
    # about 20 MiB at ready and 1 MiB more per run: about 30 runs each.
    r = serve(rotor, "--memory-budget", "160", env=LEAK)
    first = r.events("memory-budget")[0]
    assert first["budget_mib"] == "160.0" and first["source"] == "flag", r.log()
    with Load(r.port, runs=10**6) as load:
        wait_for(lambda: len(exits(r, "memory-budget")) >= 4 or load.failures,
                 timeout=60, what=f"four workers rotated for the budget\n{r.log()}")
    assert not load.failures, load.failures
    # The latest estimate (the first may come from a worker's first requests alone).
    limited = [f for f in r.events("memory-budget") if f["per_worker_limit"] != "-"][-1]
    limit = int(limited["per_worker_limit"])
    growth = float(limited["growth_kib_per_request"])
    ready = float(limited["ready_private_mib"])
    assert 800 < growth < 2000, limited  # about the 1 MiB the example keeps per run
    assert abs(limit - (160 / 3 - ready) * 1024 / growth) <= 2, limited
    # Workers spawned after the limit was set get it (as re-evaluated), less their own jitter.
    most = max(int(f["per_worker_limit"]) for f in r.events("memory-budget")
               if f["per_worker_limit"] != "-")
    later = [int(f["limit"]) for f in r.events("spawn")[2:]]
    assert later and all(0 < n <= most for n in later), (most, later)
    assert len(set(later)) > 1 or len(later) == 1, later  # staggered, not all the same
    for f in exits(r, "memory-budget"):
        assert int(f["exit_private_kib"]) <= 160 * 1024 * 0.75, f  # each within its share


def test_the_budget_limit_never_exceeds_max_requests(rotor):
    r = serve(rotor, "--memory-budget", "4000", "--max-requests", "30", env=LEAK)
    with Load(r.port, runs=10**6) as load:
        wait_for(lambda: [f for f in r.events("memory-budget") if f["per_worker_limit"] != "-"],
                 what=f"a per-worker limit\n{r.log()}")
        wait_for(lambda: len(exits(r, "max-requests")) >= 3 or load.failures,
                 timeout=60, what=f"three rotations\n{r.log()}")
    assert not load.failures, load.failures
    assert all(int(f["limit"]) == 30 for f in r.events("spawn")), r.log()
    assert not exits(r, "memory-budget"), r.log()


def test_a_budget_too_small_for_the_workers_backs_off_instead_of_looping(rotor):
    # Two fresh workers take more than 4 MiB: every rotation would find the next one over too.
    r = serve(rotor, "--memory-budget", "4")
    c = Client(r.port)
    start = time.monotonic()
    while time.monotonic() - start < 10:
        assert c.post(flow("stats"))[0] == 200
        time.sleep(0.1)
    warned = r.events("memory-budget-too-small")
    assert len(warned) == 1, r.log()
    # At a fixed 2 s minimum age two workers would be replaced about every second (10 and
    # more); doubling it (2, 4, 8 s) leaves a handful.
    spawns = r.events("spawn")
    assert len(spawns) <= 2 + 4, r.log()
    ages = [float(f["min_age_s"]) for f in r.events("budget-retire")]
    assert ages == sorted(ages) and ages[-1] >= 8, r.log()


def test_auto_without_a_cgroup_memory_limit_warns_once_and_serves(rotor):
    if own_memory_limit() is not None:
        pytest.skip("this test's own cgroup has a memory limit")
    r = serve(rotor, "--memory-budget", "auto")
    assert Client(r.port).post(flow("stats"))[0] == 200
    off = r.events("memory-budget-off")
    assert len(off) == 1 and off[0]["reason"] == "no-cgroup-limit", r.log()
    assert not r.events("memory-budget"), r.log()


@pytest.mark.parametrize("value", ["abc", "-5", "12MB", "1.5"])
def test_a_bad_budget_is_one_line_and_exit_2(value):
    proc = subprocess.run([str(BIN), "--memory-budget", value, "-k", "hello", "-b",
                           "127.0.0.1:0"], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2, proc
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "--memory-budget" in lines[0], proc.stderr
    assert "or auto" in lines[0], proc.stderr  # says what it takes


def test_a_bad_budget_in_the_environment_is_one_line_and_exit_2():
    proc = subprocess.run([str(BIN), "-k", "hello", "-b", "127.0.0.1:0"], capture_output=True,
                          text=True, timeout=30, env={**os.environ, "ROTOR_MEMORY_BUDGET": "lots"})
    assert proc.returncode == 2, proc
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "ROTOR_MEMORY_BUDGET" in proc.stderr or "memory" in proc.stderr, proc.stderr


# Keeps ?mib=N MiB per request (written, so the pages are the worker's own).
BURST_APP = """
_kept = []


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    query = dict(p.split("=") for p in scope["query_string"].decode().split("&") if "=" in p)
    _kept.append(b"x" * (int(query.get("mib", "0")) << 20))
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})
"""


def serve_burst(rotor, tmp_path, budget_mib, workers):
    """A calm start first: light requests until workers have left at --max-requests 30, so the
    growth estimate is a calm one (a few KiB per request) when the burst comes."""
    (tmp_path / "burst_app.py").write_text(BURST_APP)
    r = rotor("--chdir", str(tmp_path), "-w", str(workers), "--memory-budget", str(budget_mib),
              "--max-requests", "30", "burst_app:app", workers=workers)
    c = Client(r.port, keep_alive=False)
    while len(exits(r, "max-requests")) < workers:
        assert c.request("GET", "/?mib=0")[0] == 200
    r.wait_ready(workers)
    return r


def heavy_until(r, done, mib, pause=0.2, timeout=30):
    """Heavy requests on one keep-alive connection (one worker) until `done()`; all must be 200."""
    c = http.client.HTTPConnection("127.0.0.1", r.port, timeout=30)
    end = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < end, f"timed out\n{r.log()}"
        c.request("GET", f"/?mib={mib}")
        resp = c.getresponse()
        resp.read()
        assert resp.status == 200
        if resp.getheader("Connection", "").lower() == "close":
            c.close()
            c = http.client.HTTPConnection("127.0.0.1", r.port, timeout=30)
        time.sleep(pause)
    c.close()


def test_a_burst_near_the_budget_rotates_the_largest_worker_first(rotor, tmp_path):
    r = serve_burst(rotor, tmp_path, 100, workers=2)
    # One worker takes 5 MiB per request: it crosses 90 MiB (in under 30 requests) with room
    # for a successor beside it.
    heavy_until(r, lambda: r.events("budget-retire"), mib=5)
    [retire] = r.events("budget-retire")[:1]
    big = int(retire["pid"])
    assert retire["successor"] == "before", r.log()
    assert float(retire["total_mib"]) > 90, retire
    ready = {int(f["pid"]): f for f in r.events("worker-ready")}
    assert big in ready
    # Spawn before retire: its successor is ready before it leaves.
    wait_for(lambda: [f for f in exits(r, "memory-budget") if int(f["pid"]) == big],
             what=f"the largest worker's exit\n{r.log()}")
    log = r.log()
    successor = [f for f in r.events("spawn") if f.get("replaces") == str(big)]
    assert successor and successor[0]["reason"] == "memory-budget", log
    assert log.index(f"event=worker-ready pid={successor[0]['pid']} ") < log.index(
        f"event=worker-exit pid={big} "), log


def test_with_no_room_for_a_successor_the_worker_leaves_before_it_starts(rotor, tmp_path):
    r = serve_burst(rotor, tmp_path, 50, workers=1)
    # 16 MiB a request: 2.6 + 48 MiB is over 45 and leaves no room for a 2.6 MiB successor.
    heavy_until(r, lambda: r.events("budget-retire"), mib=16)
    [retire] = r.events("budget-retire")[:1]
    assert retire["successor"] == "after", r.log()
    big = retire["pid"]
    wait_for(lambda: [f for f in exits(r, "memory-budget") if f["pid"] == big],
             what=f"its exit\n{r.log()}")
    # Its successor was forked only after it was asked to leave (no rotation linked them),
    # and serves.
    log = r.log()
    after = [f for f in r.events("spawn") if log.index(f"event=spawn pid={f['pid']} ") >
             log.index("event=budget-retire")]
    assert after and after[0]["reason"] == "replace" and "replaces" not in after[0], log
    assert Client(r.port).request("GET", "/?mib=0")[0] == 200


# --- in a real memory cgroup -------------------------------------------------------------------


def own_memory_limit():
    """The tightest v1 memory limit over this process (None: none, or no v1 memory hierarchy)."""
    found = v1_hierarchy("memory")
    if not found:
        return None
    mount, d = found
    limits = []
    while True:
        f = d / "memory.limit_in_bytes"
        if f.exists() and int(f.read_text()) < 1 << 62:
            limits.append(int(f.read_text()))
        if d == mount:
            return min(limits) if limits else None
        d = d.parent


@pytest.fixture
def memory_cgroup(tmp_path, monkeypatch):
    """make(limit_mib) -> a new memory cgroup under this process's; rotor (the `rotor` fixture)
    then starts inside it: a wrapper writes its pid to cgroup.procs before it execs rotor, so
    the master and every child it forks are charged there, and the test process is not."""
    if os.geteuid() != 0:
        pytest.skip("creating a memory cgroup needs root")
    found = v1_hierarchy("memory")
    if not found:
        pytest.skip("no cgroup v1 memory hierarchy is mounted here")
    _, ours = found
    made = []

    def make(limit_mib):
        path = ours / f"rotor-budget-{os.getpid()}-{len(made)}"
        try:
            path.mkdir()
        except OSError as e:
            pytest.skip(f"cannot create a memory cgroup under {ours}: {e}")
        made.append(path)
        (path / "memory.limit_in_bytes").write_text(str(limit_mib << 20))
        wrapper = tmp_path / f"in-cgroup-{len(made)}.sh"
        wrapper.write_text(f'#!/bin/sh\necho $$ > {path}/cgroup.procs || exit 99\n'
                           f'exec {BIN} "$@"\n')
        wrapper.chmod(0o755)
        monkeypatch.setattr(conftest, "BIN", wrapper)
        return path

    make.ours = ours
    yield make
    for path in made:
        with contextlib.suppress(OSError):
            for pid in (path / "cgroup.procs").read_text().split():
                os.kill(int(pid), 9)
        remove_cgroup(path, ours)


def oom_kills(cgroup):
    fields = dict(line.split() for line in (cgroup / "memory.oom_control").read_text().splitlines())
    return int(fields.get("oom_kill", 0))


# Two workers of the flow example leaking 1 MiB per run: about 60 MiB for the master, the
# template and the two fresh workers, so 220 MiB holds some 160 runs between them. 600 runs
# are far more than that: without a budget the cgroup must OOM-kill a worker.
CGROUP_MIB, RUNS = 220, 600


def test_without_a_budget_the_same_load_is_oom_killed(memory_cgroup, rotor):
    cgroup = memory_cgroup(CGROUP_MIB)
    r = serve(rotor, env=LEAK)
    assert str(r.pid) in (cgroup / "cgroup.procs").read_text().split()
    with Load(r.port, runs=RUNS) as load:
        wait_for(lambda: oom_kills(cgroup) > 0 or load.done >= RUNS, timeout=120,
                 what="the load or an OOM kill")
    assert oom_kills(cgroup) > 0, f"{load.done} runs, no OOM kill: raise RUNS\n{r.log()}"


def test_auto_budget_in_a_memory_cgroup_rotates_workers_before_the_oom_killer(memory_cgroup,
                                                                              rotor):
    cgroup = memory_cgroup(CGROUP_MIB)
    r = serve(rotor, "--memory-budget", "auto", env=LEAK)
    assert str(r.pid) in (cgroup / "cgroup.procs").read_text().split()
    with Load(r.port, runs=RUNS) as load:
        load.wait(timeout=180)
    assert not load.failures, f"{load.failures[:5]}\n{r.log()}"
    assert load.done >= RUNS
    assert oom_kills(cgroup) == 0, r.log()
    # Rotated before the limit: the cgroup never even had to reclaim at it.
    assert int((cgroup / "memory.failcnt").read_text()) == 0, r.log()
    [budget] = [f for f in r.events("memory-budget") if f["source"] == "auto"][:1]
    assert int(budget["cgroup_limit_mib"]) == CGROUP_MIB, budget
    assert 0 < float(budget["budget_mib"]) < CGROUP_MIB, budget
    assert budget["cgroup"] == str(cgroup), budget
    # Rotated by the budget, several times, and no worker died.
    rotated = exits(r, "memory-budget")
    assert len(rotated) >= 3, r.log()
    assert not [f for f in exits(r) if f["reason"] in ("crash", "signal")], r.log()
    assert len(load.pids) >= 4, load.pids
