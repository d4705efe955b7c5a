"""What an app sees of a request: the ASGI scope from raw ASGI, Starlette and FastAPI apps,
absolute-form targets, proxy headers, and a unix socket listener."""
import json
import os
import signal
import socket
import stat
import tempfile

import httpx
import pytest

from conftest import serve, wait_for
from rawhttp import read_response, send_and_read_all, send_and_read_until_closed


def test_raw_app_hello_and_scope(rotor):
    r = serve(rotor, "raw_app:app")
    with httpx.Client(base_url=r.url()) as c:
        assert c.get("/").text == "Hello, world!"
        resp = c.get("/scope/caf%C3%A9%20x?a=1&b=%20", headers={"X-Two": "1"})
        scope = resp.json()
    assert scope["type"] == "http"
    assert scope["asgi"]["version"] == "3.0"
    assert scope["http_version"] == "1.1"
    assert scope["method"] == "GET"
    assert scope["scheme"] == "http"
    assert scope["path"] == "/scope/café x"
    assert scope["raw_path"] == "/scope/caf%C3%A9%20x"
    assert scope["query_string"] == "a=1&b=%20"
    assert ["x-two", "1"] in scope["headers"]
    assert scope["client"][0] == "127.0.0.1" and isinstance(scope["client"][1], int)
    assert scope["server"] == ["127.0.0.1", r.port]
    assert scope["root_path"] == ""
    # lifespan state reached the request (a copy per request)
    assert scope["state"]["started_by"] == scope["pid"]


def test_starlette_app(rotor):
    r = serve(rotor, "starlette_app:app")
    with httpx.Client(base_url=r.url()) as c:
        assert c.get("/").text == "Hello, world!"
        item = c.get("/items/42", params={"q": "x y"}).json()
        assert item["id"] == "42" and item["q"] == "x y"
        assert item["greeting"] == "hi from lifespan"
        payload = {"a": [1, 2]}
        assert c.post("/echo", json=payload).json() == {"length": len(json.dumps(payload)),
                                                          "json": payload}
        assert c.get("/stream").text == "chunk 0\nchunk 1\nchunk 2\n"
        assert c.get("/background").text == "ok"
        wait_for(lambda: c.get("/count").json()["background_done"] >= 1,
                 what="the background task")


def test_fastapi_app(rotor):
    r = serve(rotor, "fastapi_app:app")
    with httpx.Client(base_url=r.url()) as c:
        assert c.get("/").json() == {"message": "Hello, world!"}
        assert c.get("/items/5", params={"q": "z"}).json()["item_id"] == 5
        assert c.get("/items/notanint").status_code == 422
        resp = c.post("/items", json={"name": "pen", "price": 1.5})
        assert resp.json() == {"name": "pen", "price": 1.5, "double": 3.0}
        assert c.post("/items", json={"name": "pen"}).status_code == 422


def test_asgi2_and_factory(rotor):
    r = serve(rotor, "asgi2_app:app")
    assert httpx.get(r.url("/x")).text == "asgi2 /x"
    r2 = serve(rotor, "factory_app:create_app", "--factory")
    assert httpx.get(r2.url("/")).text == "from factory"


@pytest.mark.parametrize("target, path, query", [
    ("HTTP://other.example/a/b?q=2", "/a/b", "q=2"),
    ("https://other.example/a", "/a", ""),
    ("http://other.example?q=1", "/", "q=1"),
    ("http://other.example", "/", ""),
])
def test_absolute_form_targets_in_the_scope(rotor, target, path, query):
    r = serve(rotor, "raw_app:app")
    request = f"GET {target} HTTP/1.1\r\nHost: t\r\nX-Dump-Scope: 1\r\n\r\n".encode()
    with socket.create_connection(("127.0.0.1", r.port), timeout=10) as s:
        s.sendall(request)
        status, _, body = read_response(s)
    assert status == "HTTP/1.1 200 OK", body
    assert json.loads(body) == {"path": path, "raw_path": path, "query_string": query}


def test_proxy_headers_from_trusted_peers_set_client_and_scheme(rotor):
    # As uvicorn (and gunicorn + UvicornWorker): by default 127.0.0.1 is a trusted proxy.
    proxied = {"X-Forwarded-For": "6.6.6.6, 203.0.113.7", "X-Forwarded-Proto": "https"}
    r = serve(rotor, "starlette_app:app")
    with httpx.Client(base_url=r.url()) as c:
        me = c.get("/whoami", headers=proxied).json()
        assert me["client"] == ["203.0.113.7", 0], me  # the address the proxy appended
        assert me["scheme"] == "https" and me["url_for"].startswith("https://"), me
        plain = c.get("/whoami").json()
        assert plain["client"][0] == "127.0.0.1" and plain["client"][1] > 0, plain
        assert plain["scheme"] == "http", plain
        # A scheme other than http/https is ignored; the client still comes from the header.
        odd = c.get("/whoami", headers={"X-Forwarded-For": "198.51.100.9",
                                        "X-Forwarded-Proto": "gopher"}).json()
        assert odd["client"] == ["198.51.100.9", 0] and odd["scheme"] == "http", odd
        # Several X-Forwarded-For fields are one list, in order.
        raw, _ = send_and_read_until_closed(
            r.port, b"GET /whoami HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                    b"X-Forwarded-For: 198.51.100.1\r\n"
                    b"X-Forwarded-For: 198.51.100.2\r\n\r\n", timeout=10)
        assert b'"client":["198.51.100.2",0]' in raw, raw
    r.stop()

    # The peer (127.0.0.1) is not in the list: the headers are the client's own claims.
    r = serve(rotor, "starlette_app:app", "--forwarded-allow-ips", "10.0.0.0/8, 192.0.2.1")
    with httpx.Client(base_url=r.url()) as c:
        me = c.get("/whoami", headers=proxied).json()
        assert me["client"][0] == "127.0.0.1" and me["scheme"] == "http", me
    r.stop()

    # Chained proxies: every trusted hop is skipped, from the right.
    r = serve(rotor, "starlette_app:app", env={"FORWARDED_ALLOW_IPS": "127.0.0.1,10.0.0.0/8"})
    with httpx.Client(base_url=r.url()) as c:
        me = c.get("/whoami", headers={"X-Forwarded-For": "6.6.6.6, 198.51.100.2, 10.0.0.5"})
        assert me.json()["client"] == ["198.51.100.2", 0], me.text
    r.stop()

    r = serve(rotor, "starlette_app:app", "--no-proxy-headers")
    with httpx.Client(base_url=r.url()) as c:
        me = c.get("/whoami", headers=proxied).json()
        assert me["client"][0] == "127.0.0.1" and me["scheme"] == "http", me


def test_bad_forwarded_allow_ips_is_one_line_exit_2(rotor):
    for value in ("300.1.1.1", "10.0.0.0/33", "localhost"):
        r = serve(rotor, "raw_app:app", "--forwarded-allow-ips", value, wait=False)
        assert r.wait_exit() == 2
        lines = [l for l in r.log().splitlines() if l.strip()]
        assert len(lines) == 1, lines
        assert lines[0].startswith("rotor: error: --forwarded-allow-ips: expected '*' or IP"), lines
        assert f"'{value}'" in lines[0], lines


def test_unix_socket_bind_serves_the_app_with_spec_server_and_client(rotor, tmp_path):
    access = tmp_path / "access.log"
    # A short directory: sun_path holds 108 bytes, pytest's tmp_path can be longer.
    with tempfile.TemporaryDirectory(prefix="rotor-", dir="/tmp") as d:
        path = os.path.join(d, "r.sock")
        # The fixture adds -b 127.0.0.1:0 as well: one worker serves both listeners.
        r = serve(rotor, "raw_app:app", "-b", f"unix:{path}", "--access-logfile", str(access),
                  "--access-logformat", '%(h)s "%(r)s" %(s)s')
        assert f"unix:{path}" in [f["address"] for f in r.events("listening")], r.log()
        assert stat.S_ISSOCK(os.stat(path).st_mode)
        with httpx.Client(transport=httpx.HTTPTransport(uds=path),
                          base_url="http://rotor.test", timeout=30) as c:
            assert c.get("/").text == "Hello, world!"
            scope = c.get("/scope/x?y=1").json()
            body = os.urandom(512 * 1024)
            echoed = c.post("/echo", content=body)
            assert echoed.status_code == 200 and echoed.content == body
        # ASGI spec (www 2.2+): `server` of a unix socket is [path, None]; `client` is a host
        # address and port, which a unix peer has not: None ("optional, defaults to None").
        assert scope["server"] == [path, None], scope
        assert scope["client"] is None, scope
        assert scope["path"] == "/scope/x" and scope["query_string"] == "y=1"
        assert ["host", "rotor.test"] in scope["headers"]
        # The same worker on the TCP listener: the scope names the listener the request used.
        tcp = httpx.get(r.url("/scope")).json()
        assert tcp["pid"] == scope["pid"]
        assert tcp["server"] == ["127.0.0.1", r.port] and tcp["client"][0] == "127.0.0.1"

        # A raw AF_UNIX client: keep-alive (two requests on one connection), then HTTP/1.0.
        out = send_and_read_all(path, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"
                                      b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        assert out.count(b"HTTP/1.1 200 ") == 2 and out.count(b"Hello, world!") == 2, out
        out = send_and_read_all(path, b"GET / HTTP/1.0\r\n\r\n")
        assert out.startswith(b"HTTP/1.1 200 ") and out.endswith(b"Hello, world!"), out

        # The access log has no address for a unix peer: "-".
        lines = wait_for(lambda: [l for l in access.read_text().splitlines()
                                  if '"GET /scope/x?y=1 HTTP/1.1"' in l], what="the access line")
        assert lines[0].split()[0] == "-", lines

        r.signal(signal.SIGTERM)
        assert r.wait_exit() == 0, r.log()
        assert not os.path.exists(path), "the master left its socket file behind"
