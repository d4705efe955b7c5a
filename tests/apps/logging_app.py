"""An app that configures logging itself at import: rotor must leave that configuration alone."""
import logging
import sys

logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="OWNFMT %(name)s %(message)s")


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    logging.getLogger("uvicorn.error").info("info via uvicorn.error")
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"logged"})
