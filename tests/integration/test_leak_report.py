"""--leak-report under the real binary: a traced worker names the line that keeps its memory
(the flow example's controlled leak and its natural session growth), reports the cyclic GC's
work and gc.garbage, writes its JSON file, and costs nothing in the workers it does not trace."""
import http.client
import json
import os
import signal
import subprocess

from conftest import APPS, BIN, ROOT, pid_alive, wait_for
from test_flow_example import EXAMPLE, Client, flow

APP_PY = EXAMPLE / "app.py"


def line_of(path, marker):
    """The number of the one line of `path` that holds `marker`."""
    hits = [i for i, line in enumerate(path.read_text().splitlines(), 1) if marker in line]
    assert len(hits) == 1, (path, marker, hits)
    return hits[0]


def serve_flow(rotor, *args, workers=1, env=None):
    return rotor("--chdir", str(EXAMPLE), "-w", str(workers), "--leak-report", *args, "app:app",
                 workers=workers, env=env)


def serve_probe(rotor, *args, workers=1):
    return rotor("--chdir", str(APPS), "-w", str(workers), "--leak-report", *args,
                 "leak_probe_app:app", workers=workers)


def get(port, path):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path, headers={"Connection": "close"})
        return json.loads(conn.getresponse().read())
    finally:
        conn.close()


def reports(r, pid=None):
    return [f for f in r.events("leak-report") if pid is None or f["pid"] == str(pid)]


def sites(r, pid):
    found = [f for f in r.events("leak-site") if f["pid"] == str(pid)]
    return sorted(found, key=lambda f: int(f["rank"]))


def stop(r):
    r.signal(signal.SIGTERM)
    assert r.wait_exit() == 0


def test_the_first_site_is_the_line_that_keeps_flow_leak_kb_and_the_json_says_so(rotor, tmp_path):
    reports_dir = tmp_path / "reports"
    r = serve_flow(rotor, "--leak-report-warmup", "5", "--max-requests", "45",
                   "--leak-report-dir", str(reports_dir), env={"FLOW_LEAK_KB": "64"})
    [worker] = r.ready_pids()
    c = Client(r.port)
    for i in range(45):  # the last one retires the worker (max-requests)
        assert c.post(flow("chat", session_id=f"s{i % 3}"))[0] == 200
    [report] = wait_for(lambda: reports(r, worker), what=f"the report\n{r.log()}")
    top = sites(r, worker)
    assert top and top[0]["rank"] == "1"
    assert top[0]["site"] == f"app.py:{line_of(APP_PY, 'LEAKED.append(')}", top[0]
    assert top[0]["function"] == "execute"
    # 40 runs after the warm-up keep 40 x 64 KiB.
    assert 40 * 64 <= float(top[0]["size_kib"]) < 41 * 64 + 64, top[0]
    assert int(top[0]["count"]) >= 40
    assert (report["traced_requests"], report["baseline"]) == ("40", "warmup")
    assert float(report["growth_kib"]) >= 40 * 64
    assert not r.lines("leak-report-failed")

    [path] = reports_dir.glob(f"leak-{worker}-*.json")
    assert report["file"] == str(path)
    data = json.loads(path.read_text())
    assert (data["pid"], data["requests"], data["traced_requests"]) == (worker, 45, 40)
    first = data["sites"][0]
    assert first["site"]["file"] == "app.py"
    assert first["site"]["line"] == line_of(APP_PY, "LEAKED.append(")
    assert "LEAKED.append(" in first["site"]["code"]
    # The whole traceback, innermost first: the example's run() awaits execute().
    assert first["traceback"][0] == first["site"]
    assert ("app.py", "run") in [(f["file"], f["function"]) for f in first["traceback"]]
    assert data["gc"]["garbage"] == {"count": 0, "types": {}}
    assert not list(reports_dir.glob("*.tmp"))


def test_without_a_controlled_leak_the_session_memory_is_found_in_flow_nodes(rotor):
    r = serve_flow(rotor, "--leak-report-warmup", "10")
    [worker] = r.ready_pids()
    c = Client(r.port)
    # A few conversations of many turns: every turn is kept in its session's memory for the
    # worker's life (the model's answer, and the turn that holds it).
    for i in range(200):
        assert c.post(flow("chat", session_id=f"user-{i % 4}"))[0] == 200
    stop(r)
    [report] = reports(r, worker)
    top = {s["site"]: s for s in sites(r, worker)}
    nodes = EXAMPLE / "flow_nodes"
    answer = f"flow_nodes/model.py:{line_of(nodes / 'model.py', 'join(reversed(')}"
    turn = f"flow_nodes/memory.py:{line_of(nodes / 'memory.py', 'self.turns.append(')}"
    # One answer kept per run after the warm-up, and the turns that hold them.
    assert top[answer]["count"] == report["traced_requests"] == "190", top
    assert turn in top, top
    in_nodes = sum(float(s["size_kib"]) for site, s in top.items() if site.startswith("flow_nodes/"))
    assert in_nodes > float(report["growth_kib"]) / 2, top
    # The chain and its memory node refer to each other: each run leaves cycles to the GC.
    assert float(report["gc_collected_per_request"]) > 0
    assert report["traced_requests"] == "190"


def test_one_worker_in_two_is_traced_and_the_other_never_imports_tracemalloc(rotor):
    r = serve_probe(rotor, "--leak-report-every", "2", workers=2)
    pids = r.ready_pids()
    seen = {}

    def both_answered():
        answer = get(r.port, "/modules")
        seen[answer["pid"]] = answer["tracemalloc"]
        return len(seen) == 2

    wait_for(both_answered, what="an answer from both workers")
    assert sorted(seen) == sorted(pids)
    [traced] = [pid for pid, loaded in seen.items() if loaded]
    assert [int(f["pid"]) for f in r.events("leak-trace-start")] == [traced]
    stop(r)
    assert [int(f["pid"]) for f in reports(r)] == [traced]


def test_a_killed_worker_leaves_no_report_and_no_error(rotor, tmp_path):
    r = serve_flow(rotor, "--leak-report-warmup", "2", "--leak-report-dir", str(tmp_path))
    [killed] = r.ready_pids()
    c = Client(r.port)
    for _ in range(5):
        assert c.post(flow("stats"))[0] == 200
    c.close()
    os.kill(killed, signal.SIGKILL)
    wait_for(lambda: not pid_alive(killed) and r.ready_pids(), what="a replacement")
    [successor] = r.ready_pids()
    stop(r)
    assert not reports(r, killed) and not sites(r, killed)
    assert not r.lines("leak-report-failed")
    assert not list(tmp_path.glob(f"leak-{killed}-*"))
    assert [int(f["pid"]) for f in reports(r)] == [successor]  # it reports as it stops


def test_gc_garbage_is_counted_and_its_types_named(rotor):
    r = serve_probe(rotor, "--leak-report-warmup", "0")
    [worker] = r.ready_pids()
    for _ in range(30):
        get(r.port, "/garbage")
    stop(r)
    [report] = reports(r, worker)
    assert report["baseline"] == "ready"
    # Two Nodes and their two __dict__s per request, at least.
    assert int(report["gc_garbage"]) >= 60
    assert "Node" in report["gc_garbage_types"].split(",")


def test_a_report_directory_that_cannot_be_written_stops_rotor_with_one_line(tmp_path):
    plain = tmp_path / "plain"
    plain.write_text("x")
    for bad in (str(plain), str(plain / "reports"), "/proc/rotor-leak-reports"):
        out = subprocess.run([str(BIN), "--chdir", str(APPS), "--leak-report",
                              "--leak-report-dir", bad, "-b", "127.0.0.1:0", "leak_probe_app:app"],
                             capture_output=True, text=True, timeout=30)
        assert out.returncode == 1, out
        [line] = out.stderr.splitlines()
        assert line.startswith(f"rotor: error: --leak-report-dir: {bad}: "), line
    # Without --leak-report the directory is not used, nor checked.
    out = subprocess.run([str(BIN), "--leak-report-dir", str(plain), "--check-config"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out


def test_a_report_directory_gone_since_the_start_costs_the_file_only(rotor, tmp_path):
    reports_dir = tmp_path / "reports"
    r = serve_probe(rotor, "--leak-report-warmup", "1", "--leak-report-dir", str(reports_dir))
    [worker] = r.ready_pids()
    for _ in range(3):
        get(r.port, "/modules")
    reports_dir.rmdir()
    reports_dir.write_text("not a directory any more")
    stop(r)
    [report] = reports(r, worker)
    assert "file" not in report
    [failed] = r.events("leak-report-failed")
    assert failed["step"] == "file" and str(reports_dir) in failed["error"]
    assert not r.lines("worker-crash")


def test_workers_that_leave_on_a_scale_down_or_a_reload_report_too(rotor):
    r = serve_probe(rotor, "--leak-report-warmup", "0", workers=2)
    first = set(r.ready_pids())
    r.signal(signal.SIGTTOU)
    [gone] = wait_for(lambda: [int(f["pid"]) for f in r.events("worker-exit")
                               if f["reason"] == "scale-down"], what=f"a scale-down\n{r.log()}")
    wait_for(lambda: reports(r, gone), what=f"the scaled-down worker's report\n{r.log()}")
    r.signal(signal.SIGHUP)
    [kept] = first - {gone}
    [reason] = wait_for(lambda: [f["reason"] for f in r.events("worker-exit")
                                 if int(f["pid"]) == kept], what=f"a reload\n{r.log()}")
    assert reason == "reload"
    assert reports(r, kept)  # logged before it exits
    assert not r.lines("leak-report-failed")
