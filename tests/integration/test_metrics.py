"""The master's /metrics: Prometheus text that tells what was served, how long it took, which
workers rotated and why, checked against what the test sent and what the log says."""
import re
import shutil
import signal
import socket
import subprocess
import threading
import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import APPS, DEADLINE, wait_for

HELLO = ["-k", "hello"]
ASGI = ["--chdir", str(APPS), "raw_app:app"]


def metrics_port(r):
    """The port of --metrics-bind 127.0.0.1:0, from the master's log."""
    def bound():
        if r.proc.poll() is not None:
            raise AssertionError(f"rotor exited {r.proc.returncode}:\n{r.log()}")
        for f in r.events("metrics-listening"):
            m = re.match(r"http://127\.0\.0\.1:(\d+)", f.get("address", ""))
            if m:
                return int(m.group(1))
        return None
    return wait_for(bound, what="the metrics-listening line")


def scrape_text(port, path="/metrics"):
    resp = httpx.get(f"http://127.0.0.1:{port}{path}", timeout=DEADLINE)
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("text/plain; version=0.0.4")
    return resp.text


def samples(text):
    """{(name, frozenset(labels)): value} of every sample, as prometheus_client parses it."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(parsed, name, **labels):
    return parsed[(name, frozenset(labels.items()))]


def labelled(parsed, name, label):
    """{label value: sample value} of a metric with one label."""
    return {dict(k[1])[label]: v for k, v in parsed.items() if k[0] == name}


def hammer(url, threads, per_thread):
    """`threads` keep-alive clients sending `per_thread` GETs each; returns the answers' codes."""
    codes = []
    lock = threading.Lock()

    def client():
        mine = []
        with httpx.Client(timeout=DEADLINE) as c:
            for _ in range(per_thread):
                mine.append(c.get(url).status_code)
        with lock:
            codes.extend(mine)

    workers = [threading.Thread(target=client) for _ in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    return codes


@pytest.mark.parametrize("kind", [HELLO, ASGI], ids=["hello", "asgi"])
def test_metrics_count_what_was_served_across_rotations(rotor, kind):
    r = rotor(*kind, "-w", "2", "--max-requests", "150", "--max-requests-jitter", "20",
              "--metrics-bind", "127.0.0.1:0")
    port = metrics_port(r)
    seen = []
    done = threading.Event()

    def scraper():  # every 100 ms under load: the counter never goes back at a rotation
        while not done.is_set():
            seen.append(value(samples(scrape_text(port)), "rotor_requests_total"))
            time.sleep(0.1)

    t = threading.Thread(target=scraper)
    t.start()
    try:
        codes = hammer(r.url("/"), threads=4, per_thread=300)
    finally:
        done.set()
        t.join()
    assert codes == [200] * 1200
    assert seen == sorted(seen), seen
    exits = r.events("worker-exit")
    assert len(exits) >= 4, r.log()  # workers rotated under the load

    def settled():
        p = samples(scrape_text(port))
        return p if value(p, "rotor_requests_in_flight") == 0 else None
    p = wait_for(settled, what="no request in flight")
    assert value(p, "rotor_requests_total") == 1200
    assert value(p, "rotor_request_duration_seconds_count") == 1200
    assert value(p, "rotor_request_duration_seconds_bucket", le="+Inf") == 1200
    assert 0 < value(p, "rotor_request_duration_seconds_sum") < 1200 * 1.0
    assert value(p, "rotor_responses_total", code="2xx") == 1200
    assert value(p, "rotor_responses_total", code="5xx") == 0
    # Exits by reason: the log's worker-exit lines, as many and for the same reasons (once the
    # last rotation started by the load is over: a scrape and a read of the log agree).
    def agreed():
        q = samples(scrape_text(port))
        exits = r.events("worker-exit")
        by_reason = labelled(q, "rotor_worker_exits_total", "reason")
        ok = all(n == sum(1 for e in exits if e["reason"] == reason)
                 for reason, n in by_reason.items())
        ready = len(r.events("worker-ready"))
        return (q, by_reason, exits) if ok and value(
            q, "rotor_worker_spawn_duration_seconds_count") == ready else None
    p, by_reason, exits = wait_for(agreed, what=f"the metrics to agree with the log\n{r.log()}")
    assert by_reason["max-requests"] == len(exits) > 0
    # Each live worker, by slot: what it served is within its limit, which the spawn line gave.
    limits = {int(e["pid"]): int(e["limit"]) for e in r.events("spawn")}
    worker_limits = labelled(p, "rotor_worker_request_limit", "slot")
    assert len(worker_limits) >= 2
    assert set(worker_limits.values()) <= set(limits.values())
    assert all(v > 0 for v in labelled(p, "rotor_worker_resident_memory_bytes", "slot").values())
    assert all(v >= 0 for v in labelled(p, "rotor_worker_age_seconds", "slot").values())
    assert value(p, "rotor_workers", state="ready") + value(p, "rotor_workers", state="retiring") >= 2
    assert value(p, "rotor_build_info", version=re.search(r"version=(\S+)", r.log()).group(1)) == 1
    assert value(p, "process_open_fds") > 0 and value(p, "process_resident_memory_bytes") > 0
    # The generation's growth estimate, once a worker's exit gave one (as the log's trend).
    if r.events("memory-trend"):
        assert "1" in labelled(p, "rotor_generation_private_growth_bytes_per_request",
                               "generation"), r.log()


def test_app_errors_count_as_5xx_answers(rotor):
    r = rotor(*ASGI, "--metrics-bind", "127.0.0.1:0")
    port = metrics_port(r)
    with httpx.Client(timeout=DEADLINE) as c:
        assert c.get(r.url("/raise-before")).status_code == 500
        assert c.get(r.url("/")).status_code == 200
    p = wait_for(lambda: (lambda q: q if value(q, "rotor_requests_total") == 2 else None)(
        samples(scrape_text(port))), what="two answers counted")
    assert value(p, "rotor_responses_total", code="5xx") == 1
    assert value(p, "rotor_responses_total", code="2xx") == 1
    assert value(p, "rotor_request_duration_seconds_count") == 2


@pytest.mark.skipif(not shutil.which("promtool"), reason="promtool not installed (Debian's prometheus)")
def test_promtool_accepts_the_exposition(rotor):
    r = rotor(*HELLO, "-w", "2", "--max-requests", "20", "--metrics-bind", "127.0.0.1:0")
    port = metrics_port(r)
    hammer(r.url("/"), threads=2, per_thread=50)
    text = scrape_text(port)
    out = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.strip() == "" and out.stderr.strip() == "", out.stdout + out.stderr


def test_metrics_answer_while_every_worker_is_busy(rotor):
    r = rotor("--chdir", str(APPS), "blocking_app:app", "--metrics-bind", "127.0.0.1:0")
    port = metrics_port(r)
    blocked = threading.Thread(
        target=lambda: httpx.get(r.url("/?s=3"), timeout=DEADLINE))
    blocked.start()
    try:
        def busy():
            p = samples(scrape_text(port))
            return p if value(p, "rotor_requests_in_flight") == 1 else None
        started = time.monotonic()
        p = wait_for(busy, timeout=2.5, what="the blocked request in flight")
        assert time.monotonic() - started < 2.5
        assert value(p, "rotor_connections") >= 1
    finally:
        blocked.join()


def test_the_accept_queue_shows_connections_nobody_accepts(rotor):
    r = rotor(*HELLO, "--metrics-bind", "127.0.0.1:0", "--backlog", "64")
    port = metrics_port(r)
    worker = r.ready_pids()[0]
    listener = f"http://127.0.0.1:{r.port}"
    p = samples(scrape_text(port))
    assert value(p, "rotor_listen_queue", listener=listener) == 0
    assert value(p, "rotor_listen_queue_max", listener=listener) == 64
    socks = []
    import os
    os.kill(worker, signal.SIGSTOP)
    try:
        socks = [socket.create_connection(("127.0.0.1", r.port)) for _ in range(5)]
        p = samples(scrape_text(port))
        assert value(p, "rotor_listen_queue", listener=listener) == 5
    finally:
        os.kill(worker, signal.SIGCONT)
        for s in socks:
            s.close()
    wait_for(lambda: value(samples(scrape_text(port)), "rotor_listen_queue",
                           listener=listener) == 0, what="the queue to empty")


def test_reloads_are_counted_by_result(rotor, tmp_path):
    conf = tmp_path / "rotor.toml"
    conf.write_text('worker_class = "hello"\nworkers = 1\n')
    r = rotor("-c", str(conf), "--metrics-bind", "127.0.0.1:0")
    port = metrics_port(r)
    r.signal(signal.SIGHUP)
    wait_for(lambda: r.events("config-applied"), what=f"the reload\n{r.log()}")
    conf.write_text("workers = [not toml\n")
    r.signal(signal.SIGHUP)
    wait_for(lambda: r.events("reload-failed"), what=f"the failed reload\n{r.log()}")
    p = samples(scrape_text(port))
    assert value(p, "rotor_reloads_total", result="success") == 1
    assert value(p, "rotor_reloads_total", result="failure") == 1
    assert value(p, "rotor_generation") == value(p, "rotor_generation_in_force") == 2
