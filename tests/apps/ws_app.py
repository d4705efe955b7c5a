# WebSocket endpoints for the engine's tests: a raw ASGI app and a Starlette app in one module.
import asyncio
import os

from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

events = []  # what sessions saw, for /events


async def raw(scope, receive, send):
    """Raw ASGI: /raw/echo echoes, /raw/deny refuses, /raw/raise-before fails before
    accepting, /raw/raise-after after, /raw/return returns without accepting, /raw/close
    accepts then closes with 4001."""
    assert scope["type"] == "websocket", scope["type"]
    path = scope["path"]
    msg = await receive()
    assert msg["type"] == "websocket.connect", msg
    if path == "/raw/deny":
        await send({"type": "websocket.close", "code": 1008})
        return
    if path == "/raw/raise-before":
        raise RuntimeError("refused by raising")
    if path == "/raw/return":
        return
    subprotocol = scope["subprotocols"][0] if scope["subprotocols"] else None
    await send({"type": "websocket.accept", "subprotocol": subprotocol,
                "headers": [(b"x-session", str(os.getpid()).encode())]})
    if path == "/raw/raise-after":
        raise RuntimeError("failed after accepting")
    if path == "/raw/close":
        await send({"type": "websocket.close", "code": 4001, "reason": "bye"})
        events.append(("after-close", await receive()))
        return
    if path == "/raw/sleep":  # never receives
        await asyncio.sleep(60)
        return
    if path == "/raw/multi":  # two tasks send at once to a client that reads late
        big = b"m" * (1024 * 1024)
        done = []

        async def sender(name):
            for _ in range(8):
                await send({"type": "websocket.send", "bytes": big})
            done.append(name)

        tasks = [asyncio.ensure_future(sender(n)) for n in "ab"]
        await asyncio.wait(tasks, timeout=30)
        events.append(("multi-done", sorted(done)))
        await send({"type": "websocket.close"})
        return
    if path == "/raw/big":  # one large message (?size) to a client that reads it slowly
        size = int(scope["query_string"] or 4 << 20)
        await send({"type": "websocket.send", "bytes": b"B" * size})
        events.append(("big-sent", (await receive())["type"]))
        return
    if path == "/raw/badcode":
        code = int(scope["query_string"] or b"1006")
        await send({"type": "websocket.close", "code": code})
        return
    if path == "/raw/scope":
        await send({"type": "websocket.send", "text": repr(
            {k: scope[k] for k in ("scheme", "path", "query_string", "subprotocols",
                                   "http_version", "client", "root_path")} |
            {"has_method": "method" in scope})})
    while True:
        msg = await receive()
        if msg["type"] == "websocket.disconnect":
            events.append(("disconnect", msg["code"]))
            return
        if msg.get("text") is not None:
            await send({"type": "websocket.send", "text": msg["text"]})
        else:
            await send({"type": "websocket.send", "bytes": msg["bytes"]})


async def chat(websocket: WebSocket):
    await websocket.accept()
    try:
        while True:
            data = await websocket.receive_json()
            if data.get("op") == "sum":
                await websocket.send_json({"sum": sum(data["values"]), "pid": os.getpid()})
            elif data.get("op") == "stream":
                for i in range(data["n"]):
                    await websocket.send_text(f"part {i}")
                    await asyncio.sleep(0)
            elif data.get("op") == "close":
                await websocket.close(code=4000)
                return
    except WebSocketDisconnect as exc:
        events.append(("starlette-disconnect", exc.code))


starlette_app = Starlette(routes=[WebSocketRoute("/chat", chat)])


async def app(scope, receive, send):
    if scope["type"] == "http":
        body = repr(events).encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": body})
    elif scope["type"] == "websocket" and scope["path"].startswith("/raw"):
        await raw(scope, receive, send)
    else:
        await starlette_app(scope, receive, send)
