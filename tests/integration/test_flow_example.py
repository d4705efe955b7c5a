"""The flow-executor example (examples/flow_executor) under the real binary: its sample flows,
its error answers, its controlled leak, and max-requests rotation of its workers."""
import http.client
import json

from conftest import ROOT, wait_for

EXAMPLE = ROOT / "examples" / "flow_executor"
FLOWS = EXAMPLE / "flows"

# The deterministic answers of the sample flows (first run of a fresh session).
EXPECTED = {
    "chat": {"output": "workers Python leaky rotates rotor", "turn": 1,
             "fingerprint": "2fc861f4017e"},
    "keywords": {"output": ["rotation", "workers", "cheap"], "turn": 0,
                 "fingerprint": "b88adf7116e1"},
    "stats": {"output": {"words": 11, "lines": 1, "longest": "requests"}, "turn": 0,
              "fingerprint": "a8778d6e0566"},
}


def serve(rotor, *args, workers=1, env=None):
    return rotor("--chdir", str(EXAMPLE), "-w", str(workers), *args, "app:app", workers=workers,
                 env=env)


def flow(name, **changes):
    body = json.loads((FLOWS / f"{name}.json").read_text())
    body.update(changes)
    return body


class Client:
    """POSTs over one keep-alive connection (or a new one per request with keep_alive=False).

    http.client sends a small request's head and body in one write; a client that writes them
    separately (httpx) waits out a 40 ms delayed ACK on every POST, with any server."""

    def __init__(self, port, keep_alive=True):
        self.port, self.keep_alive, self.conn = port, keep_alive, None

    def request(self, method, path, body=None):
        if self.conn is None:
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
        if isinstance(body, str):
            body = body.encode()
        headers = {"Content-Type": "application/json"}
        if not self.keep_alive:
            headers["Connection"] = "close"
        try:
            self.conn.request(method, path, body=body, headers=headers)
            resp = self.conn.getresponse()
            data = resp.read()
        finally:
            if not self.keep_alive:
                self.close()
        if resp.getheader("Content-Type", "").startswith("application/json"):
            return resp.status, json.loads(data)
        return resp.status, data

    def post(self, body, path="/run"):
        return self.request("POST", path, body)

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


def test_sample_flows_give_their_deterministic_output(rotor):
    r = serve(rotor)
    [worker] = r.ready_pids()
    c = Client(r.port)
    assert sorted(p.stem for p in FLOWS.glob("*.json")) == sorted(EXPECTED)
    for name, expected in EXPECTED.items():
        status, out = c.post(flow(name))
        assert status == 200, (name, out)
        assert {k: out[k] for k in expected} == expected, name
        assert out["pid"] == worker
    # Conversation memory is per session, in the worker: the next turn of the same session
    # sees the history (another fingerprint), a new session starts again.
    status, out = c.post(flow("chat"))
    assert (status, out["turn"], out["output"]) == (200, 2, EXPECTED["chat"]["output"])
    assert out["fingerprint"] != EXPECTED["chat"]["fingerprint"]
    status, out = c.post(flow("chat", session_id="another"))
    assert (out["turn"], out["fingerprint"]) == (1, EXPECTED["chat"]["fingerprint"])
    assert out["runs"] == len(EXPECTED) + 2
    assert c.request("GET", "/health") == (200, {"status": "ok", "pid": worker, "runs": 5})
    assert c.request("GET", "/")[0] == 200


def test_flows_run_over_the_websocket(rotor):
    import asyncio

    import pytest
    websockets = pytest.importorskip("websockets")
    r = serve(rotor)
    [worker] = r.ready_pids()

    async def main():
        async with websockets.connect(f"ws://127.0.0.1:{r.port}/ws") as ws:
            answers = []
            for body in (flow("chat"), flow("chat"), "not json", flow("keywords"),
                         flow("chat", flow={"nodes": []})):
                await ws.send(body if isinstance(body, str) else json.dumps(body))
                answers.append(json.loads(await ws.recv()))
            return answers

    first, second, bad, keywords, wrong = asyncio.run(asyncio.wait_for(main(), 60))
    assert first["status"] == 200 and first["pid"] == worker
    assert {k: first[k] for k in EXPECTED["chat"]} == EXPECTED["chat"]
    assert (second["turn"], second["runs"]) == (2, 2)  # the session's memory, in that worker
    assert bad["status"] == 422 and "not valid JSON" in bad["error"]
    assert keywords["output"] == EXPECTED["keywords"]["output"]
    assert wrong["status"] == 422 and wrong["error"]
    # The three good runs counted in the worker; the bad ones left the session open.
    assert Client(r.port).request("GET", "/health")[1]["runs"] == 3


def test_bad_requests_get_clear_errors_and_the_worker_survives(rotor):
    r = serve(rotor)
    [worker] = r.ready_pids()
    c = Client(r.port)

    def node_type(dotted):
        body = flow("keywords")
        body["flow"]["nodes"][0]["type"] = dotted
        return body

    def edited(edit):
        body = flow("chat")
        edit(body["flow"])
        return body

    cases = [
        (b'{"flow": ', 422, "not valid JSON"),
        (b'\xff\xfe{}', 422, "not valid JSON"),
        (b"[" * 100000, 422, "not valid JSON"),  # too deep for the parser
        ([1, 2], 422, "must be a JSON object"),
        ({"inputs": {}}, 422, "'flow' must be an object"),
        ({"flow": {"nodes": []}}, 422, "'flow.nodes' must be a non-empty list"),
        (flow("chat", extra=1), 422, "unknown field 'extra'"),
        (flow("chat", inputs={"message": ["a"]}), 422, "input 'message' must be"),
        (flow("chat", inputs={}), 422, "input 'message' used by node 'prompt' is missing"),
        (flow("chat", session_id=""), 422, "'session_id' must be"),
        (edited(lambda f: f["nodes"].append(dict(f["nodes"][0]))), 422, "duplicate node id"),
        (edited(lambda f: f["nodes"][0].pop("id")), 422, "flow.nodes[0].id must be"),
        (edited(lambda f: f["nodes"][2]["params"].update(work="lots")), 422,
         "parameter 'work' must be int"),
        (edited(lambda f: f["nodes"][2]["params"].update(temperature=1)), 422,
         "unknown parameter 'temperature'"),
        (edited(lambda f: f["nodes"][2]["params"].update(style="poem")), 422,
         "parameter 'style' must be one of"),
        (edited(lambda f: f["nodes"][0]["params"].pop("template")), 422,
         "parameter 'template' is required"),
        (edited(lambda f: f["edges"].append({"source": "ghost", "target": "chain",
                                             "input": "llm"})), 422, "flow.edges[4].source"),
        (edited(lambda f: f["edges"][1].update(input="prompt")), 422,
         "takes a prompt, not a llm"),
        (edited(lambda f: f["edges"].pop(0)), 422, "input 'prompt' of node 'chain' is not wired"),
        (edited(lambda f: f.update(output="parser")), 422, "is not a chain"),
        (node_type("flow_nodes.prompt.Nope"), 400, "unknown node type 'flow_nodes.prompt.Nope'"),
        (node_type("os.system"), 400, "unknown node type 'os.system'"),
        (node_type("subprocess.Popen"), 400, "unknown node type"),
        (node_type("flow_nodes.builder.build"), 400, "unknown node type"),
        (node_type("this.s"), 400, "unknown node type"),
    ]
    for body, status, message in cases:
        got, out = c.post(body)
        assert (got, message in out.get("error", "")) == (status, True), (body, out)
        assert c.request("GET", "/health")[1]["pid"] == worker
    status, out = c.post(flow("keywords"))
    assert (status, out["output"], out["pid"]) == (200, EXPECTED["keywords"]["output"], worker)
    # Refused types were never imported: `import this` prints the Zen of Python.
    assert "Beautiful is better than ugly" not in r.log()
    assert not r.lines("worker-exit") and r.ready_pids() == [worker]


def test_flow_leak_kb_grows_the_worker_rss(rotor):
    leak_kb, runs = 1024, 60
    r = serve(rotor, env={"FLOW_LEAK_KB": str(leak_kb)})
    [worker] = r.ready_pids()
    c = Client(r.port)
    for _ in range(5):  # warm-up: imports, allocator arenas
        assert c.post(flow("stats"))[0] == 200
    before = rss_kib(worker)
    for _ in range(runs):
        assert c.post(flow("stats"))[0] == 200
    grown = rss_kib(worker) - before
    # Each run keeps leak_kb written bytes; allow some slack for the allocator either way.
    assert 0.8 * runs * leak_kb < grown < 1.5 * runs * leak_kb + 32 * 1024, grown


def test_max_requests_rotates_workers_without_failures(rotor):
    r = serve(rotor, "--max-requests", "20", "--max-requests-jitter", "5", workers=2)
    runs = {}  # pid -> highest run count the app reported
    failures = []

    def run_batch(client, n):
        for _ in range(n):
            try:
                status, out = client.post(flow("keywords"))
            except (OSError, http.client.HTTPException) as exc:
                failures.append(repr(exc))
                client.close()
                continue
            if status != 200 or out["output"] != EXPECTED["keywords"]["output"]:
                failures.append((status, out))
                continue
            runs[out["pid"]] = max(runs.get(out["pid"], 0), out["runs"])

    # Sequential runs over fresh connections, then over one keep-alive connection (which
    # follows its worker until that one drains), until several generations have served.
    fresh, kept = Client(r.port, keep_alive=False), Client(r.port)

    def rotated():
        run_batch(fresh, 20)
        run_batch(kept, 20)
        return len(runs) >= 6 or failures
    wait_for(rotated, interval=0, what=f"six worker generations to serve\n{r.log()}")
    kept.close()
    assert not failures, failures

    spawned = {int(f["pid"]): f for f in r.events("spawn")}
    exits = {int(f["pid"]): f for f in r.events("worker-exit")}
    for f in spawned.values():
        assert 20 <= int(f["limit"]) <= 25, f
    for pid, f in exits.items():
        assert f["reason"] == "max-requests", f
        assert int(f["requests"]) >= int(f["limit"]), f
        assert runs.get(pid, 0) <= int(f["requests"]), (pid, runs, f)
    # A worker keeps serving past its limit only until its successor is ready (rotor starts
    # the successor first), so it answers more runs than its limit only once one is spawned.
    for pid, n in runs.items():
        if n > int(spawned[pid]["limit"]):
            wait_for(lambda: any(f.get("replaces") == str(pid) for f in r.events("spawn")),
                     what=f"a successor for {pid}, past its limit at {n} runs\n{r.log()}")
    print("runs per worker:", runs, "limits:", {p: f["limit"] for p, f in spawned.items()})
