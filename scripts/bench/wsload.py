"""WebSocket echo load for scripts/bench.py: CONNECTIONS sessions, each keeping INFLIGHT binary
messages of SIZE bytes in flight; prints messages echoed per second over DURATION seconds
(after a second of warm-up).

    wsload.py PORT PATH CONNECTIONS INFLIGHT SIZE DURATION

Cheap on the client side, so that the server is what is measured: one prebuilt masked frame is
sent again and again, and echoes are counted by bytes (every server frame has the same size)."""
import asyncio
import os
import struct
import sys
import time


def client_frame(size):
    head = bytes([0x82]) + (bytes([0x80 | size]) if size < 126
                            else bytes([0x80 | 126]) + struct.pack("!H", size))
    mask = os.urandom(4)
    payload = bytes(b ^ mask[i % 4] for i, b in enumerate(b"m" * size))
    return head + mask + payload


def server_frame_len(size):
    return 2 + size if size < 126 else 4 + size


async def session(port, path, inflight, frame, echo_len, counts, stop):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: bench\r\nUpgrade: websocket\r\n"
                 "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                 "Sec-WebSocket-Version: 13\r\n\r\n".encode())
    head = await reader.readuntil(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 101"):
        raise RuntimeError(f"handshake refused: {head[:40]!r}")
    writer.write(frame * inflight)
    pending = 0
    while not stop.is_set():
        data = await reader.read(65536)
        if not data:
            raise RuntimeError("the server closed the session")
        pending += len(data)
        done, pending = divmod(pending, echo_len)
        counts[0] += done
        writer.write(frame * done)
    writer.close()


async def main(port, path, connections, inflight, size, duration):
    frame, echo_len = client_frame(size), server_frame_len(size)
    counts, stop = [0], asyncio.Event()
    tasks = [asyncio.create_task(session(port, path, inflight, frame, echo_len, counts, stop))
             for _ in range(connections)]
    await asyncio.sleep(1)  # warm-up
    start, first = time.monotonic(), counts[0]
    done, _ = await asyncio.wait(tasks, timeout=duration, return_when=asyncio.FIRST_EXCEPTION)
    elapsed, total = time.monotonic() - start, counts[0] - first
    stop.set()
    errors = sum(1 for t in done if t.exception())
    for t in tasks:
        t.cancel()
    # total: every echo since the sessions opened, warm-up included (for CPU per message).
    print(f"msgs_per_s={total / elapsed:.0f} total={counts[0]} errors={errors}")


if __name__ == "__main__":
    a = sys.argv[1:]
    asyncio.run(main(int(a[0]), a[1], int(a[2]), int(a[3]), int(a[4]), float(a[5])))
