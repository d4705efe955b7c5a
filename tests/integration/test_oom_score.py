"""If the kernel must kill for memory, it kills a worker (which is replaced) or the template, not
the master: their oom_score_adj is the master's raised by a fixed amount (capped at 1000), also
when the master itself starts above zero (a unit file's OOMScoreAdjust). And the memory trend
of a generation (`event=memory-trend`), from its workers' growth per request as they exit."""
import functools
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import httpx
import pytest

from conftest import ROOT, wait_for

APPS = ROOT / "tests" / "apps"
RAISE = 300  # the same for the template and the workers: the kernel then picks the largest


def score(pid):
    with open(f"/proc/{pid}/oom_score_adj") as f:
        return int(f.read())


def expected(master, amount):
    return min(1000, master + amount)


def template_pids(r):
    return [int(f["pid"]) for f in r.events("template-start")]


@pytest.fixture
def master_score(monkeypatch):
    """Starts the masters of a test at the given oom_score_adj, as a unit file's OOMScoreAdjust."""
    def at(value):
        def write_own():
            with open("/proc/self/oom_score_adj", "w") as f:
                f.write(str(value))
        monkeypatch.setattr(subprocess, "Popen",
                            functools.partial(subprocess.Popen, preexec_fn=write_own))
    return at


def check_scores(r, workers, with_template):
    master = score(r.pid)
    pids = r.wait_ready(workers)
    for pid in pids:
        assert score(pid) == expected(master, RAISE), (pid, master)
        assert score(pid) > master or master == 1000
    if with_template:
        (template,) = template_pids(r)
        assert score(template) == expected(master, RAISE), (template, master)
        assert score(template) > master
    else:
        assert template_pids(r) == []
    return master


def test_template_and_workers_score_above_the_master(rotor):
    r = rotor("--chdir", str(APPS), "-w", "2", "template_app:app", workers=2)
    assert check_scores(r, 2, with_template=True) == score(r.pid)


def test_hello_workers_score_above_the_master(rotor):
    r = rotor("-k", "hello", "-w", "2")
    check_scores(r, 2, with_template=False)


def test_scores_follow_a_master_started_above_zero(rotor, master_score):
    master_score(100)
    r = rotor("--chdir", str(APPS), "-w", "2", "template_app:app", workers=2)
    assert check_scores(r, 2, with_template=True) == 100
    master_score(900)  # capped at the kernel's maximum
    r = rotor("-k", "hello", "-w", "1")
    assert check_scores(r, 1, with_template=False) == 900
    assert score(r.ready_pids()[0]) == 1000


def test_replacement_workers_get_the_raised_score(rotor):
    r = rotor("--chdir", str(APPS), "-w", "1", "--max-requests", "2", "template_app:app")
    first = r.wait_ready(1)[0]
    with httpx.Client(base_url=r.url(), timeout=10) as c:
        for _ in range(3):
            c.get("/", headers={"connection": "close"})
    wait_for(lambda: [p for p in r.ready_pids() if p != first], what="a successor")
    (successor,) = [p for p in r.ready_pids() if p != first]
    assert score(successor) == expected(score(r.pid), RAISE)


@pytest.mark.skipif(os.getuid() != 0, reason="switching users needs root")
def test_scores_are_raised_under_user(rotor, tmp_path, request):
    """With --user the score is raised before the switch (after it /proc/self is root's)."""
    d = Path(tempfile.mkdtemp(prefix="rotor-oom-"))
    os.chmod(d, 0o755)
    request.addfinalizer(lambda: shutil.rmtree(d, ignore_errors=True))
    shutil.copy(APPS / "template_app.py", d)
    r = rotor("--chdir", str(d), "--user", "nobody", "-w", "2", "template_app:app", workers=2)
    check_scores(r, 2, with_template=True)
    r = rotor("-k", "hello", "--user", "nobody", "-w", "1")
    check_scores(r, 1, with_template=False)


# Keeps `KEEP_MB` MiB of written pages per request (a per-run object graph that is never freed).
LEAK_APP = """
import os

KEEP_MB = int(os.environ.get("KEEP_MB", "1"))
_kept = []


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    _kept.append(bytes(range(256)) * (KEEP_MB * 4096))
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": str(len(_kept)).encode()})
"""


def test_memory_trend_of_a_generation_that_leaks(rotor, tmp_path):
    (tmp_path / "leak_app.py").write_text(LEAK_APP)
    r = rotor("--chdir", str(tmp_path), "-w", "1", "--max-requests", "8",
              "--max-requests-jitter", "0", "--max-private", "400", "leak_app:app",
              env={"KEEP_MB": "2"})
    with httpx.Client(base_url=r.url(), timeout=30) as c:
        def trend():
            c.get("/", headers={"connection": "close"})
            return r.events("memory-trend")
        (first, *_) = wait_for(trend, what=f"a memory-trend line\n{r.log()}")
    assert first["generation"] == "1"
    # 2 MiB per request: 2048 KiB, within what the allocator and the interpreter add or keep.
    assert 1500 < float(first["kib_per_request"]) < 3000, first
    # 8 requests of 2 MiB from what a new worker holds: some 16 MiB more than that.
    assert 14 < float(first["projected_private_mb_at_limit"]) < 200, first
    assert float(first["seconds_to_max_private"]) >= 0, first
    # Never per request: one line per material change, at most one per exit.
    assert len(r.lines("memory-trend")) <= len(r.lines("worker-exit"))


def test_memory_trend_without_max_private(rotor, tmp_path):
    """Without --max-private the estimate still shows, with no time to a limit."""
    (tmp_path / "leak_app.py").write_text(LEAK_APP)
    r = rotor("--chdir", str(tmp_path), "-w", "1", "--max-requests", "6",
              "--max-requests-jitter", "0", "leak_app:app", env={"KEEP_MB": "1"})
    with httpx.Client(base_url=r.url(), timeout=30) as c:
        def trend():
            c.get("/", headers={"connection": "close"})
            return r.events("memory-trend")
        (first, *_) = wait_for(trend, what=f"a memory-trend line\n{r.log()}")
    assert 700 < float(first["kib_per_request"]) < 1600, first
    assert first["seconds_to_max_private"] == "-"
