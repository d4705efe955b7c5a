"""Memory as it is owned: `--max-private` rotates a worker on the pages it does not share (with
the template or other workers), where `--max-rss` also counts the app the template imported once
for all of them. The master reads /proc/PID/smaps_rollup; the tests read it too, to check that
the pages really are shared."""
import subprocess
import time

import httpx
import pytest

from conftest import BIN
from test_storms import check_a_limit_below_a_new_worker_backs_off

# Touches `KEEP_MB` MiB per request and keeps them; builds `IMPORT_MB` MiB of real pages at import.
APP = """
import os

IMPORT_MB = int(os.environ.get("IMPORT_MB", "0"))
KEEP_MB = int(os.environ.get("KEEP_MB", "0"))
BALLAST = bytes(range(256)) * (IMPORT_MB * 4096)
_kept = []


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    if KEEP_MB:
        _kept.append(b"x" * (KEEP_MB << 20))
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": str(len(_kept)).encode()})
"""


def smaps_rollup_kib(pid):
    """Rss and private (clean + dirty) KiB of a process, as the master reads them."""
    fields = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            name, _, rest = line.partition(":")
            if rest.strip().endswith("kB"):
                fields[name] = int(rest.split()[0])
    return fields["Rss"], fields["Private_Clean"] + fields["Private_Dirty"]


def serve(rotor, tmp_path, *args, workers=1, env=None, wait=True):
    (tmp_path / "mem_app.py").write_text(APP)
    return rotor("--chdir", str(tmp_path), "-w", str(workers), *args, "mem_app:app",
                 workers=workers, env=env, wait=wait)


def exits(r, reason):
    return [f for f in r.events("worker-exit") if f["reason"] == reason]


def ask_until(r, done, seconds):
    """Asks on one keep-alive client until `done()` or `seconds`; every answer must be a 200."""
    end = time.monotonic() + seconds
    n = 0
    with httpx.Client(base_url=r.url(), timeout=30) as c:
        while time.monotonic() < end and not done():
            resp = c.get("/")
            assert resp.status_code == 200, resp
            n += 1
            time.sleep(0.05)
    return n


def fresh_private_mib(rotor, tmp_path, env=None):
    """A new worker's private memory, measured on a first master without limits."""
    r = serve(rotor, tmp_path, env=env)
    _, private = smaps_rollup_kib(r.ready_pids()[0])
    r.stop()
    return private >> 10


def test_a_worker_over_max_private_is_rotated_before_it_retires_and_no_request_fails(
        rotor, tmp_path):
    limit = fresh_private_mib(rotor, tmp_path) + 24
    r = serve(rotor, tmp_path, "--max-private", str(limit), env={"KEEP_MB": "4"})
    ask_until(r, lambda: exits(r, "max-private"), 60)
    rotated = exits(r, "max-private")
    assert rotated, f"no max-private rotation within 60 s\n{r.log()}"
    # Spawn-before-retire: the successor was started for that reason.
    assert [f for f in r.events("spawn") if f["reason"] == "max-private"], r.lines("spawn")
    f = rotated[0]
    # The exit line carries the memory at ready and as the worker left, in KiB.
    assert 0 < int(f["ready_private_kib"]) < limit << 10, f
    assert int(f["ready_rss_kib"]) >= int(f["ready_private_kib"]), f
    assert int(f["exit_private_kib"]) > limit << 10, f
    assert int(f["exit_rss_kib"]) >= int(f["exit_private_kib"]), f
    # Least-squares over the master's samples: each request keeps 4 MiB.
    assert 3000 < float(f["private_kib_per_request"]) < 5000, f
    assert float(f["uptime_s"]) >= 2.0, f
    assert not r.lines("limit-below-new-worker"), r.log()  # it grew there: a real leak
    assert r.proc.poll() is None


def test_without_a_memory_limit_the_growth_per_request_is_read_at_ready_and_at_leaving(
        rotor, tmp_path):
    r = serve(rotor, tmp_path, "--max-requests", "5", env={"KEEP_MB": "2"})
    ask_until(r, lambda: exits(r, "max-requests"), 30)
    f = exits(r, "max-requests")[0]
    assert int(f["exit_private_kib"]) - int(f["ready_private_kib"]) >= 8 << 10, f
    assert 1500 < float(f["private_kib_per_request"]) < 2600, f


def test_a_big_import_shared_from_the_template_trips_max_rss_but_not_max_private(
        rotor, tmp_path):
    env = {"IMPORT_MB": "100"}
    r = serve(rotor, tmp_path, "--max-private", "50", env=env)
    pid = r.ready_pids()[0]
    rss, private = smaps_rollup_kib(pid)
    # Forked from the template after the import: the 100 MiB are resident in the worker but
    # are not its own.
    assert rss > 100 << 10 and private < 50 << 10, (rss, private)
    ask_until(r, lambda: False, 6)  # three times the 2 s minimum age, sampled each second
    assert not exits(r, "max-private"), r.log()
    assert r.ready_pids() == [pid], r.log()
    r.stop()

    r = serve(rotor, tmp_path, "--max-rss", "50", env=env)
    ask_until(r, lambda: exits(r, "max-rss"), 30)
    assert exits(r, "max-rss"), f"--max-rss 50 did not rotate a 100 MiB worker\n{r.log()}"


def test_a_max_private_below_a_new_worker_backs_off_warns_once_and_never_loops(rotor, tmp_path):
    r = serve(rotor, tmp_path, "--max-private", "1", workers=2, wait=False)
    check_a_limit_below_a_new_worker_backs_off(r, lambda s: ask_until(r, lambda: False, s),
                                               "private")


@pytest.mark.parametrize("value", ["-1", "abc", "16777217", "1.5"])
def test_a_bad_max_private_is_one_line_and_exit_2(value):
    for extra in (["--check-config"], ["-k", "hello", "-b", "127.0.0.1:0"]):
        p = subprocess.run([str(BIN), "--max-private", value] + extra, capture_output=True,
                           text=True, timeout=20)
        out = p.stdout + p.stderr
        assert p.returncode == 2, out
        assert out == f"rotor: error: --max-private: expected an integer in 0..16777216, " \
            f"got '{value}'\n", out
