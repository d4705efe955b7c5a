"""A raw ASGI 3 app exercising the protocol directly (no framework)."""
import asyncio
import hashlib
import json
import os
import signal
import struct

state_seen = {}
IMPORT_ENV = dict(os.environ)  # for /env: what the import saw (in the template, when preloaded)

# /big's progress per request id (?id=...), read on another connection through /big-progress:
# how many body chunks the app's send() has returned from, and the digest of what it sent.
big_progress = {}


def big_chunk(i, size):
    """Chunk `i` of /big: its index repeated, so a lost, doubled or reordered chunk shows."""
    return struct.pack(">I", i) * (size // 4)


def query(scope):
    return dict(p.split("=", 1) for p in scope["query_string"].decode().split("&") if "=" in p)


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                scope["state"]["started_by"] = os.getpid()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                print(f"rotor-test: lifespan shutdown in {os.getpid()}", flush=True)
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] == "websocket":  # an echo, for scripts/bench.py websocket
        await receive()
        await send({"type": "websocket.accept"})
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            await send({"type": "websocket.send", "bytes": message.get("bytes"),
                        "text": message.get("text")})
    assert scope["type"] == "http"
    path = scope["path"]
    if (b"x-dump-scope", b"1") in scope["headers"]:
        # The scope of any target (absolute-form ones map to paths no route has).
        data = json.dumps({"path": scope["path"], "raw_path": scope["raw_path"].decode(),
                           "query_string": scope["query_string"].decode()}).encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": data})
        return
    if path == "/echo":
        body = b""
        chunks = 0
        while True:
            message = await receive()
            body += message.get("body", b"")
            chunks += 1
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/octet-stream"),
                                (b"x-chunks", str(chunks).encode())]})
        await send({"type": "http.response.body", "body": body})
    elif path.startswith("/scope"):
        out = {k: v for k, v in scope.items() if k not in ("state",)}
        out["headers"] = [[k.decode(), v.decode()] for k, v in scope["headers"]]
        out["raw_path"] = scope["raw_path"].decode()
        out["query_string"] = scope["query_string"].decode()
        out["state"] = dict(scope.get("state", {}))
        out["pid"] = os.getpid()
        data = json.dumps(out).encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": data})
    elif path == "/gc":
        import gc
        data = json.dumps({"threshold": gc.get_threshold(), "frozen": gc.get_freeze_count(),
                           "full_collections": gc.get_stats()[2]["collections"]}).encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": data})
    elif path == "/loop":
        kind = type(asyncio.get_running_loop()).__module__.split(".")[0].encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": kind})
    elif path == "/env":
        # The variables named in the query string: as the app saw them at import, and now.
        names = [p for p in scope["query_string"].decode().split("&") if p]
        data = json.dumps({n: [IMPORT_ENV.get(n), os.environ.get(n)] for n in names}).encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": data})
    elif path == "/sys":
        import sys
        data = json.dumps({"executable": sys.executable, "prefix": sys.prefix,
                           "base_prefix": sys.base_prefix, "path0": sys.path[:3],
                           "version": "%d.%d.%d" % sys.version_info[:3]}).encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": data})
    elif path == "/slow-reader":
        total = 0
        while True:
            message = await receive()
            total += len(message.get("body", b""))
            await asyncio.sleep(float(scope["query_string"].decode() or "0.002"))
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": str(total).encode()})
    elif path == "/stream":
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain")]})
        for i in range(5):
            await send({"type": "http.response.body", "body": f"part {i}\n".encode(),
                        "more_body": True})
            await asyncio.sleep(0.01)
        await send({"type": "http.response.body", "body": b"end\n"})
    elif path == "/tokens":
        # Server-sent events as a model streams tokens: `n` small events sent back to back,
        # chunked (no length), as StreamingResponse over a generator does.
        # `burst=k`: the app yields to the loop (asyncio.sleep(0)) after every k events, as one
        # relaying a model's tokens as they arrive in packets.
        q = query(scope)
        n, burst = int(q.get("n", "64")), int(q.get("burst", "0"))
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/event-stream")]})
        for i in range(n):
            await send({"type": "http.response.body", "body": b"data: token %d\n\n" % i,
                        "more_body": True})
            if burst and i % burst == burst - 1:
                await asyncio.sleep(0)
        await send({"type": "http.response.body", "body": b""})
    elif path == "/raise-before":
        raise RuntimeError("boom before start")
    elif path == "/raise-after":
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", b"100")]})
        await send({"type": "http.response.body", "body": b"partial", "more_body": True})
        raise RuntimeError("boom after start")
    elif path == "/no-response":
        return
    elif path == "/bad-header":
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"x-evil", b"a\r\nInjected: yes")]})
        await send({"type": "http.response.body", "body": b"never"})
    elif path == "/disconnect":
        # Wait for the client to go away; report it in the error log.
        message = await receive()
        message = await receive()
        print(f"rotor-test: saw {message['type']}", flush=True)
        try:
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"too late"})
        except OSError as exc:
            print(f"rotor-test: send raised {type(exc).__name__}", flush=True)
    elif path == "/sleep":
        await asyncio.sleep(float(dict(
            p.split("=") for p in scope["query_string"].decode().split("&") if p).get("s", "1")))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"slept"})
    elif path == "/big":
        # A large response in `n` chunks of `size` bytes (Content-Length), for write
        # backpressure: a client that does not read must suspend this loop in send().
        q = query(scope)
        n, size, rid = int(q.get("n", "1024")), int(q.get("size", "65536")), q.get("id", "0")
        progress = big_progress[rid] = {"sent": 0, "total": n, "done": False, "sha256": None}
        digest = hashlib.sha256()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/octet-stream"),
                                (b"content-length", str(n * size).encode())]})
        for i in range(n):
            chunk = big_chunk(i, size)
            digest.update(chunk)
            await send({"type": "http.response.body", "body": chunk, "more_body": i + 1 < n})
            progress["sent"] = i + 1
        progress["done"] = True
        progress["sha256"] = digest.hexdigest()
    elif path == "/big-progress":
        data = json.dumps(big_progress.get(query(scope).get("id", "0"))).encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": data})
    elif path == "/hold":
        # A request in flight that never answers: it waits until the client leaves. The
        # line in the error log says the app holds it (whichever worker that is).
        print(f"rotor-test: holding {query(scope).get('id', '0')} in {os.getpid()}", flush=True)
        while (await receive())["type"] != "http.disconnect":
            pass
    elif path == "/signals":
        # What Python believes handles the signals rotor owns (rotor installs C handlers
        # through libuv; Python must not have installed its own, e.g. default_int_handler).
        data = json.dumps({name: repr(signal.getsignal(getattr(signal, name)))
                           for name in ("SIGINT", "SIGTERM", "SIGQUIT", "SIGPIPE")}).encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": data})
    elif path == "/duplex":
        # Full duplex: the response starts before the body is read, then echoes it.
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"echo:", "more_body": True})
        while True:
            message = await receive()
            if message["type"] != "http.request":
                print(f"rotor-test: duplex saw {message['type']}", flush=True)
                return
            await send({"type": "http.response.body", "body": message.get("body", b""),
                        "more_body": True})
            if not message.get("more_body"):
                break
        await send({"type": "http.response.body", "body": b""})
    elif path == "/cl":
        # The app's own Content-Length (?cl=a,b: one header per value) and body parts
        # (?parts=x,y: sent in turn, the last one ends the response), with ?status=N.
        q = query(scope)
        headers = [(b"content-length", v.encode()) for v in q.get("cl", "").split(",") if v]
        parts = q.get("parts", "").split(",")
        status = int(q.get("status", "200"))
        try:
            await send({"type": "http.response.start", "status": status, "headers": headers})
            for i, part in enumerate(parts):
                await send({"type": "http.response.body", "body": part.encode(),
                            "more_body": i + 1 < len(parts)})
        except RuntimeError as exc:
            print(f"rotor-test: cl send raised RuntimeError: {exc}", flush=True)
    elif path == "/disconnect-send":
        # As /disconnect, saying when it waits and whether its send then worked (?id=tag).
        tag = query(scope).get("id", "0")
        print(f"rotor-test: {tag} waits", flush=True)
        while (await receive())["type"] != "http.disconnect":
            pass
        print(f"rotor-test: {tag} saw http.disconnect", flush=True)
        try:
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"after the disconnect"})
            print(f"rotor-test: {tag} send worked", flush=True)
        except OSError as exc:
            print(f"rotor-test: {tag} send raised {type(exc).__name__}", flush=True)
    elif path == "/conn-close":
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"connection", b"close"), (b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})
    elif path == "/block":
        import time
        time.sleep(60)  # blocks the event loop: the heartbeat stops
    else:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"Hello, world!"})
