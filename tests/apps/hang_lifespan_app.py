"""A lifespan startup that never finishes while the file named by HANG_LIFESPAN_FILE exists, as
with a database that never answers (HANG_LIFESPAN_MODE=sync: it blocks the event loop)."""
import asyncio
import os
import time

FLAG = os.environ.get("HANG_LIFESPAN_FILE", "")


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                if FLAG and os.path.exists(FLAG):
                    if os.environ.get("HANG_LIFESPAN_MODE") == "sync":
                        time.sleep(3600)
                    await asyncio.Event().wait()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": f"up {os.getpid()}".encode()})
