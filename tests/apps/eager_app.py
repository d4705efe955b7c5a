"""Asyncio semantics an app relies on, whichever way the worker starts its request: at once
from the engine (eagerly) or as a task. Each endpoint answers text the tests compare."""
import asyncio
import contextvars

import anyio
import sniffio

var = contextvars.ContextVar("var", default="unset")
_together = 0  # /task-id requests so far


async def _answer(send, text, status=200):
    await send({"type": "http.response.start", "status": status, "headers": []})
    await send({"type": "http.response.body", "body": text.encode()})


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    path = scope["path"]
    if path == "/task":
        task = asyncio.current_task()
        await asyncio.sleep(0.01)
        await _answer(send, f"{task is not None} {asyncio.current_task() is task} "
                            f"{sniffio.current_async_library()}")
    elif path == "/ctx-sync":
        # Sets a context variable and finishes without ever suspending.
        before = var.get()
        var.set("leaked")
        await _answer(send, before)
    elif path == "/ctx-async":
        before = var.get()
        var.set("leaked")
        await asyncio.sleep(0)
        await _answer(send, f"{before} {var.get()}")
    elif path == "/anyio":
        with anyio.CancelScope() as scope_:
            scope_.cancel()
            await anyio.sleep(1)
        async with anyio.create_task_group() as tg:
            tg.start_soon(anyio.sleep, 0.01)
        await _answer(send, "anyio ok")
    elif path == "/cancel-self":
        asyncio.current_task().cancel()
        try:
            await asyncio.sleep(0)
            await _answer(send, "not cancelled")
        except asyncio.CancelledError:
            await _answer(send, "caught")
    elif path == "/cancel-sync":
        # Cancels its task and returns before any await could deliver it: the cancellation
        # must not reach the next request.
        asyncio.current_task().cancel()
        await _answer(send, "cancelled later")
    elif path == "/ensure-future":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await asyncio.ensure_future(send({"type": "http.response.body", "body": b"via task"}))
    elif path == "/task-id":
        # Answers once `n` requests are here together, each with the id of its task.
        global _together
        task = asyncio.current_task()
        _together += 1
        n = int(scope["query_string"].decode().partition("=")[2] or "1")
        for _ in range(500):
            if _together >= n:
                break
            await asyncio.sleep(0.01)
        await _answer(send, str(id(task)))
    elif path == "/raise-sync":
        raise RuntimeError("boom before any await")
    elif path == "/raise-later":
        await asyncio.sleep(0.01)
        raise RuntimeError("boom after an await")
    elif path == "/no-answer":
        return  # neither started nor finished: the server answers 500
    elif path == "/unfinished":
        # Starts a streamed body, suspends, and returns without the final part.
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await asyncio.sleep(0.01)
        await send({"type": "http.response.body", "body": b"part", "more_body": True})
    else:
        await _answer(send, "ok")


class AwaitableApp:
    """An ASGI 3 app that is a class: calling it gives an awaitable instance, no coroutine."""

    def __init__(self, scope, receive, send):
        self.args = (scope, receive, send)

    def __await__(self):
        return app(*self.args).__await__()
