# The Python half of rotor's ASGI bridge: the app's task, and the waiting its `receive` and
# `send` (methods of the C++ Exchange, workers/asgi/exchange.cpp) cannot do without. Compiled
# into the rotor binary (see CMakeLists.txt) and run as the module `_rotor_bridge`; the C++ half
# is the module `_rotor` (workers/asgi/rotor_module.cpp).
#
# Only what has to be Python lives here: awaiting (asyncio futures) and the app's task.
# Parsing, header validation, framing and writing stay in C++.
import asyncio
import atexit
import collections
import inspect
import logging
import sys
import threading
import time
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
            _rotor.want_body(ex.rid)  # sends 100 Continue if the client waits for one
        await _wait(ex.loop, ex.receivers)
        message = ex._take()
        if message is not None:
            return message


async def _wait(loop, waiters):
    """Until the engine releases `waiters` (the exchange's receivers or senders): body arrived,
    the socket drained, or it is over. Each waiting task has its own future in the list."""
    waiter = loop.create_future()
    waiters.append(waiter)
    try:
        await waiter
    finally:
        if waiter in waiters:  # cancelled: the engine did not take it out
            waiters.remove(waiter)


# -- eager start ---------------------------------------------------------------------------------
# A request without a body is started at once by the engine: its coroutine is stepped
# synchronously inside a parked host task (so that asyncio.current_task(), which anyio and
# sniffio need, is the task that will carry on), and in a fresh copy of the context. Most
# handlers finish right there: no task, handle or loop iteration of their own. One that
# suspends is handed to the host, which goes on running it as any task would.
_MAX_IDLE_HOSTS = 64
_NOTHING = object()
_CANCEL = object()


class _Resume:
    """Awaitable that continues a coroutine whose eager start suspended on `first`, in the
    request's context `ctx`."""

    __slots__ = ("coro", "first", "ctx")

    def __init__(self, coro, first, ctx):
        self.coro, self.first, self.ctx = coro, first, ctx

    def __await__(self):
        return self

    def __next__(self):
        return self.send(None)

    def send(self, value):
        first = self.first
        if first is not _NOTHING:
            self.first = _NOTHING
            if first is _CANCEL:
                return self.ctx.run(self.coro.throw, asyncio.CancelledError())
            return first  # what the coroutine awaits: the task waits on it now
        return self.ctx.run(self.coro.send, value)

    def throw(self, *exc):
        self.first = _NOTHING
        return self.ctx.run(self.coro.throw, *exc)

    def close(self):
        self.coro.close()


class _Host:
    """A task parked in `pool` that eager starts run in; it carries on a request that suspends."""

    __slots__ = ("loop", "pool", "task", "job", "wake")

    def __init__(self, loop, pool):
        self.loop, self.pool = loop, pool
        self.job = self.wake = None
        self.task = loop.create_task(self._main(), name="rotor-host")

    def take(self, coro, yielded, ctx, ex):
        """The engine's eager start of `coro` suspended on `yielded`: carry it on. `ex` is the
        request's exchange when `coro` is the app's own coroutine (not run()): the host then
        answers for it as run() would."""
        self.job = (coro, yielded, ctx, ex)
        if not self.wake.done():
            self.wake.set_result(None)

    # Parking again after an eager start that finished is done by the engine: unless a cancel()
    # woke the host meanwhile, it goes back into `pool`.

    async def _main(self):
        task = self.task
        while len(self.pool) < _MAX_IDLE_HOSTS:
            self.wake = self.loop.create_future()
            self.pool.append(self)
            try:
                await self.wake
                first = self.job[1]
            except asyncio.CancelledError:
                # A cancel() while parked: it is for the request started in this host if
                # there is one (a running task gets it at its next suspension), else stale,
                # or the worker's exit (end_tasks): then the host ends.
                if self.job is None:
                    if self in self.pool:
                        self.pool.remove(self)
                    if _exiting:
                        raise
                    task.uncancel()
                    continue
                first = _CANCEL
            coro, _, ctx, ex = self.job
            self.job = None
            resume = _Resume(coro, first, ctx)
            await (resume if ex is None else _carry(ex, resume))
            while task.cancelling():  # what the request swallowed (its timeout) is not ours
                task.uncancel()


def _expire(ex, task):
    ex.timed_out = True
    task.cancel()


def _client_left(exc):
    """Whether `exc` is only our ClientDisconnected (also grouped, as anyio task groups do)."""
    if isinstance(exc, ClientDisconnected):
        return True
    return isinstance(exc, BaseExceptionGroup) and exc.split(ClientDisconnected)[1] is None


def _passes(exc):
    """What run() re-raises once the request is answered: a cancel (the task must end
    cancelled) and GeneratorExit (the coroutine is being closed). SystemExit and
    KeyboardInterrupt from a handler fail that request only, as in uvicorn: were they to
    reach the loop, the worker would die with every other request it holds."""
    return isinstance(exc, (asyncio.CancelledError, GeneratorExit))


def failed(ex, exc, timeout):
    """The app raised `exc` (CancelledError too: the request timeout): 504 or 500, logged."""
    if isinstance(exc, GeneratorExit):
        return  # closed unfinished (the worker is going away): no failure of the app
    if ex.timed_out:
        _rotor.app_failed(ex.rid, ex.started, f"request timed out after {timeout}s", "", 504)
    elif isinstance(exc, asyncio.CancelledError):
        _rotor.app_failed(ex.rid, ex.started, "cancelled", "", 500)
    elif _client_left(exc):
        # Our send or receive raised it because the client went away: the client's doing, not
        # an app error (as for WebSockets).
        _rotor.client_left(ex.rid)
    else:
        _rotor.app_failed(ex.rid, ex.started, repr(exc), "".join(traceback.format_exception(exc)),
                          500)


def returned(ex):
    """The app returned: a response it did not finish is finished (or 500 if never started)."""
    if not ex.started:
        _rotor.app_failed(ex.rid, False, "the app returned without a response", "", 500)
    elif not ex.finished:
        _rotor.send(ex.rid, ex.status, ex.headers, b"", False)


async def run(app, scope, ex, timeout):
    """The app's task for one request; `timeout` seconds (0: none) before it is cancelled."""
    timer = ex.loop.call_later(timeout, _expire, ex, asyncio.current_task()) if timeout else None
    try:
        await app(scope, ex.receive, ex.send)
    except BaseException as exc:
        failed(ex, exc, timeout)
        if _passes(exc) and not ex.timed_out:
            raise
    else:
        returned(ex)
    finally:
        if timer is not None:
            timer.cancel()
        _rotor.call_ended()  # the drain waits for this (work after the response included)


async def _carry(ex, awaitable):
    """run() without the timeout, for an app coroutine the engine started itself (the common
    case answers from C without this frame) or an app's awaitable that is no coroutine."""
    try:
        await awaitable
    except BaseException as exc:
        failed(ex, exc, 0)
        if _passes(exc):
            raise
    else:
        returned(ex)
    finally:
        _rotor.call_ended()


# -- WebSocket -----------------------------------------------------------------------------------
# The engine (workers/http/connection.cpp) does the handshake, the framing and the closing
# handshake; a session's messages and its end are pushed into a WebSocket object, whose receive
# and send are the app's.
_CONNECTING, _OPEN, _CLOSING, _GONE = "connecting", "open", "closing", "gone"


def _release(waiters):
    for waiter in waiters:
        if not waiter.done():
            waiter.set_result(None)


class WebSocket:
    __slots__ = ("loop", "rid", "inbox", "receivers", "senders", "state", "last")

    def __init__(self, loop, rid):
        self.loop, self.rid = loop, rid
        # (message, bytes the engine counted) in arrival order; the first is the handshake.
        self.inbox = collections.deque([({"type": "websocket.connect"}, 0)])
        # Futures of the tasks waiting in receive (for a message) and in send (for the client
        # to read): an app may have several, a broadcaster and a heartbeat say.
        self.receivers, self.senders = [], []
        self.state = _CONNECTING
        self.last = None  # the disconnect, once received: every later receive gets it again

    # The engine's calls.
    def push(self, text, data, nbytes):
        key = "text" if text else "bytes"
        self.inbox.append(({"type": "websocket.receive", key: data}, nbytes))
        self._wake_receiver()

    def gone(self, code, reason):
        """The session is over: the client's close (or the connection dropped, 1006)."""
        self.state = _GONE
        self.inbox.append(({"type": "websocket.disconnect", "code": code, "reason": reason}, 0))
        self._wake_receiver()
        self.wake()

    def wake(self):
        """The client read what was sent (or left): paused sends go on."""
        _release(self.senders)

    def _wake_receiver(self):
        _release(self.receivers)

    async def _wait(self, waiters):
        waiter = self.loop.create_future()
        waiters.append(waiter)
        try:
            await waiter
        finally:
            if waiter in waiters:
                waiters.remove(waiter)

    # The app's.
    async def receive(self):
        while not self.inbox:
            if self.last is not None:
                return self.last
            await self._wait(self.receivers)
        message, nbytes = self.inbox.popleft()
        if nbytes:
            _rotor.ws_took(self.rid, nbytes)
        elif message["type"] == "websocket.disconnect":
            self.last = message
        return message

    async def send(self, message):
        kind = message["type"]
        if self.state == _CONNECTING:
            if kind == "websocket.accept":
                if not _rotor.ws_accept(self.rid, message.get("subprotocol"),
                                        message.get("headers")):
                    raise ClientDisconnected("the client left before the handshake")
                # Frames that came with the handshake may have ended the session already.
                if self.state == _CONNECTING:
                    self.state = _OPEN
            elif kind == "websocket.close":
                # Refused before the handshake: the client gets 403 (the ASGI spec).
                _rotor.ws_deny(self.rid, 403)
                self.gone(message.get("code") or 1000, message.get("reason") or "")
            else:
                raise RuntimeError(f"expected websocket.accept or websocket.close, got {kind!r}")
        elif self.state == _OPEN:
            if kind == "websocket.send":
                data, text = message.get("bytes"), message.get("text")
                if data is not None:
                    sent = _rotor.ws_send(self.rid, False, data)
                elif text is not None:
                    sent = _rotor.ws_send(self.rid, True, text.encode())
                else:
                    raise ValueError("websocket.send needs bytes or text")
                if sent is _rotor.PAUSED:
                    await self._wait(self.senders)
                elif not sent:
                    raise ClientDisconnected("the client closed the WebSocket")
            elif kind == "websocket.close":
                _rotor.ws_close(self.rid, message.get("code") or 1000, message.get("reason") or "")
                self.state = _CLOSING
            else:
                raise RuntimeError(f"unexpected {kind!r} on an open WebSocket")
        else:
            raise ClientDisconnected("the WebSocket is closed")


async def run_websocket(app, scope, ws):
    """The app's task for one WebSocket session."""
    try:
        await app(scope, ws.receive, ws.send)
    except BaseException as exc:
        # ClientDisconnected comes from our send: the session ended (the client left, or the
        # worker closed it to drain), which is no failure of the app.
        if not _client_left(exc) and not isinstance(exc, GeneratorExit):
            _rotor.app_error(repr(exc), "".join(traceback.format_exception(exc)))
        if ws.state == _CONNECTING:
            _rotor.ws_deny(ws.rid, 500)
        elif ws.state == _OPEN:
            _rotor.ws_close(ws.rid, 1011, "")
        if _passes(exc):
            raise
    else:
        if ws.state == _CONNECTING:
            _rotor.app_error("the app returned without accepting or closing the WebSocket", "")
            _rotor.ws_deny(ws.rid, 500)
        elif ws.state == _OPEN:
            _rotor.ws_close(ws.rid, 1000, "")
    finally:
        _rotor.call_ended()


# -- Python logging ------------------------------------------------------------------------------
class _RotorHandler(logging.Handler):
    """Python log records into rotor's error log: one key=value line each, with rotor's
    timestamp, level, role and pid (and the traceback after it, as for app errors). Only what
    no handler of the app took on the way up (Django's LOGGING puts one on the "django"
    logger and lets records propagate): those would be logged twice."""

    def __init__(self, owner):
        super().__init__()
        self.owner = owner  # the logger this handler is on

    def _handled_below(self, record):
        logger = logging.Logger.manager.loggerDict.get(record.name)  # none made here
        while isinstance(logger, logging.Logger) and logger is not self.owner:
            for handler in logger.handlers:
                # A library's NullHandler (the logging HOWTO's "no output unless configured")
                # writes nothing: its records are still ours to log.
                if isinstance(handler, logging.NullHandler):
                    continue
                if record.levelno >= handler.level and handler.filter(record):
                    return True
            if not logger.propagate:
                break
            logger = logger.parent
        return False

    def emit(self, record):
        try:
            if self._handled_below(record):
                return
            tb = ""
            if record.exc_info:
                tb = logging.Formatter().formatException(record.exc_info) + "\n"
            elif record.stack_info:
                tb = record.stack_info + "\n"
            _rotor.log(record.levelno, record.name, record.getMessage(), tb)
        except Exception:
            self.handleError(record)


def configure_logging(level, root):
    """What uvicorn users expect of logging, when the app has not set it up itself (no handler
    on the loggers concerned): `logging.getLogger("uvicorn.error").info(...)` reaches the error
    log at --log-level `level`. With `root`, the root logger too, as logging.basicConfig would
    (done after the lifespan startup, so that an app's own basicConfig there still counts)."""
    top = logging.getLogger()
    if top.handlers:
        return  # the app configured logging: its choice stands
    if root:
        top.addHandler(_RotorHandler(top))
        top.setLevel(level)
        return
    server, error = logging.getLogger("uvicorn"), logging.getLogger("uvicorn.error")
    if server.handlers or error.handlers:
        return
    # As uvicorn's own LOGGING_CONFIG: "uvicorn" writes, "uvicorn.error" propagates to it.
    server.addHandler(_RotorHandler(server))
    server.setLevel(level)
    server.propagate = False
    error.setLevel(level)


# -- Process exit --------------------------------------------------------------------------------
# A worker ends with _exit() (Py_FinalizeEx, after a fork and with the app's threads running,
# is neither safe nor bounded). Before that it does what Python's own exit does, in its order:
# what threading._shutdown() does (threading's exit hooks, by which concurrent.futures
# executors finish the jobs given to them, then a join of every non-daemon thread), atexit
# handlers, a flush of stdio. Here with a bound: threading._shutdown() itself waits forever.
def _waiting_threads():
    me = threading.current_thread()
    return [t for t in threading.enumerate() if t is not me and not t.daemon and t.is_alive()]


def _threading_exit_hooks():
    threading._SHUTTING_DOWN = True  # as threading._shutdown(): no hook registered from now on
    for hook in reversed(threading._threading_atexits):
        hook()


def join_threads(timeout):
    """threading._shutdown(), for `timeout` seconds at most. Returns (threads, names,
    finished): how many non-daemon threads there were to wait for, the names of those still
    running, and whether the wait was complete."""
    deadline = time.monotonic() + max(timeout, 0.0)
    waited = _waiting_threads()
    hooks = None
    if threading._threading_atexits:
        # An executor's hook joins its threads without a bound: in a daemon thread, so that
        # the wait can end.
        hooks = threading.Thread(target=_threading_exit_hooks, name="rotor-exit", daemon=True)
        hooks.start()
        hooks.join(max(deadline - time.monotonic(), 0.0))
    while True:
        left = _waiting_threads()  # threads started meanwhile too, as Python waits for them
        if not left or time.monotonic() >= deadline:
            break
        for t in left:
            t.join(max(deadline - time.monotonic(), 0.0))
    alive = [t.name for t in _waiting_threads()]
    return len(waited), alive, not alive and not (hooks and hooks.is_alive())


_exiting = False  # set by end_tasks: a parked host that is cancelled ends


async def end_tasks(timeout):
    """What asyncio.run does as it ends (uvicorn's way out), for `timeout` seconds at most: the
    app's tasks still pending (a batch flusher, say) are cancelled and awaited, so that their
    cleanup runs, and async generators are closed. The parked hosts end too: what waits for a
    long-lived task to end (anyio's thread pool stops with its root task, one of the hosts
    here, as with asyncio.run's main task in uvicorn) ends with them."""
    global _exiting
    _exiting = True
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max(timeout, 0.0)
    me = asyncio.current_task()
    tasks = [t for t in asyncio.all_tasks(loop) if t is not me]
    for t in tasks:
        t.cancel()
    if tasks:
        await asyncio.wait(tasks, timeout=max(deadline - loop.time(), 0.0))
    for t in tasks:  # as asyncio.run reports them
        if t.done() and not t.cancelled() and t.exception() is not None:
            loop.call_exception_handler({"message": "unhandled exception during worker exit",
                                         "exception": t.exception(), "task": t})
    closing = loop.create_task(loop.shutdown_asyncgens())
    await asyncio.wait([closing], timeout=max(deadline - loop.time(), 0.0))
    if not closing.done():
        closing.cancel()  # a generator whose cleanup never ends: not waited for further
    return sum(1 for t in tasks if not t.done())


def _flush_stdio():
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except Exception:
            pass


def run_exit_handlers():
    """atexit's handlers (the last registered first; a failing one is reported and the others
    still run), with stdio flushed. Returns how many there were."""
    _flush_stdio()  # what was printed so far is not lost with a handler that hangs
    count = atexit._ncallbacks()
    atexit._run_exitfuncs()
    _flush_stdio()
    return count


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


def _awaiting(coro):
    """Where a suspended coroutine waits: its frame and those of what it awaits, in turn (a
    task's own stack shows only the outermost one)."""
    frames = []
    while coro is not None:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        if frame is None:
            break
        frames.append((frame, frame.f_lineno))
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
    return traceback.StackSummary.extract(frames)


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
        self.unsupported = ("", "")  # what the app raised instead (summary, traceback)
        self.timed_out = False
        self.task = None

    async def startup(self, timeout=None):
        """None once the app is up (or does not speak lifespan), else why it failed. After
        `timeout` seconds `timed_out` is set, with where the startup waits printed."""
        loop = asyncio.get_running_loop()
        self.startup_done = loop.create_future()
        self.shutdown_done = loop.create_future()
        scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"},
                 "state": self.state}
        self.task = loop.create_task(self._main(scope))
        await self.incoming.put({"type": "lifespan.startup"})
        try:
            await asyncio.wait_for(asyncio.shield(self.startup_done), timeout)
        except asyncio.TimeoutError:
            self.timed_out = True
            print("The lifespan startup waits here (most recent call last):\n"
                  + "".join(_awaiting(self.task.get_coro()).format()), end="", file=sys.stderr)
            return "the lifespan startup did not finish"
        return self.failed

    async def _main(self, scope):
        try:
            await self.app(scope, self.incoming.get, self._send)
        except BaseException as exc:
            if not self.startup_done.done():
                if self.mode == "auto":
                    # An app without lifespan support raises on the unknown scope type.
                    self.supported = False
                    self.unsupported = (repr(exc), "".join(traceback.format_exception(exc)))
                    self.startup_done.set_result(None)
                else:
                    self.failed = f"lifespan raised {exc!r}"
                    traceback.print_exc()
                    self.startup_done.set_result(None)
            elif not isinstance(exc, asyncio.CancelledError):
                traceback.print_exc()  # a cancel now is the worker's exit (end_tasks): no error
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
