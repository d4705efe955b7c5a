"""An app for the storm tests: a route that ends its worker's process at once (as a C
extension's abort or a careless os._exit does), and one that grows the worker's memory."""
import os

_kept = []


async def _answer(send, body):
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": body})


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    path = scope["path"]
    if path == "/exit":
        os._exit(0)
    if path == "/grow":
        # Touched pages, so they count in the resident size the master samples.
        mb = int(scope["query_string"].decode().partition("mb=")[2] or "2")
        _kept.append(b"x" * (mb << 20))
        await _answer(send, str(len(_kept)).encode())
        return
    await _answer(send, b"Hello, world!")
