"""A WebSocket endpoint that accepts only once a file exists (?flag=PATH), so that a test can
have the session accepted while its worker drains; what it saw goes to ?marks=PATH."""
import asyncio
import os
import urllib.parse


def mark(path, text):
    with open(path, "a") as f:
        f.write(f"{text}\n")


async def app(scope, receive, send):
    if scope["type"] != "websocket":
        return
    q = dict(urllib.parse.parse_qsl(scope["query_string"].decode()))
    assert (await receive())["type"] == "websocket.connect"
    mark(q["marks"], f"handshake {os.getpid()}")
    while not os.path.exists(q["flag"]):
        await asyncio.sleep(0.02)
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            mark(q["marks"], f"disconnect {message['code']}")
            return
        await send({"type": "websocket.send", "text": message.get("text") or ""})
