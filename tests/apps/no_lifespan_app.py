"""An app without lifespan support: it raises on any scope but HTTP, as Django's does."""


async def app(scope, receive, send):
    if scope["type"] != "http":
        raise ValueError(f"no-lifespan-app cannot handle {scope['type']}")
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"served"})
