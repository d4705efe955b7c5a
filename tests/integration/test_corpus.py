"""Replays llhttp's request test corpus (../shared/corpus/llhttp-request, see its README) against
the real binary: every case whose expected log ends in an error gets a 4xx or a closed connection
and never reaches the handler (a 200 from the hello worker); every valid case is answered, each
of its requests with a 200.

Two adaptations, both mechanical:
- The corpus is llhttp's, where Host is optional. rotor answers an HTTP/1.1 request without Host
  with 400 (RFC 9112 section 3.2), so a `Host: corpus` line is added after the request line of
  every HTTP/1.1 request that has none. Requests that fail before their request line ends are
  unaffected.
- Cases for llhttp options rotor does not enable (lenient flags, loose mode, noScan) are skipped,
  as the corpus README says, and so are the few whose bytes are JavaScript expressions.

Where rotor deliberately judges differently from the corpus, the case is listed in DIFFERENT
with the reason, and the test checks that rotor does what the list says.
"""
import json
import re

import pytest

from conftest import ROOT, Rotor
from rawhttp import send_and_read_all

CORPUS = ROOT.parent / "shared" / "corpus" / "llhttp-request"

# Valid in llhttp's corpus, rejected by rotor (a 4xx or a close, never the handler).
DIFFERENT = {
    "No HTTP version": "HTTP/0.9 request line without a version: rotor speaks HTTP/1.x only",
    "Fragment in URI": "'#' is not allowed in a request-target (RFC 9112 section 3.2)",
    "`host:port` and basic auth": "userinfo in an http URI is an error (RFC 9110 section 4.2.4)",
    "SOURCE request with ICE": "ICE/1.0 is not HTTP",
    "OPTIONS request with RTSP": "RTSP/1.0 is not HTTP",
    "ANNOUNCE request with RTSP": "RTSP/1.0 is not HTTP",
    "M-SEARCH request": "asterisk-form is for OPTIONS only (RFC 9112 section 3.2.4)",
    "Chunk extensions": "llhttp 8.1 rejects ';' after an unquoted extension value (a bug fixed "
                        "in later llhttp); rotor does not override llhttp's framing",
    "Chunk extensions quoting": "same llhttp 8.1 limitation as `Chunk extensions`",
    "Tabs in `Content-Length` (surrounding)": "llhttp 8.1 refuses trailing whitespace other "
                                              "than SP in Content-Length",
    "QUERY request": "llhttp 8.1 does not know the QUERY method (400)",
    "Trailing headers": "Content-Type is not allowed in a trailer (RFC 9110 section 6.5.1)",
    "POST with `chunked` as last transfer-encoding": "rotor decodes no transfer coding but "
                                                     "chunked: 501 (RFC 9112 section 6.1)",
    "POST with `chunked` as last transfer-encoding (multiple headers)": "501, as above",
}


def decode(block):
    """The http block's wire bytes, as the corpus README describes."""
    if block.endswith("\n"):
        block = block[:-1]
    block = block.replace("\\\n", "").replace("\n", "\r\n")
    out = bytearray()
    i = 0
    while i < len(block):
        c = block[i]
        if c == "\\" and i + 1 < len(block):
            n = block[i + 1]
            if n in "rntf":
                out += {"r": b"\r", "n": b"\n", "t": b"\t", "f": b"\f"}[n]
                i += 2
                continue
            if n == "x":
                out.append(int(block[i + 2:i + 4], 16))
                i += 4
                continue
            m = re.match(r"[0-7]{1,3}", block[i + 1:])
            if m:
                out.append(int(m.group(0), 8))
                i += 1 + len(m.group(0))
                continue
        out += c.encode("latin-1")
        i += 1
    return bytes(out)


def load_cases():
    if not CORPUS.is_dir():
        return []
    cases = []
    for path in sorted(CORPUS.glob("*.md")):
        text = path.read_text()
        for m in re.finditer(r"^#{2,3} (.*?)\n(.*?)(?=^#{2,3} |\Z)", text, re.S | re.M):
            title, body = m.group(1).strip(), m.group(2)
            http = re.search(r"```http\n(.*?)```", body, re.S)
            if not http:
                continue
            meta = re.search(r"<!-- meta=(\{.*?\}) -->", body)
            meta = json.loads(meta.group(1)) if meta else {}
            log = re.search(r"```log\n(.*?)```", body, re.S)
            log = log.group(1).strip().splitlines() if log else []
            cases.append((f"{path.stem}: {title}", title, meta, http.group(1), log))
    return cases


def skip_reason(meta, raw):
    kind = str(meta.get("type", ""))
    if "lenient" in kind or any(k.startswith("lenient") for k in meta):
        return "llhttp lenient mode"
    if meta.get("noScan") or meta.get("mode") == "loose":
        return "llhttp loose/noScan mode"
    if meta.get("skipBody"):
        return "llhttp skipBody (a response-parsing option)"
    if "${" in raw:
        return "JavaScript expression in the bytes"
    return None


def with_host(data, log):
    """Adds `Host: corpus` to every HTTP/1.1 request of the log that has no Host."""
    inserts = []
    message = None
    for line in log:
        if re.match(r"off=\d+ message begin", line):
            message = {"host": False, "version_end": None, "v11": False}
            inserts.append(message)
        elif message is None:
            continue
        elif 'span[header_field]="' in line:
            name = re.search(r'span\[header_field\]="(.*)"', line).group(1)
            message["host"] |= name.lower() == "host"
        elif 'span[version]="1.1"' in line:
            message["v11"] = True
        elif re.match(r"off=\d+ version complete", line):
            message["version_end"] = int(re.match(r"off=(\d+)", line).group(1))
    out = data
    for msg in reversed(inserts):  # from the end, so earlier offsets stay valid
        if not msg["v11"] or msg["host"] or msg["version_end"] is None:
            continue
        lf = data.find(b"\n", msg["version_end"])
        if lf < 0:
            continue
        out = out[:lf + 1] + b"Host: corpus\r\n" + out[lf + 1:]
    return out


def expectation(log):
    """(requests the handler must answer, whether the bytes are invalid at the end)."""
    completed = sum(1 for line in log if re.match(r"off=\d+ message complete", line))
    last = log[-1] if log else ""
    m = re.search(r"error code=(\d+)", last)
    if not m:
        return completed, False
    code = int(m.group(1))
    if code == 22:  # paused on CONNECT/Upgrade: a valid request, then another protocol
        return completed, False
    # 5: data after `Connection: close` (rotor ignores it and closes); others: invalid bytes.
    return completed, True


def responses(data):
    """Status codes of the Content-Length-framed responses in `data`, in order."""
    out = []
    while data:
        head, sep, rest = data.partition(b"\r\n\r\n")
        if not sep:
            raise AssertionError(f"truncated response: {data!r}")
        status = int(head.split(b" ", 2)[1])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            k, _, v = line.partition(b":")
            if k.strip().lower() == b"content-length":
                length = int(v.strip())
        if status != 100:
            out.append(status)
        data = rest[length:] if status != 100 else rest
    return out


CASES = load_cases()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    r = Rotor(["-k", "hello", "-w", "1"], tmp_path_factory.mktemp("corpus"))
    try:
        r.start(1)
        yield r
    finally:
        r.stop()


def test_corpus_is_present():
    if not CORPUS.is_dir():
        pytest.skip(f"llhttp corpus not found at {CORPUS} (CI has shared/ beside the checkout)")
    assert len(CASES) > 100
    replayed = {c[1] for c in CASES if not skip_reason(c[2], c[3])}
    stale = [t for t in DIFFERENT if t not in replayed]
    assert not stale, f"DIFFERENT lists cases that are not replayed: {stale}"


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_corpus_case(server, case):
    _, title, meta, raw, log = case
    reason = skip_reason(meta, raw)
    if reason:
        pytest.skip(reason)
    data = with_host(decode(raw), log)
    completed, invalid = expectation(log)
    statuses = responses(send_and_read_all(server.port, data, half_close=True))
    if title in DIFFERENT:
        # Everything before the request rotor refuses is answered; that one never is.
        assert all(s == 200 for s in statuses[:completed - 1]), statuses
        assert 200 not in statuses[completed - 1:] or len(statuses) < completed, (
            f"{DIFFERENT[title]}: {statuses}")
        assert all(400 <= s < 500 or s == 501 for s in statuses if s != 200), statuses
        return
    answered = statuses[:completed]
    assert answered == [200] * completed, f"valid requests not all answered: {statuses}"
    rest = statuses[completed:]
    if invalid:
        # The invalid request gets a 4xx, or the connection just closes; never the handler.
        assert len(rest) <= 1 and all(400 <= s < 500 for s in rest), statuses
    else:
        assert rest == [], f"answers for requests that were never complete: {statuses}"
    # The worker is unharmed.
    ok = responses(send_and_read_all(
        server.port, b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", half_close=True))
    assert ok == [200]
