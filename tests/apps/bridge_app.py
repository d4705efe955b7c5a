"""Raw ASGI routes for the bridge's edge cases: contextvars, waiters, work after the response,
exits, clients that leave, logging, receive() after the answer. Each route reports what the app
saw as a `MARK ...` line on stdout (which the tests read in the server's log)."""
import asyncio
import contextvars
import logging
import sys
import time
import urllib.parse

user = contextvars.ContextVar("user", default=None)
log = logging.getLogger("uvicorn.error")


def mark(text):
    print(f"MARK {text}", flush=True)


async def answer(send, body, status=200):
    await send({"type": "http.response.start", "status": status, "headers": []})
    await send({"type": "http.response.body", "body": body})


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                log.info("bridge_app lifespan startup")
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    path = scope["path"]
    q = dict(urllib.parse.parse_qsl(scope["query_string"].decode()))
    if path == "/ctx/get":
        await answer(send, repr(user.get()).encode())
    elif path == "/ctx/set":
        # As an auth middleware would: set, then answer (no await before: an eager start).
        user.set(q.get("user", "alice"))
        await answer(send, b"set")
    elif path == "/ctx/stream":
        # Sets the var, then waits for its body (receive schedules a loop pass from this
        # request's context) and streams its answer in small steps.
        user.set(q.get("user", "alice"))
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for _ in range(10):
            await send({"type": "http.response.body", "body": b"x" * 1000, "more_body": True})
            await asyncio.sleep(0.002)
        await send({"type": "http.response.body", "body": b""})
    elif path == "/paused-and-listening":
        # A large answer the client reads late (send pauses) while another task of the same
        # request waits in receive() for the disconnect, as Starlette's listener does.
        while (await receive()).get("more_body"):  # the (empty) request body
            pass

        async def listen():
            message = await receive()
            mark(f"listener got {message['type']}")

        listener = asyncio.ensure_future(listen())
        await asyncio.sleep(0)
        n = int(q.get("n", "64"))
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", str(n * 65536).encode())]})
        for _ in range(n):
            await send({"type": "http.response.body", "body": b"z" * 65536, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        mark("sender finished")
        await asyncio.wait_for(listener, 10)
    elif path == "/after-response":
        # Work after the response inside the ASGI call, as Starlette's BackgroundTasks do.
        await answer(send, b"accepted")
        mark(f"background started {q['tag']}")
        await asyncio.sleep(float(q.get("seconds", "2")))
        mark(f"background finished {q['tag']}")
    elif path == "/exit":
        sys.exit(3)  # before any await: the eager start
    elif path == "/exit-late":
        await asyncio.sleep(0)
        sys.exit(3)
    elif path == "/interrupt-late":
        await asyncio.sleep(0)
        raise KeyboardInterrupt
    elif path == "/thread":
        # Leaves an executor thread alive, as a FastAPI sync endpoint does.
        await asyncio.get_running_loop().run_in_executor(None, time.sleep, 0.01)
        await answer(send, b"thread")
    elif path == "/until-gone":
        # Streams until the client leaves; our send then raises ClientDisconnected.
        await send({"type": "http.response.start", "status": 200, "headers": []})
        try:
            while True:
                await send({"type": "http.response.body", "body": b"tick\n", "more_body": True})
                await asyncio.sleep(0.01)
        except OSError as exc:
            mark(f"send raised {type(exc).__name__}")
            raise
    elif path == "/log":
        log.info("info via uvicorn.error")
        logging.getLogger("some.library").warning("warning via a library logger")
        log.debug("debug via uvicorn.error")
        await answer(send, b"logged")
    elif path == "/unread-then-receive":
        # Answers without reading the body, then asks for the next message.
        await answer(send, b"answered")
        message = await asyncio.wait_for(receive(), 10)
        mark(f"after the answer receive gave {message['type']} "
             f"body={len(message.get('body', b''))}")
    else:
        await answer(send, b"not found", 404)
