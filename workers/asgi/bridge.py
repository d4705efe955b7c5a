# The Python half of rotor's ASGI bridge: the app's task, and the waiting its `receive` and
# `send` (methods of the C++ Exchange, workers/asgi/exchange.cpp) cannot do without. Compiled
# into the rotor binary (see CMakeLists.txt) and run as the module `_rotor_bridge`; the C++ half
# is the module `_rotor` (workers/asgi/asgi_worker.cpp).
#
# Only what has to be Python lives here: awaiting (asyncio futures) and the app's task.
# Parsing, header validation, framing and writing stay in C++.
import asyncio
import inspect
import sys
import traceback

import _rotor


class ClientDisconnected(OSError):
    """Raised by `send` once the client has gone (ASGI: an OSError subclass)."""


# The app's receive and send are methods of the engine's Exchange (workers/asgi/exchange.cpp):
# they complete at once when they can. What has to wait is here.
async def _receive_slow(ex):
    """receive() when no message is ready: wait for body bytes, or for the end of the response
    or the client."""
    while True:
        if ex.chunks is not None:
            _rotor.want_body(ex.cid)  # sends 100 Continue if the client waits for one
        await _wait(ex)
        message = ex._take()
        if message is not None:
            return message


async def _wait(ex):
    """Until the engine wakes the exchange: body arrived, the socket drained, or it is over."""
    ex.waiter = waiter = ex.loop.create_future()
    try:
        await waiter
    finally:
        ex.waiter = None


def _expire(ex, task):
    ex.timed_out = True
    task.cancel()


async def run(app, scope, ex, timeout):
    """The app's task for one request; `timeout` seconds (0: none) before it is cancelled."""
    timer = ex.loop.call_later(timeout, _expire, ex, asyncio.current_task()) if timeout else None
    try:
        await app(scope, ex.receive, ex.send)
    except BaseException as exc:  # CancelledError too: the request timeout
        if ex.timed_out:
            _rotor.app_failed(ex.cid, ex.started, f"request timed out after {timeout}s", "", 504)
        elif isinstance(exc, asyncio.CancelledError):
            _rotor.app_failed(ex.cid, ex.started, "cancelled", "", 500)
        else:
            _rotor.app_failed(ex.cid, ex.started, repr(exc), traceback.format_exc(), 500)
        if not isinstance(exc, Exception) and not ex.timed_out:
            raise
    else:
        if not ex.started:
            _rotor.app_failed(ex.cid, False, "the app returned without a response", "", 500)
        elif not ex.finished:
            _rotor.send(ex.cid, ex.status, ex.headers, b"", False)
    finally:
        if timer is not None:
            timer.cancel()


class ASGI2Adapter:
    """ASGI 2 apps are double callables: app(scope) returns the coroutine function."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        instance = self.app(scope)
        await instance(receive, send)


def is_asgi3(app):
    """ASGI 3 apps are coroutine functions, or objects whose __call__ is one."""
    if inspect.isclass(app):
        return hasattr(app, "__await__")
    if inspect.isfunction(app) or inspect.ismethod(app):
        return asyncio.iscoroutinefunction(app)
    return asyncio.iscoroutinefunction(getattr(app, "__call__", None))


def prepare(app):
    return app if is_asgi3(app) else ASGI2Adapter(app)


class Lifespan:
    """Runs the app's lifespan protocol: startup before serving, shutdown after the drain."""

    def __init__(self, app, mode, state):
        self.app = app
        self.mode = mode  # "auto", "on", "off"
        self.state = state
        self.incoming = asyncio.Queue()
        self.startup_done = None
        self.shutdown_done = None
        self.failed = None
        self.supported = True
        self.task = None

    async def startup(self):
        loop = asyncio.get_running_loop()
        self.startup_done = loop.create_future()
        self.shutdown_done = loop.create_future()
        scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"},
                 "state": self.state}
        self.task = loop.create_task(self._main(scope))
        await self.incoming.put({"type": "lifespan.startup"})
        await self.startup_done
        return self.failed

    async def _main(self, scope):
        try:
            await self.app(scope, self.incoming.get, self._send)
        except BaseException as exc:
            if not self.startup_done.done():
                if self.mode == "auto":
                    # An app without lifespan support raises on the unknown scope type.
                    self.supported = False
                    self.startup_done.set_result(None)
                else:
                    self.failed = f"lifespan raised {exc!r}"
                    traceback.print_exc()
                    self.startup_done.set_result(None)
            else:
                traceback.print_exc()
            if not self.shutdown_done.done():
                self.shutdown_done.set_result(None)
        else:
            for f in (self.startup_done, self.shutdown_done):
                if not f.done():
                    f.set_result(None)

    async def _send(self, message):
        kind = message["type"]
        if kind == "lifespan.startup.complete":
            self.startup_done.set_result(None)
        elif kind == "lifespan.startup.failed":
            self.failed = "lifespan.startup.failed: " + message.get("message", "")
            self.startup_done.set_result(None)
        elif kind in ("lifespan.shutdown.complete", "lifespan.shutdown.failed"):
            if kind.endswith("failed"):
                print("lifespan.shutdown.failed: " + message.get("message", ""), file=sys.stderr)
            self.shutdown_done.set_result(None)

    async def shutdown(self):
        if not self.supported or self.task is None or self.task.done():
            return
        await self.incoming.put({"type": "lifespan.shutdown"})
        await self.shutdown_done
