#!/usr/bin/env bash
# Builds rotor's libFuzzer targets (Debian's clang, ASan + UBSan, llhttp strict as in the real
# build) into build-fuzz/ and runs each for a bounded time. Not part of scripts/test.sh.
#   scripts/fuzz.sh [SECONDS] [TARGET...]
# SECONDS (default 60) is shared between the targets: request_parser (workers/http/parser,
# whole-vs-split oracle), connection (a Connection on a socketpair with a real libuv loop) and
# proxy_header (workers/http/proxy_protocol, whole-vs-split oracle) and control_request (a
# control socket request line, round-trip oracle).
# The corpora grow in build-fuzz/corpus-*; crashes are saved as build-fuzz/crash-*.
set -euo pipefail
cd "$(dirname "$0")/.."
TOTAL=${1:-60}
shift || true
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(request_parser connection proxy_header control_request)
OUT=${FUZZ_DIR:-build-fuzz}
CC=${FUZZ_CC:-clang}
CXX=${FUZZ_CXX:-clang++}
command -v "$CXX" >/dev/null || { echo "fuzz: $CXX not found (apt-get install clang)" >&2; exit 2; }

SAN=(-g -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all)
CXXFLAGS=(-std=c++20 "${SAN[@]}" -I. -isystem /usr/share/include/llhttp -Wall -Wextra -Werror
          -DSPDLOG_COMPILED_LIB -DSPDLOG_FMT_EXTERNAL -DSPDLOG_SHARED_LIB -DFMT_SHARED)
mkdir -p "$OUT/obj"

echo "fuzz: building into $OUT/" >&2
for f in llhttp api http; do
  "$CC" "${SAN[@]}" -fsanitize=fuzzer-no-link -DLLHTTP_STRICT_MODE=1 -w \
    -I/usr/share/include/llhttp -c "/usr/share/llhttp/$f.c" -o "$OUT/obj/llhttp_$f.o"
done
PARSER=(workers/http/parser.cpp workers/http/request.cpp workers/http/grammar.cpp
        workers/http/target.cpp "$OUT"/obj/llhttp_*.o)
ENGINE=(workers/http/connection.cpp workers/http/connection_upgrade.cpp
        workers/http/connection_endpoints.cpp workers/http/connection_proxy.cpp
        workers/http/proxy_protocol.cpp conf/address_list.cpp workers/http/response_writer.cpp
        workers/http/server.cpp workers/http/status.cpp workers/http/handoff.cpp
        workers/http/access_log.cpp workers/http/accept_backoff.cpp
        workers/websocket/session.cpp workers/websocket/frame.cpp workers/websocket/handshake.cpp)
for t in "${TARGETS[@]}"; do
  case "$t" in
    request_parser) "$CXX" "${CXXFLAGS[@]}" -fsanitize=fuzzer fuzz/fuzz_request_parser.cpp \
                      "${PARSER[@]}" -o "$OUT/fuzz_request_parser" ;;
    connection) "$CXX" "${CXXFLAGS[@]}" -fsanitize=fuzzer fuzz/fuzz_connection.cpp \
                  "${ENGINE[@]}" "${PARSER[@]}" -luv -lspdlog -lfmt -o "$OUT/fuzz_connection" ;;
    proxy_header) "$CXX" "${CXXFLAGS[@]}" -fsanitize=fuzzer fuzz/fuzz_proxy_header.cpp \
                    workers/http/proxy_protocol.cpp "${PARSER[@]}" -o "$OUT/fuzz_proxy_header" ;;
    control_request) "$CXX" "${CXXFLAGS[@]}" -fsanitize=fuzzer fuzz/fuzz_control_request.cpp \
                       supervisor/json.cpp supervisor/control_command.cpp -lfmt \
                       -o "$OUT/fuzz_control_request" ;;
    *) echo "fuzz: unknown target $t (request_parser, connection, proxy_header, control_request)" >&2
       exit 2 ;;
  esac
done

# Seeds: llhttp's request corpus when ../shared is there, plus a few of our own. A seed's
# first byte(s) choose limits and split pattern (see each target).
/usr/bin/python3 - "$OUT" <<'PY'
import os, sys
from pathlib import Path
out = Path(sys.argv[1])
sys.path.insert(0, "tests/integration")
inputs = [b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
          b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;a=b\r\nhello\r\n0\r\nX: y\r\n\r\n",
          b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc"
          b"GET /x?y HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"]
try:
    import test_corpus
    for _, _, meta, raw, log in test_corpus.load_cases():
        if not test_corpus.skip_reason(meta, raw):
            inputs.append(test_corpus.with_host(test_corpus.decode(raw), log))
except Exception as e:  # no corpus, or no pytest: our own seeds are enough
    print(f"fuzz: llhttp corpus seeds unavailable ({e})", file=sys.stderr)
proxy = [b"PROXY TCP4 192.0.2.1 198.51.100.7 56324 443\r\nGET / HTTP/1.1\r\n",
         b"PROXY TCP6 2001:db8::1 ::1 1 65535\r\n", b"PROXY UNKNOWN\r\n",
         b"\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x0c\xc0\x00\x02\x01\xc6\x33\x64\x07\xdc\x04\x01\xbbGET",
         b"\r\n\r\n\x00\r\nQUIT\n\x20\x00\x00\x00"]
# The connection target's high bit of byte 0 puts a PROXY header first.
for target, prefixes, data in (
        ("request_parser", [b"\x00\x00", b"\x01\x07", b"\x02\x03"], inputs),
        ("connection", [b"\x00", b"\x05"], inputs),
        ("connection", [b"\x80", b"\x85"],
         [p.split(b"GET")[0] + inputs[0] + inputs[3] for p in proxy]),
        ("proxy_header", [b"\x00", b"\x01", b"\x07"], proxy)):
    seeds = out / f"seeds-{target}"
    seeds.mkdir(exist_ok=True)
    for i, seed in enumerate(data):
        for p in prefixes:
            (seeds / f"s{i:03d}-{p.hex()}").write_bytes(p + seed)
seeds = out / "seeds-control_request"
seeds.mkdir(exist_ok=True)
for i, line in enumerate([b'{"v":1,"cmd":"status"}', b'{"v":1,"cmd":"scale","n":3}',
                          b'{"v":1,"cmd":"rotate","pid":"all"}', b'{"v":1,"cmd":"stop","fast":true}',
                          b'{"v":1,"cmd":"rotate","pid":4242,"x":[1,{"y":"\\u00e9"}]}']):
    (seeds / f"c{i:03d}").write_bytes(line)
PY

per=$(( TOTAL / ${#TARGETS[@]} ))
[ "$per" -gt 0 ] || per=1
status=0
for t in "${TARGETS[@]}"; do
  mkdir -p "$OUT/corpus-$t"
  echo "fuzz: running $t for ${per}s" >&2
  "$OUT/fuzz_$t" -max_total_time="$per" -dict=fuzz/http.dict -max_len=4096 -timeout=10 \
    -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$OUT/crash-$t-" \
    "$OUT/corpus-$t" "$OUT/seeds-$t" || status=$?
done
exit $status
