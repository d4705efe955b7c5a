"""A lifespan shutdown that takes SLOW_SHUTDOWN_S seconds (a flush of buffered telemetry, say),
then writes a line to the file named by EXIT_APP_FILE, as does an atexit handler after it.
With SHUTDOWN_THEN_RECEIVE, the lifespan does not return after its shutdown: it receives again."""
import asyncio
import atexit
import os

MARKS = os.environ.get("EXIT_APP_FILE", os.devnull)


def mark(text):
    with open(MARKS, "a") as f:
        f.write(f"{text}\n")


atexit.register(lambda: mark(f"atexit {os.getpid()}"))


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await asyncio.sleep(float(os.environ.get("SLOW_SHUTDOWN_S", "3")))
                mark(f"shutdown {os.getpid()}")
                await send({"type": "lifespan.shutdown.complete"})
                if not os.environ.get("SHUTDOWN_THEN_RECEIVE"):
                    return
                try:
                    await receive()  # an app that does not return after its shutdown
                except asyncio.CancelledError:
                    mark(f"lifespan cancelled {os.getpid()}")
                    raise
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": f"up {os.getpid()}".encode()})
