"""A Starlette app: routing, JSON, path params, streaming, background tasks, lifespan state."""
import contextlib
import os

from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, StreamingResponse
from starlette.routing import Route

done = []


@contextlib.asynccontextmanager
async def lifespan(app):
    yield {"greeting": "hi from lifespan"}


async def hello(request: Request):
    return PlainTextResponse("Hello, world!")


async def item(request: Request):
    return JSONResponse({"id": request.path_params["item_id"], "q": request.query_params.get("q"),
                         "greeting": request.state.greeting, "pid": os.getpid()})


async def echo(request: Request):
    body = await request.body()
    return JSONResponse({"length": len(body), "json": await request.json() if body else None})


async def stream(request: Request):
    async def gen():
        for i in range(3):
            yield f"chunk {i}\n"
    return StreamingResponse(gen(), media_type="text/plain")


async def background(request: Request):
    return PlainTextResponse("ok", background=BackgroundTask(done.append, 1))


async def count(request: Request):
    return JSONResponse({"background_done": len(done)})


async def whoami(request: Request):
    # What an app behind a reverse proxy sees of its client, and the URLs it builds.
    return JSONResponse({"client": list(request.client) if request.client else None,
                         "scheme": request.url.scheme,
                         "url_for": str(request.url_for("item", item_id="7"))})


app = Starlette(routes=[Route("/", hello), Route("/items/{item_id}", item, name="item"),
                        Route("/echo", echo, methods=["POST"]), Route("/stream", stream),
                        Route("/background", background), Route("/count", count),
                        Route("/whoami", whoami)],
                lifespan=lifespan)
