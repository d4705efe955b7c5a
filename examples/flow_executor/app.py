"""Flow executor: the backend of a visual LLM-flow builder, as an ASGI app (Starlette).

Every POST /run deserializes a flow, imports and instantiates its node classes, wires them into
an object graph with reference cycles, runs it and drops it: memory creeps up because the cycles
wait for the cyclic GC and conversation memory is cached per session at module level. The
FLOW_LEAK_KB environment variable adds a controlled leak of that many KiB per run.

    rotor --chdir examples/flow_executor app:app
"""
import json
import os

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from flow_nodes.base import FlowError
from flow_nodes.builder import build

LEAK_KB = int(os.environ.get("FLOW_LEAK_KB") or 0)
LEAKED = []  # FLOW_LEAK_KB per run, kept for the worker's life
runs = 0


def execute(body):
    """One run of the flow in a /run body (bytes or str): (HTTP status, JSON answer)."""
    global runs
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError too
        return 422, {"error": f"the body is not valid JSON: {exc}"}
    try:
        graph, inputs, session_id = build(payload)
        result = graph.run(inputs, session_id)
    except FlowError as exc:
        return exc.status, {"error": str(exc)}
    except Exception as exc:  # a node's bug fails this run, never the worker
        return 500, {"error": f"the flow failed: {type(exc).__name__}: {exc}"}
    runs += 1
    if LEAK_KB:
        # Written, not just allocated: untouched pages would not count in RSS.
        LEAKED.append(b"%08d" % runs * (LEAK_KB * 128))
    return 200, {**result, "session_id": session_id, "pid": os.getpid(), "runs": runs}


async def run(request: Request):
    status, answer = execute(await request.body())
    return JSONResponse(answer, status_code=status)


async def run_ws(websocket: WebSocket):
    """The builder's live channel: each text message is a /run body, each answer carries the
    run's status. A bad run is answered and the session goes on."""
    await websocket.accept()
    try:
        while True:
            status, answer = execute(await websocket.receive_text())
            await websocket.send_json({"status": status, **answer})
    except WebSocketDisconnect:
        pass


async def health(request: Request):
    return JSONResponse({"status": "ok", "pid": os.getpid(), "runs": runs})


async def index(request: Request):
    return PlainTextResponse("flow executor: POST /run with {\"flow\": ..., \"inputs\": ..., "
                             "\"session_id\": ...}, or the same bodies as messages on the "
                             "WebSocket /ws; GET /health\n")


app = Starlette(routes=[Route("/", index), Route("/health", health),
                        Route("/run", run, methods=["POST"]), WebSocketRoute("/ws", run_ws)])
