"""The template process: workers forked warm from an interpreter that imported the app once."""
import os
import shutil
import signal
import time

import httpx
import pytest

from conftest import DEADLINE, ROOT, parse_fields, pid_alive, run_wrk, wait_for

APPS = ROOT / "tests" / "apps"


def serve(rotor, *args, workers=1, env=None, cwd=APPS, app="template_app:app"):
    return rotor("--chdir", str(cwd), "-w", str(workers), *args, app, workers=workers, env=env)


def info(r, path="/"):
    return httpx.get(r.url(path), timeout=10).json()


def templates(r, event):
    return [int(f["pid"]) for f in r.events(event)]


def parent_of(pid):
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def answers_from(r, pids, need):
    """Asks until every pid in `pids` has answered (fresh connections spread over the workers)."""
    seen = {}
    def all_seen():
        d = info(r)
        seen[d["pid"]] = d
        return pids <= set(seen)
    wait_for(all_seen, what=f"answers from {pids}")
    return seen


def rewrite(app_file, text):
    """Changes an app's code on disk, as a deploy does (no stale bytecode left behind)."""
    app_file.write_text(text)
    shutil.rmtree(app_file.parent / "__pycache__", ignore_errors=True)


def serve_copy(rotor, tmp_path, name, workers=1):
    """Serves a copy of template_app.py that the test can rewrite; (rotor, file, its code)."""
    app_file = tmp_path / f"{name}.py"
    good = (APPS / "template_app.py").read_text()
    app_file.write_text(good)
    return serve(rotor, workers=workers, cwd=tmp_path, app=f"{name}:app"), app_file, good


def test_workers_are_forked_warm_from_the_template(rotor):
    r = serve(rotor, workers=2, env={"TEMPLATE_APP_IMPORT_DELAY": "1"})
    (template,) = templates(r, "template-ready")
    workers = set(r.ready_pids())
    assert len(workers) == 2 and template not in workers
    for d in answers_from(r, workers, 2).values():
        assert d["imported_in"] == template  # nothing was imported again in the worker
    for pid in workers:
        assert parent_of(pid) == r.pid  # double-forked: the master's own children
    assert parent_of(template) == r.pid
    assert r.log().count("template-app: imported") == 1
    assert {f["mode"] for f in r.events("spawn")} == {"template"}
    assert {f["mode"] for f in r.events("worker-ready")} == {"template"}


def test_rotation_under_load_never_waits_for_the_import(rotor):
    # The import takes 2 s; rotating every ~200 requests must still cost no failed request,
    # and no worker may take the import's time to start.
    r = serve(rotor, "--max-requests", "200", "--max-requests-jitter", "20", workers=2,
              env={"TEMPLATE_APP_IMPORT_DELAY": "2"})
    stats = run_wrk(r.url(), duration=8, connections=8)
    assert stats["errors"] == 0, stats["raw"]
    rotations = [f for f in r.events("worker-exit") if f["reason"] == "max-requests"]
    assert len(rotations) >= 20, f"{len(rotations)} rotations in 8 s:\n{stats['raw']}"
    spawn_ms = [float(f["spawn_ms"]) for f in r.events("worker-ready")]
    assert max(spawn_ms) < 2000, sorted(spawn_ms)
    print(f"rotations={len(rotations)} requests={stats['requests']} spawn_ms={sorted(spawn_ms)}")
    assert r.log().count("template-app: imported") == 1
    assert len(templates(r, "template-start")) == 1


def test_hup_with_broken_code_keeps_serving_then_loads_the_fixed_code(rotor, tmp_path):
    r, app_file, good = serve_copy(rotor, tmp_path, "hup_app", workers=2)

    def write(text):
        rewrite(app_file, text)

    old = set(r.ready_pids())
    assert {d["version"] for d in answers_from(r, old, 2).values()} == {"1"}

    write(good + "\ndef broken(:\n")
    r.signal(signal.SIGHUP)
    wait_for(lambda: r.events("reload-failed"), what=f"the failed reload\n{r.log()}")
    assert "SyntaxError" in r.log()
    # The old generation keeps answering with the old code, and nothing was rotated. The
    # failed generation is not tried again until the next HUP: over seconds of serving, no
    # template is started and the import fails only once.
    starts = templates(r, "template-start")
    end = time.monotonic() + 3
    while time.monotonic() < end:
        d = info(r)
        assert d["version"] == "1" and d["pid"] in old
    assert templates(r, "template-start") == starts and len(starts) == 2, r.log()[-3000:]
    assert len(r.events("reload-failed")) == 1, r.log()[-3000:]
    assert set(r.ready_pids()) == old

    write(good.replace('VERSION = os.environ.get("TEMPLATE_APP_VERSION", "1")', 'VERSION = "2"'))
    r.signal(signal.SIGHUP)
    wait_for(lambda: not (set(r.ready_pids()) & old) and len(r.ready_pids()) == 2,
             what=f"the workers to be rotated onto the new code\n{r.log()}")
    new = set(r.ready_pids())
    assert {d["version"] for d in answers_from(r, new, 2).values()} == {"2"}
    ready = r.events("template-ready")
    assert len(ready) == 2 and int(ready[-1]["generation"]) == 3
    reloads = [f for f in r.events("worker-exit") if f["reason"] == "reload"]
    assert {int(f["pid"]) for f in reloads} == old


def test_a_failed_reload_leaves_the_running_config_in_force(rotor, tmp_path):
    # The config a HUP reads takes effect with the new code: while it imports, and for good
    # if it fails, the running workers keep the worker count, limits and timeouts they
    # started with.
    app_file, conf = tmp_path / "hup_app.py", tmp_path / "rotor.toml"
    good = (APPS / "template_app.py").read_text()
    app_file.write_text(good)
    conf.write_text("workers = 2\nmax_requests = 5000\nmax_requests_jitter = 10\n")
    r = rotor("--chdir", str(tmp_path), "-c", str(conf), "hup_app:app", workers=2)
    old = set(r.ready_pids())

    conf.write_text("workers = 3\nmax_requests = 20\nmax_requests_jitter = 0\n")
    rewrite(app_file, good + "\ndef broken(:\n")
    r.signal(signal.SIGHUP)
    wait_for(lambda: r.events("reload-failed"), what=f"the failed reload\n{r.log()}")
    # A worker that dies now is replaced under the running config, not the failed one.
    victim = min(old)
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: len(r.ready_pids()) == 2 and victim not in r.ready_pids(),
             what=f"the killed worker's successor\n{r.log()}")
    assert len(r.ready_pids()) == 2, r.log()
    spawns = [f for f in r.events("spawn") if int(f["pid"]) not in old]
    assert len(spawns) == 1 and 5000 <= int(spawns[0]["limit"]) <= 5010, spawns
    assert not r.events("config-applied")

    # Fixed: the new config comes in with the new code.
    rewrite(app_file, good)
    r.signal(signal.SIGHUP)
    wait_for(lambda: r.events("config-applied"), what=f"the new config\n{r.log()}")
    assert r.events("config-applied")[0]["workers"] == "3"
    wait_for(lambda: len(r.ready_pids()) == 3 and not set(r.ready_pids()) & old,
             what=f"three workers of the new generation\n{r.log()}")
    newest = [f for f in r.events("spawn") if f["generation"] == "3"]
    assert newest and all(f["limit"] == "20" for f in newest), newest


def test_ttin_during_a_reloads_import_is_kept_when_its_config_takes_effect(rotor, tmp_path):
    conf = tmp_path / "rotor.toml"
    conf.write_text("workers = 1\n")
    r = rotor("--chdir", str(APPS), "-c", str(conf), "template_app:app", workers=1)
    # The reload's template takes 2 s to import (the -e variable reaches its import).
    conf.write_text('workers = 2\nenv = ["TEMPLATE_APP_IMPORT_DELAY=2"]\n')
    r.signal(signal.SIGHUP)
    wait_for(lambda: len(templates(r, "template-start")) == 2, what=f"the new template\n{r.log()}")
    r.signal(signal.SIGTTIN)
    wait_for(lambda: r.events("scale"), what=f"the TTIN\n{r.log()}")
    assert not r.events("config-applied"), "the import was meant to outlast the TTIN"
    wait_for(lambda: r.events("config-applied"), what=f"the new config\n{r.log()}")
    assert r.events("config-applied")[0]["workers"] == "3"  # 2 from the file, +1 from TTIN
    wait_for(lambda: len(r.ready_pids()) == 3, what=f"three workers\n{r.log()}")


def test_after_a_failed_reload_a_killed_template_restarts_with_backoff(rotor, tmp_path):
    r, app_file, good = serve_copy(rotor, tmp_path, "hup_app")
    (first,) = templates(r, "template-ready")
    rewrite(app_file, good + "\ndef broken(:\n")
    r.signal(signal.SIGHUP)
    wait_for(lambda: r.events("reload-failed"), what=f"the failed reload\n{r.log()}")
    # The template in force dies; its restarts import the broken code on disk and fail. They are
    # restarts of the config in force, backed off, not more failed reloads in a tight loop.
    os.kill(first, signal.SIGKILL)
    wait_for(lambda: len(r.events("template-restart")) >= 2, what=f"backed-off restarts\n{r.log()}")
    assert len(r.events("reload-failed")) == 1, r.log()
    starts = [f["generation"] for f in r.events("template-start")]
    assert starts[:2] == ["1", "2"] and set(starts[2:]) == {"1"}, starts  # restarts: generation 1
    # Fixed on disk: the next restart serves again, still generation 1's config.
    rewrite(app_file, good)
    wait_for(lambda: len(templates(r, "template-ready")) == 2, timeout=90,
             what=f"a restarted template\n{r.log()}")
    assert info(r)["version"] == "1"


def test_a_hup_starts_its_template_at_once_during_a_restart_backoff(rotor, tmp_path):
    r, app_file, good = serve_copy(rotor, tmp_path, "hup_app")
    (first,) = templates(r, "template-ready")
    rewrite(app_file, good + "\ndef broken(:\n")
    os.kill(first, signal.SIGKILL)
    # Restarts on the broken code back off: 0, 0.5, 1, 2, then 4 s.
    wait_for(lambda: [f for f in r.events("template-restart") if f["delay_ms"] == "4000"],
             what=f"a 4 s restart delay\n{r.log()}")
    rewrite(app_file, good.replace('"TEMPLATE_APP_VERSION", "1"', '"TEMPLATE_APP_VERSION", "2"'))
    r.signal(signal.SIGHUP)
    t0 = time.monotonic()
    wait_for(lambda: [f for f in r.events("template-start") if f["generation"] == "2"],
             what=f"the reload's template\n{r.log()}")
    assert time.monotonic() - t0 < 3.0, "the HUP waited for the restart delay"
    wait_for(lambda: info(r)["version"] == "2", what=f"the fixed code\n{r.log()}")


def test_a_hup_from_cold_fallback_replaces_dead_workers_while_the_new_code_imports(rotor,
                                                                                   tmp_path):
    conf = tmp_path / "rotor.toml"
    conf.write_text('workers = 1\nenv = ["TEMPLATE_APP_THREAD=1"]\n')
    r = rotor("--chdir", str(APPS), "-c", str(conf), "template_app:app", workers=1)
    wait_for(lambda: r.events("template-fallback"), what=f"the cold fallback\n{r.log()}")
    wait_for(lambda: any(f["mode"] == "cold" for f in r.events("worker-ready")) and
             len(r.ready_pids()) == 1, what=f"a cold worker\n{r.log()}")
    (cold,) = r.ready_pids()
    # The new code no longer starts threads, and its import takes 3 s.
    conf.write_text('workers = 1\nenv = ["TEMPLATE_APP_IMPORT_DELAY=3"]\n')
    r.signal(signal.SIGHUP)
    wait_for(lambda: len(templates(r, "template-start")) == 2, what=f"the new template\n{r.log()}")
    os.kill(cold, signal.SIGKILL)
    wait_for(lambda: [p for p in r.ready_pids() if p != cold], what=f"a replacement\n{r.log()}")
    assert not r.events("config-applied"), "the import was meant to outlast the replacement"
    replaced = [f for f in r.events("spawn") if f["reason"] == "replace"]
    assert replaced and replaced[0]["mode"] == "cold" and replaced[0]["generation"] == "1"
    wait_for(lambda: r.events("config-applied"), what=f"the new config\n{r.log()}")
    wait_for(lambda: any(f["mode"] == "template" for f in r.events("worker-ready")),
             what=f"a worker forked by the new template\n{r.log()}")


def test_a_killed_template_is_replaced_and_workers_keep_serving(rotor):
    r = serve(rotor, "--max-requests", "30", workers=2)
    (first,) = templates(r, "template-ready")
    workers = set(r.ready_pids())
    os.kill(first, signal.SIGKILL)
    wait_for(lambda: len(templates(r, "template-ready")) == 2, what=f"a new template\n{r.log()}")
    second = templates(r, "template-ready")[-1]
    assert second != first and not pid_alive(first)
    exit_line = [f for f in r.events("template-exit") if int(f["pid"]) == first]
    assert exit_line and exit_line[0]["status"] == "signal:KILL"
    # The workers were untouched, and rotations now fork from the new template.
    assert workers <= set(r.ready_pids()) | {int(f["pid"]) for f in r.events("worker-exit")}
    with httpx.Client(base_url=r.url()) as c:
        def rotated_onto_second():
            d = c.get("/", headers={"connection": "close"}).json()
            return d["imported_in"] == second and d["pid"] not in workers
        wait_for(rotated_onto_second, what=f"a worker forked by the new template\n{r.log()}")
    assert not [f for f in r.events("worker-exit") if f["reason"] == "crash"]


def test_a_worker_that_dies_while_the_template_reimports_is_replaced_cold(rotor, tmp_path):
    r, app_file, good = serve_copy(rotor, tmp_path, "slow_app", workers=2)
    (first,) = templates(r, "template-ready")
    workers = r.ready_pids()
    # From now on an import takes 5 s: the template's restart, but also a cold worker's.
    rewrite(app_file, good.replace("time.sleep(float(", "time.sleep(5 + float(", 1))
    os.kill(first, signal.SIGKILL)
    wait_for(lambda: len(templates(r, "template-start")) == 2, what=f"the restart\n{r.log()}")
    victim = workers[0]
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: [f for f in r.events("spawn") if f["reason"] == "replace"],
             what=f"a replacement\n{r.log()}")
    # Replaced at once, not after the template's import: a cold worker.
    assert len(templates(r, "template-ready")) == 1, r.log()
    (replaced,) = [f for f in r.events("spawn") if f["reason"] == "replace"]
    assert replaced["mode"] == "cold"
    wait_for(lambda: int(replaced["pid"]) in r.ready_pids(), what=f"the cold worker\n{r.log()}")
    assert len(r.ready_pids()) == 2
    wait_for(lambda: len(templates(r, "template-ready")) == 2, what=f"the template\n{r.log()}")


def test_no_preload_gives_cold_workers(rotor):
    r = serve(rotor, "--no-preload", workers=2)
    workers = set(r.ready_pids())
    for pid, d in answers_from(r, workers, 2).items():
        assert d["imported_in"] == pid  # each worker imported the app itself
    assert not r.events("template-start")
    assert {f["mode"] for f in r.events("worker-ready")} == {"cold"}


def test_an_app_that_starts_a_thread_at_import_gets_cold_workers(rotor):
    r = serve(rotor, workers=2, env={"TEMPLATE_APP_THREAD": "1"})
    (fallback,) = r.events("template-fallback")
    assert fallback["mode"] == "cold" and int(fallback["threads"]) >= 2
    assert "starts threads at import" in r.log()
    workers = set(r.ready_pids())
    for pid, d in answers_from(r, workers, 2).items():
        assert d["imported_in"] == pid
    assert {f["mode"] for f in r.events("worker-ready")} == {"cold"}


def _smaps(pid):
    out = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 3 and parts[-1] == "kB":
                out[parts[0].rstrip(":")] = int(parts[1])
    return out


def test_workers_share_what_the_template_imported(rotor):
    # 100 MB built at import: four workers forked from the template share those pages.
    r = serve(rotor, workers=4, env={"TEMPLATE_APP_ALLOC_MB": "100"})
    workers = r.ready_pids()
    assert len(workers) == 4
    assert {d["ballast_mb"] for d in answers_from(r, set(workers), 4).values()} == {100}
    rss = [_smaps(p)["Rss"] for p in workers]
    pss = [_smaps(p)["Pss"] for p in workers]
    assert min(rss) > 100 * 1024  # each worker maps the 100 MB
    # Unshared, the four would hold 4 x RSS; shared, their PSS sum stays near one copy.
    assert sum(pss) < 0.5 * 4 * max(rss), f"PSS {pss} KiB against RSS {rss} KiB"


@pytest.mark.parametrize("mode", ["--preload", "--no-preload"])
def test_stop_does_not_wait_for_a_slow_import(rotor, mode):
    # In the template, or in a cold worker that imports the app itself.
    r = rotor("--chdir", str(APPS), mode, "template_app:app", wait=False,
              env={"TEMPLATE_APP_IMPORT_DELAY": "60"})
    r.wait_listening()
    wait_for(lambda: "template-app: imported" in r.log(), what="the import to begin")
    started = time.monotonic()
    r.signal(signal.SIGTERM)
    assert r.wait_exit(timeout=DEADLINE) == 0, r.log()
    assert time.monotonic() - started < 20, r.log()  # well before the 60 s import ends
    # Not a worker killed at a timeout: one that was told to stop.
    assert [f["reason"] for f in r.events("worker-exit")] in ([], ["shutdown"]), r.log()


def test_a_worker_scaled_down_while_it_imports_leaves_at_once(rotor, tmp_path):
    app_file = tmp_path / "slow_app.py"
    good = (APPS / "template_app.py").read_text()
    app_file.write_text(good)
    r = serve(rotor, "--no-preload", workers=1, cwd=tmp_path, app="slow_app:app")
    rewrite(app_file, good.replace("time.sleep(float(", "time.sleep(60 + float(", 1))
    r.signal(signal.SIGTTIN)  # a second worker, whose import now takes a minute
    wait_for(lambda: r.log().count("template-app: imported") == 2, what="the slow import")
    started = time.monotonic()
    r.signal(signal.SIGTTOU)  # drains (USR2) the youngest: the one still importing
    wait_for(lambda: [f for f in r.events("worker-exit") if f["reason"] == "scale-down"],
             what=f"the importing worker to leave\n{r.log()}")
    assert time.monotonic() - started < 15, r.log()  # not after its import or a kill
    (gone,) = [f for f in r.events("worker-exit") if f["reason"] == "scale-down"]
    assert gone["status"] == "exit:0", gone


def test_usr1_while_a_cold_worker_imports_does_not_kill_it(rotor, tmp_path):
    # A USR1 (reopen logs) that reaches a worker still importing is kept for its loop, which
    # runs after the import: not ignored, and not the default action (death).
    error = tmp_path / "error.log"
    r = rotor("--chdir", str(APPS), "--no-preload", "--error-logfile", str(error),
              "template_app:app", wait=False, env={"TEMPLATE_APP_IMPORT_DELAY": "3"})
    wait_for(lambda: "template-app: imported" in r.log(), what="the import to begin")
    r.log_path = error  # rotor's own lines; the app's print went to stderr
    r.wait_listening()
    os.rename(error, tmp_path / "error.log.1")
    r.signal(signal.SIGUSR1)
    wait_for(lambda: error.exists() and "event=reopen-logs" in error.read_text(),
             what="the master's reopen")
    r.wait_ready(1)
    assert httpx.get(r.url("/"), timeout=10).status_code == 200
    assert not r.events("worker-exit"), r.log()


def test_usr1_reopens_logs_without_harming_the_template(rotor):
    r = serve(rotor, "--max-requests", "20", workers=1)
    (template,) = templates(r, "template-ready")
    r.signal(signal.SIGUSR1)
    wait_for(lambda: r.events("reopen-logs"), what="the reopen")
    with httpx.Client(base_url=r.url()) as c:
        first = c.get("/").json()["pid"]
        wait_for(lambda: c.get("/", headers={"connection": "close"}).json()["pid"] != first,
                 what=f"a rotation after USR1\n{r.log()}")
    assert pid_alive(template) and templates(r, "template-start") == [template]


def test_successors_start_ahead_so_workers_stop_near_their_limit(rotor):
    # At a steady rate the master starts each successor about one spawn latency before its
    # predecessor reaches the limit: the old worker leaves at its limit, not a spawn later.
    r = serve(rotor, "--max-requests", "300", workers=1)
    with httpx.Client(base_url=r.url()) as c:
        def rotated_five_times():
            for _ in range(50):
                assert c.get("/").status_code == 200
            return len([f for f in r.events("worker-exit") if f["reason"] == "max-requests"]) >= 5
        wait_for(rotated_five_times, interval=0, what=f"five rotations\n{r.log()}")
    exits = [f for f in r.events("worker-exit") if f["reason"] == "max-requests"]
    over = sorted(int(f["requests"]) - int(f["limit"]) for f in exits)
    assert [f for f in r.events("spawn") if f["reason"] == "due-soon"], r.log()
    assert over[len(over) // 2] <= 30, f"requests past the limit: {over}\n{r.log()}"
    print("past the limit:", over, "spawn_ms:", [f["spawn_ms"] for f in r.events("worker-ready")])


def test_scaling_down_while_a_spawn_is_pending_withdraws_only_that_spawn(rotor):
    # TTIN asks the template for a worker; TTOU before the template answers must withdraw that
    # request, not signal anything else (a pending worker has no pid yet).
    r = serve(rotor, workers=2)
    workers = set(r.ready_pids())
    (template,) = templates(r, "template-ready")
    os.kill(template, signal.SIGSTOP)  # the request stays unanswered
    try:
        r.signal(signal.SIGTTIN)
        wait_for(lambda: any(f["workers"] == "3" for f in r.events("scale")), what="TTIN")
        r.signal(signal.SIGTTOU)
        wait_for(lambda: any(f["workers"] == "2" for f in r.events("scale")), what="TTOU")
        for _ in range(10):  # the two workers keep serving, untouched
            assert info(r)["pid"] in workers
    finally:
        os.kill(template, signal.SIGCONT)
    # The template, continued, forks the worker of the withdrawn request; that worker is told
    # to leave at once, and nothing else is touched.
    unwanted = wait_for(lambda: r.events("spawn-unwanted"),
                        what=f"the withdrawn spawn's worker\n{r.log()}")
    assert len(unwanted) == 1 and int(unwanted[0]["template"]) == template, unwanted
    extra = int(unwanted[0]["pid"])
    assert extra not in workers
    wait_for(lambda: not pid_alive(extra), 10, what=f"worker {extra} to leave\n{r.log()}")
    assert set(r.ready_pids()) == workers
    assert not r.lines("drain") and not r.events("worker-exit"), r.log()
    assert not [f for f in r.events("spawn") if f["reason"] != "boot"], r.log()
    for _ in range(10):
        assert info(r)["pid"] in workers
    assert pid_alive(template)
