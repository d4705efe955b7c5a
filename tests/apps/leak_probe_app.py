"""For the leak report's tests (tests/integration/test_leak_report.py): tells whether this
worker has imported tracemalloc, and makes garbage that stays in gc.garbage."""
import gc
import json
import os
import sys


class Node:
    """Half of a reference cycle: only the cyclic GC can free it."""

    def __init__(self):
        self.other = None


def make_cycle():
    a, b = Node(), Node()
    a.other, b.other = b, a


async def app(scope, receive, send):
    if scope["type"] != "http":
        return  # no lifespan
    if scope["path"] == "/garbage":
        # Since Python 3.4 the collector frees cycles with finalizers too: only DEBUG_SAVEALL
        # still fills gc.garbage, with everything it finds unreachable.
        gc.set_debug(gc.DEBUG_SAVEALL)
        make_cycle()
        body = {"pid": os.getpid()}
    else:
        body = {"pid": os.getpid(), "tracemalloc": "tracemalloc" in sys.modules}
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": json.dumps(body).encode()})
