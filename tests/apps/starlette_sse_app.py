"""A Starlette StreamingResponse (server-sent events): a burst the client reads late (so the
app's send pauses), then the stream idles until the client leaves. Starlette's disconnect
listener must then cancel the generator. BackgroundTasks too: work after the response."""
import asyncio

from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.responses import PlainTextResponse, StreamingResponse
from starlette.routing import Route


def mark(text):
    print(f"MARK {text}", flush=True)


async def events(burst):
    try:
        for _ in range(burst):
            yield b"data: " + b"x" * 65536 + b"\n\n"
        mark("burst sent")
        while True:  # idle: no event comes
            await asyncio.sleep(3600)
    except BaseException as exc:
        mark(f"generator ended {type(exc).__name__}")
        raise


async def sse(request):
    return StreamingResponse(events(int(request.query_params.get("burst", "32"))),
                             media_type="text/event-stream")


async def job(tag, seconds):
    mark(f"background started {tag}")
    await asyncio.sleep(seconds)
    mark(f"background finished {tag}")


async def background(request):
    tag, seconds = request.query_params["tag"], float(request.query_params.get("seconds", "2"))
    return PlainTextResponse("accepted", background=BackgroundTask(job, tag, seconds))


app = Starlette(routes=[Route("/sse", sse), Route("/background", background)])
