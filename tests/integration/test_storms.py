"""Limits and failures that must never make the master fork as fast as the machine allows, nor
leave the pool empty: memory and age limits a new worker already exceeds, workers that die
while serving, and rotation under a burst of load.

Every check runs the real binary; the windows over which a rate is measured are load the test
applies, not sleeps standing in for a state.
"""
import os
import signal
import threading
import time

import httpx

from conftest import ROOT, parse_fields, run_wrk, wait_for

APPS = ROOT / "tests" / "apps"


def serve(rotor, *args, workers=1, wait=True):
    return rotor("--chdir", str(APPS), "-w", str(workers), *args, "storm_app:app",
                 workers=workers, wait=wait)


def exits(r, reason):
    return [f for f in r.events("worker-exit") if f["reason"] == reason]


def get_fast(r, limit_s, path="/"):
    """A fresh connection's request must be answered within `limit_s`; returns the time."""
    t0 = time.monotonic()
    resp = httpx.get(r.url(path), timeout=limit_s + 30, headers={"Connection": "close"})
    took = time.monotonic() - t0
    assert resp.status_code == 200 and resp.text == "Hello, world!", resp
    return took


def serve_for(r, seconds):
    """Keeps asking for `seconds`; every request must succeed. Returns how many were made."""
    end = time.monotonic() + seconds
    n = 0
    with httpx.Client(base_url=r.url(), timeout=30) as c:
        while time.monotonic() < end:
            resp = c.get("/", headers={"Connection": "close"})
            assert resp.status_code == 200, resp
            n += 1
    return n


# --- limits a new worker already exceeds (issue 12, item 5) ------------------------------------

def check_a_limit_below_a_new_worker_backs_off(r, keep_serving, measure):
    """`measure` is "rss" or "private": the master, started with that limit at 1 MiB and two
    workers, retires them no sooner than the minimum age, warns once and keeps serving."""
    r.wait_listening()
    t0 = time.monotonic()
    # The workers keep serving all along: a fork storm would also fail requests.
    assert keep_serving(9) > 0
    elapsed = time.monotonic() - t0
    spawns = r.events("spawn")
    # Two workers, each retired no sooner than 2 s after it became ready, and the minimum
    # age doubling since every successor is over the limit at once: a handful of spawns.
    assert len(spawns) <= 10, f"{len(spawns)} spawns in {elapsed:.1f}s\n{r.log()[-3000:]}"
    rotated = exits(r, f"max-{measure}")
    assert rotated, f"--max-{measure} never rotated a worker\n{r.log()}"
    assert all(float(f["uptime_s"]) >= 2.0 for f in rotated), rotated
    warnings = r.events("limit-below-new-worker")
    assert len(warnings) == 1, r.lines("limit-below-new-worker")
    w = warnings[0]
    assert w["limit"] == f"max_{measure}" and w[f"max_{measure}_mb"] == "1", w
    assert int(w[f"worker_{measure}_mb"]) >= 2, w  # a new worker's size, named for the operator
    assert r.proc.poll() is None
    assert len(r.ready_pids()) >= 2


def test_a_memory_limit_below_a_new_worker_backs_off_and_warns_once(rotor):
    r = serve(rotor, "--max-rss", "1", workers=2, wait=False)
    check_a_limit_below_a_new_worker_backs_off(r, lambda s: serve_for(r, s), "rss")


def test_a_lifetime_limit_below_a_new_worker_backs_off_and_warns_once(rotor):
    r = serve(rotor, "--max-lifetime", "1e-9", workers=2, wait=False)
    r.wait_listening()
    assert serve_for(r, 9) > 0
    spawns = r.events("spawn")
    assert len(spawns) <= 10, f"{len(spawns)} spawns\n{r.log()[-3000:]}"
    rotated = exits(r, "max-lifetime")
    assert rotated and all(float(f["uptime_s"]) >= 2.0 for f in rotated), r.log()
    warnings = r.events("limit-below-new-worker")
    assert len(warnings) == 1 and warnings[0]["limit"] == "max_lifetime", r.log()
    assert len(r.ready_pids()) >= 2


def _rss_mb(pid):
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGESIZE") / (1 << 20)


def test_max_rss_at_a_realistic_limit_rotates_growing_workers_and_loses_nothing(rotor):
    # A new worker's size on this machine, measured, so the limit sits a little above it.
    probe = serve(rotor, workers=1)
    fresh = max(_rss_mb(p) for p in probe.ready_pids())
    probe.stop()
    limit = int(fresh) + 12
    r = serve(rotor, "--max-rss", str(limit), workers=2)
    with httpx.Client(base_url=r.url(), timeout=30) as c:
        def rotated_three():
            # About 2 MB more per request, at a pace the master's 1 s sampling can follow.
            for _ in range(5):
                resp = c.get("/grow", params={"mb": "2"}, headers={"Connection": "close"})
                assert resp.status_code == 200, resp
                time.sleep(0.02)
            return len(exits(r, "max-rss")) >= 3
        wait_for(rotated_three, 60, interval=0, what=f"three max-rss rotations\n{r.log()}")
    for f in exits(r, "max-rss"):
        assert f["status"] == "exit:0", f
        assert float(f["uptime_s"]) >= 2.0, f
    # The limit is one a worker reaches by growing: no warning, no backoff.
    assert not r.events("limit-below-new-worker"), r.log()
    assert not exits(r, "crash"), r.log()
    assert get_fast(r, 5) < 5


# --- workers that die while serving (issue 12, item 6) -----------------------------------------

def test_a_route_that_exits_its_worker_never_leaves_the_pool_empty(rotor):
    r = serve(rotor, workers=2)
    worst = 0.0
    for i in range(12):
        try:
            httpx.get(r.url("/exit"), timeout=30, headers={"Connection": "close"})
        except httpx.HTTPError:
            pass  # its worker ended under it
        worst = max(worst, get_fast(r, 2))
        assert worst < 2, f"request {i}: no worker answered for {worst:.2f}s\n{r.log()[-3000:]}"
    crashes = exits(r, "crash")
    assert len(crashes) >= 12, r.log()
    assert not r.events("backoff"), f"a serving worker's death was backed off\n{r.log()}"
    assert r.proc.poll() is None


def test_workers_ended_by_concurrent_requests_are_replaced_at_once_not_backed_off(rotor):
    # Under concurrent load a new worker takes a request and dies from it within a millisecond
    # of its readiness, often before the master's loop has seen it ready: it served all the
    # same, and a backoff would leave the pool empty for seconds.
    r = serve(rotor, workers=2)
    run_wrk(r.url("/exit"), duration=3, connections=16)
    crashes = exits(r, "crash")
    assert len(crashes) >= 20, r.log()[-3000:]
    backoffs = r.lines("backoff")
    assert not backoffs, f"{len(backoffs)} backoffs for {len(crashes)} deaths while serving:\n" \
        + "\n".join(backoffs)
    assert get_fast(r, 2) < 2
    assert r.proc.poll() is None


def test_repeated_kill_of_serving_workers_keeps_the_pool_serving(rotor):
    # What the OOM killer does under load: eleven SIGKILLs, each of a worker that serves.
    r = rotor("-k", "hello", "-w", "2")
    stop = threading.Event()
    errors = []
    served = {}

    def load():
        try:
            with httpx.Client(base_url=r.url(), timeout=30) as c:
                while not stop.is_set():
                    try:
                        c.get("/", headers={"Connection": "close"})
                    except httpx.HTTPError:
                        pass  # a request whose worker was killed under it
                    served["n"] = served.get("n", 0) + 1
        except BaseException as e:  # handed to the test below
            errors.append(e)

    t = threading.Thread(target=load, daemon=True)
    t.start()
    try:
        for i in range(11):
            # One kill every 0.8 s, each of the oldest worker, which has surely served.
            killed_at = time.monotonic()
            pids = r.ready_pids()
            assert pids, f"kill {i}: no worker left\n{r.log()[-3000:]}"
            os.kill(pids[0], signal.SIGKILL)
            took = get_fast(r, 2)
            assert took < 2, f"kill {i}: no worker answered for {took:.2f}s\n{r.log()[-3000:]}"
            time.sleep(max(0.0, killed_at + 0.8 - time.monotonic()))
        r.wait_ready(2, 10)
    finally:
        stop.set()
        t.join(30)
    if errors:
        raise errors[0]
    assert served.get("n", 0) > 0
    assert len(r.ready_pids()) == 2 and r.proc.poll() is None


# --- rotation under a burst of load (issue 12, item 8) -----------------------------------------

def _alive_over_time(r):
    """The most workers alive at once, and the most of them not draining, from the log."""
    alive, draining, most, most_serving = set(), set(), 0, 0
    for line in r.lines():
        f = parse_fields(line)
        if f.get("event") == "spawn":
            alive.add(int(f["pid"]))
        elif f.get("event") == "worker-exit":
            alive.discard(int(f["pid"]))
            draining.discard(int(f["pid"]))
        elif f.get("event") == "drain" and f.get("role") == "worker":
            draining.add(int(f["pid"]))
        most = max(most, len(alive))
        most_serving = max(most_serving, len(alive - draining))
    return most, most_serving


def test_a_load_burst_with_a_small_request_limit_does_not_over_spawn(rotor):
    r = rotor("-k", "hello", "-w", "2", "--max-requests", "50", "--max-requests-jitter", "0")
    stats = run_wrk(r.url("/"), duration=4, connections=16)
    assert stats["requests"] > 500, stats["raw"]
    assert stats["errors"] == 0, stats["raw"]
    spawns = [f for f in r.events("spawn") if f["reason"] != "boot"]
    scaled_down = exits(r, "scale-down")
    most, most_serving = _alive_over_time(r)
    print(f"requests={stats['requests']} spawns={len(spawns)} scale_down={len(scaled_down)} "
          f"most_alive={most} most_serving={most_serving}")
    assert len(spawns) > 10, r.log()[-3000:]
    # -w 2 with one rotation at a time: two serving, a retiring one and its successor booting,
    # and one of slack (a worker logs its drain a moment after the master asked for it).
    # Workers that drain only finish what they have: how many overlap depends on how fast a
    # loaded machine lets them exit (7-9 with a busy core), so only serving ones are bounded.
    assert most_serving <= 2 + 1 + 2, f"{most_serving} workers serving at once\n{r.log()[-3000:]}"
    assert len(scaled_down) <= max(2, len(spawns) // 20), \
        f"{len(scaled_down)} of {len(spawns)} successors were only scaled down"
