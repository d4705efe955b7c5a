"""An app whose handler blocks the worker's event loop (time.sleep): the worker can then do
nothing on its own, such as noticing that its master died."""
import time


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    seconds = float(scope["query_string"].decode().partition("s=")[2] or "0")
    await send({"type": "http.response.start", "status": 200, "headers": []})
    time.sleep(seconds)
    await send({"type": "http.response.body", "body": b"done"})
