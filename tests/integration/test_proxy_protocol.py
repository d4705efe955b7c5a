"""The PROXY protocol (--proxy-protocol, --proxy-allow-from): behind an L4 load balancer the app's
client is the one the balancer's header names. Headers in both versions, split across reads,
followed by pipelined requests; malformed headers, plain HTTP where a header is expected and
headers from peers not allowed to send one are refused by closing the connection."""
import ipaddress
import json
import re
import signal
import socket
import struct
import subprocess
import time

import pytest

from conftest import BIN, serve, wait_for
from rawhttp import ResponseReader, connect, recv_until_closed, send_and_read_until_closed

APP = "proxy_echo_app:app"
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"


def get(path="/", close=False):
    return (f"GET {path} HTTP/1.1\r\nHost: x\r\n" + ("Connection: close\r\n" if close else "")
            + "\r\n").encode()


def v1(src="192.0.2.1", dst="198.51.100.7", sport=56324, dport=443, proto="TCP4"):
    return f"PROXY {proto} {src} {dst} {sport} {dport}\r\n".encode()


def v2(src="192.0.2.1", dst="198.51.100.7", sport=56324, dport=443, command=1, tlvs=b""):
    """A v2 header over TCP (TCP4 or TCP6, from the addresses), optionally with TLVs."""
    six = ipaddress.ip_address(src).version == 6
    family = socket.AF_INET6 if six else socket.AF_INET
    block = (socket.inet_pton(family, src) + socket.inet_pton(family, dst)
             + struct.pack(">HH", sport, dport) + tlvs)
    return V2_SIGNATURE + bytes([0x20 | command, 0x21 if six else 0x11]) + \
        struct.pack(">H", len(block)) + block


def echo(answer):
    """The app's JSON of one response (bytes of a whole answer)."""
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 "), answer
    return json.loads(body)


def ask(port, data, count=1):
    """Sends `data` in one write and reads `count` responses: the app's JSON of each."""
    with connect(port) as s:
        s.sendall(data)
        reader = ResponseReader(s)
        out = []
        for _ in range(count):
            status, _, body = reader.response()
            assert status.startswith("HTTP/1.1 200 "), (status, body)
            out.append(json.loads(body))
        return out


def refused(port, data):
    """Whether the server closed the connection after `data` without answering a byte."""
    answer, closed = send_and_read_until_closed(port, data, timeout=10)
    return closed and answer == b""


@pytest.fixture
def proxied(rotor):
    return serve(rotor, APP, "--proxy-protocol")


def test_a_v1_header_names_the_client_and_the_server_the_app_sees(proxied):
    [me] = ask(proxied.port, v1() + get("/v1"))
    assert me == {"client": ["192.0.2.1", 56324], "server": ["198.51.100.7", 443], "path": "/v1"}
    [me] = ask(proxied.port, v1("2001:db8::1", "2001:db8::2", 1, 80, "TCP6") + get())
    assert me["client"] == ["2001:db8::1", 1] and me["server"] == ["2001:db8::2", 80], me


def test_a_v2_header_over_tcp4_and_tcp6_with_tlvs_names_the_client(proxied):
    [me] = ask(proxied.port, v2() + get("/v2"))
    assert me == {"client": ["192.0.2.1", 56324], "server": ["198.51.100.7", 443], "path": "/v2"}
    aws_vpce = b"\xea\x00\x05\x01vpce"  # a TLV as AWS NLB sends it: skipped
    [me] = ask(proxied.port, v2("2001:db8::7", "2001:db8::8", 40000, 8443, tlvs=aws_vpce) + get())
    assert me["client"] == ["2001:db8::7", 40000] and me["server"] == ["2001:db8::8", 8443], me


def test_local_and_unknown_headers_keep_the_real_peer(proxied):
    for header in (v2(command=0), b"PROXY UNKNOWN\r\n"):
        [me] = ask(proxied.port, header + get())
        assert me["client"][0] == "127.0.0.1" and me["server"] == ["127.0.0.1", proxied.port], me


@pytest.mark.parametrize("header", [v1(), v2()], ids=["v1", "v2"])
def test_a_header_split_across_reads_byte_by_byte(proxied, header):
    with connect(proxied.port) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(len(header)):
            s.sendall(header[i:i + 1])
            time.sleep(0.003)
        s.sendall(get("/split")[:5])  # the request in pieces too
        time.sleep(0.02)
        s.sendall(get("/split")[5:])
        status, _, body = ResponseReader(s).response()
    assert status.startswith("HTTP/1.1 200 ")
    assert json.loads(body)["client"] == ["192.0.2.1", 56324]


@pytest.mark.parametrize("header", [v1(), v2()], ids=["v1", "v2"])
def test_requests_pipelined_in_the_headers_write_are_all_answered(proxied, header):
    answers = ask(proxied.port, header + get("/one") + get("/two") + get("/three"), count=3)
    assert [a["path"] for a in answers] == ["/one", "/two", "/three"]
    assert all(a["client"] == ["192.0.2.1", 56324] for a in answers), answers


MALFORMED = {
    "v1-bad-protocol": b"PROXY UDP4 192.0.2.1 198.51.100.7 1 2\r\n",
    "v1-bad-address": b"PROXY TCP4 192.0.2.300 198.51.100.7 1 2\r\n",
    "v1-v6-address-as-tcp4": b"PROXY TCP4 2001:db8::1 198.51.100.7 1 2\r\n",
    "v1-bad-port": b"PROXY TCP4 192.0.2.1 198.51.100.7 65536 2\r\n",
    "v1-no-crlf-within-107-bytes": b"PROXY UNKNOWN " + b"x" * 120 + b"\r\n",
    "v1-bare-lf": b"PROXY TCP4 192.0.2.1 198.51.100.7 1 2\n",
    "bad-signature": b"PROXY-TCP4 192.0.2.1 198.51.100.7 1 2\r\n",
    "v2-bad-signature": V2_SIGNATURE[:-1] + b"X" + v2()[12:],
    "v2-bad-version": V2_SIGNATURE + b"\x11" + v2()[13:],
    "v2-bad-family": V2_SIGNATURE + b"\x21\x41" + v2()[14:],
    "v2-length-too-long": V2_SIGNATURE + b"\x21\x11\xff\xff" + b"\0" * 100,
    "v2-length-shorter-than-addresses": V2_SIGNATURE + b"\x21\x21\x00\x0c" + v2()[16:],
}


@pytest.mark.parametrize("header", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_malformed_header_closes_the_connection_without_an_answer(proxied, header):
    assert refused(proxied.port, header + get())
    wait_for(lambda: proxied.events("proxy-refused"), what="event=proxy-refused")
    [line] = proxied.events("proxy-refused")
    assert line["peer"] == "127.0.0.1" and line["reason"], line
    [me] = ask(proxied.port, v1() + get())  # the worker serves on
    assert me["client"] == ["192.0.2.1", 56324]


def test_plain_http_from_an_allowed_peer_is_refused(proxied):
    """A balancer that should send the header but does not (a misconfiguration) must not have
    its own address taken for every client's."""
    assert refused(proxied.port, get())
    wait_for(lambda: proxied.events("proxy-refused"), what="event=proxy-refused")
    assert proxied.events("proxy-refused")[0]["reason"] == "no PROXY header"


@pytest.mark.parametrize("header", [v1(), v2(), v1()[:8]], ids=["v1", "v2", "v1-start"])
def test_a_header_from_a_peer_not_allowed_to_send_one_is_refused(rotor, header):
    r = serve(rotor, APP, "--proxy-protocol", "--proxy-allow-from", "10.0.0.1")
    assert refused(r.port, header + get())
    wait_for(lambda: r.events("proxy-refused"), what="event=proxy-refused")
    [line] = r.events("proxy-refused")
    assert line["peer"] == "127.0.0.1" and "not allowed" in line["reason"], line
    # Plain HTTP from it is served as from any direct client, even one byte at a time.
    [me] = ask(r.port, get())
    assert me["client"][0] == "127.0.0.1"
    with connect(r.port) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for b in get("/slow"):
            s.sendall(bytes([b]))
            time.sleep(0.002)
        _, _, body = ResponseReader(s).response()
        assert json.loads(body)["path"] == "/slow"


def test_refusals_are_logged_at_most_once_a_second_with_a_count(rotor):
    r = serve(rotor, APP, "--proxy-protocol", "--proxy-allow-from", "10.0.0.0/8")
    sent = 0
    started = time.monotonic()
    for _ in range(40):
        assert refused(r.port, v1())
        sent += 1
    elapsed = time.monotonic() - started
    time.sleep(1.1)
    assert refused(r.port, v2())  # logged: it carries the count of those that were not
    sent += 1
    wait_for(lambda: len(r.events("proxy-refused")) >= 2, what="the second refusal line")
    lines = r.events("proxy-refused")
    assert len(lines) <= elapsed + 2, (elapsed, lines)
    assert len(lines) + sum(int(l["suppressed"]) for l in lines) == sent, lines


def test_proxy_comes_first_then_forwarded_headers_as_from_that_client(rotor):
    r = serve(rotor, APP, "--proxy-protocol", "--forwarded-allow-ips", "10.0.0.0/8")
    forwarded = (b"GET / HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 203.0.113.9\r\n\r\n")
    # The header's client is a trusted proxy: its X-Forwarded-For names the client.
    [me] = ask(r.port, v1(src="10.1.2.3") + forwarded)
    assert me["client"] == ["203.0.113.9", 0], me
    # It is not: its X-Forwarded-For is its own claim (the real peer is never asked).
    r2 = serve(rotor, APP, "--proxy-protocol")  # forwarded-allow-ips trusts 127.0.0.1
    [me] = ask(r2.port, v1(src="192.0.2.1") + forwarded)
    assert me["client"] == ["192.0.2.1", 56324], me


def test_a_unix_socket_peer_sends_the_header(rotor, tmp_path):
    path = str(tmp_path / "rotor.sock")
    serve(rotor, APP, "--proxy-protocol", "--proxy-allow-from", "10.0.0.1", "-b", f"unix:{path}")
    with connect(path) as s:
        s.sendall(v2() + get())
        _, _, body = ResponseReader(s).response()
    assert json.loads(body)["client"] == ["192.0.2.1", 56324]
    assert refused(path, get())  # plain HTTP from a (trusted) unix peer: no header, refused


def test_the_hello_worker_takes_the_header_and_logs_its_client(rotor, tmp_path):
    access = tmp_path / "access.log"
    r = rotor("-k", "hello", "--proxy-protocol", "--access-logfile", str(access))
    with connect(r.port) as s:
        s.sendall(v1(src="192.0.2.55") + get() + get("/again", close=True))
        answer, closed = recv_until_closed(s, 10)
    assert closed and answer.count(b"HTTP/1.1 200 ") == 2, answer
    assert refused(r.port, get())
    wait_for(lambda: access.exists() and len(access.read_text().splitlines()) >= 2,
             what="two access log lines")
    lines = access.read_text().splitlines()
    assert all(l.startswith("192.0.2.55 ") for l in lines), lines


@pytest.mark.parametrize("value", ["300.1.1.1", "10.0.0.0/33", "localhost"])
def test_a_bad_proxy_allow_from_is_one_line_and_exit_2(value, tmp_path):
    out = subprocess.run([str(BIN), "-k", "hello", "-b", "127.0.0.1:0", "--proxy-protocol",
                          "--proxy-allow-from", value], capture_output=True, text=True,
                         cwd=tmp_path, timeout=60)
    assert out.returncode == 2, out.stderr
    lines = out.stderr.splitlines()
    assert len(lines) == 1, lines
    assert re.match(r"rotor: error: --proxy-allow-from: expected '\*' or IP", lines[0]), lines


def test_proxy_settings_come_from_a_gunicorn_conf_py(tmp_path):
    (tmp_path / "gunicorn.conf.py").write_text(
        "proxy_protocol = True\nproxy_allow_ips = '10.0.0.0/8,127.0.0.1'\n")
    out = subprocess.run([str(BIN), "-k", "hello", "--print-config"], capture_output=True,
                         text=True, cwd=tmp_path, timeout=60)
    assert out.returncode == 0, out.stderr
    assert re.search(r"^proxy_protocol = true$", out.stdout, re.M), out.stdout
    assert re.search(r'^proxy_allow_from = "10.0.0.0/8,127.0.0.1"$', out.stdout, re.M), out.stdout
    assert "proxy" not in out.stderr, out.stderr  # applied, not ignored with a warning


def test_a_rotated_worker_closes_a_proxied_connection_instead_of_handing_it_over(rotor):
    """The worker that took it over would wait for a header the balancer sent long ago (with
    --keep-alive 60, for a minute): the old worker closes it once idle, and the balancer
    reconnects."""
    r = rotor("-k", "hello", "-w", "1", "--proxy-protocol", "--keep-alive", "60")
    old = r.ready_pids()[0]
    with connect(r.port) as s:
        s.sendall(v1() + get("/before"))
        status, _, _ = ResponseReader(s).response()
        assert status.startswith("HTTP/1.1 200 ")
        r.signal(signal.SIGHUP)
        wait_for(lambda: any(int(f["pid"]) == old for f in r.events("worker-exit")),
                 what="the old worker to exit")
        rest, closed = recv_until_closed(s, 15)
    assert closed and rest == b"", rest
    with connect(r.port) as s:  # the new worker takes new connections, header first
        s.sendall(v1(src="192.0.2.9") + get())
        status, _, body = ResponseReader(s).response()
    assert status.startswith("HTTP/1.1 200 ") and body == b"Hello, world!"
