"""A raw-socket HTTP client for the integration tests: bytes in, bytes out, nothing fixed up.

Addresses are a TCP port on 127.0.0.1 or the path of a unix socket."""
import fcntl
import socket
import termios
import time

from conftest import DEADLINE, wait_for

# How long send_and_read_until_closed waits for the close by default; tests that must tell a
# chosen close from an idle timeout set a keep-alive far longer.
CLOSE_DEADLINE = 8


def connect(address, timeout=10):
    """A connected socket: `address` is a port on 127.0.0.1 or a unix socket's path."""
    if isinstance(address, int):
        return socket.create_connection(("127.0.0.1", address), timeout=timeout)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(address)
    return s


def recv_until_closed(sock, timeout):
    """(data, closed): everything the peer sent until it closed; closed is False on timeout."""
    end = time.monotonic() + timeout
    chunks = []
    while True:
        sock.settimeout(max(0.01, end - time.monotonic()))
        try:
            b = sock.recv(65536)
        except ConnectionResetError:
            return b"".join(chunks), True
        except socket.timeout:
            return b"".join(chunks), False
        if not b:
            return b"".join(chunks), True
        chunks.append(b)


def recv_until(sock, marker, timeout=DEADLINE):
    """What the server sent until `marker` showed up (the connection stays open)."""
    end = time.monotonic() + timeout
    data = b""
    while marker not in data:
        sock.settimeout(max(0.01, end - time.monotonic()))
        try:
            b = sock.recv(65536)
        except socket.timeout:
            raise AssertionError(f"no {marker!r} within {timeout}s: {data!r}")
        assert b, f"closed before {marker!r}: {data!r}"
        data += b
    return data


def send_and_read_until_closed(address, data, timeout=CLOSE_DEADLINE, half_close=False):
    """Connects, sends `data` (then shuts down its writing side if `half_close`) and reads
    until the server closes: (answer, closed); closed is False when `timeout` passed first.
    A server that refuses the bytes early and closes while they are sent has still answered:
    the send's broken pipe is ignored and the answer read."""
    with connect(address) as s:
        try:
            s.sendall(data)
            if half_close:
                s.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass
        return recv_until_closed(s, timeout)


def send_and_read_all(address, data, timeout=10, half_close=False):
    """Everything the server answered to `data` on a connection it must close within
    `timeout`."""
    answer, closed = send_and_read_until_closed(address, data, timeout, half_close)
    assert closed, f"the server kept the connection open: {answer!r}"
    return answer


class ResponseReader:
    """Reads responses with Content-Length bodies off one socket, keeping what follows them.

    Each read waits up to `timeout`; with a `deadline`, all of them together end within it."""

    def __init__(self, sock, timeout=10, deadline=None):
        self.sock = sock
        self.buf = b""
        self.timeout = timeout
        self.end = None if deadline is None else time.monotonic() + deadline
        sock.settimeout(timeout)

    def _more(self):
        if self.end is not None:
            left = self.end - time.monotonic()
            assert left > 0, f"no whole response in time: {self.buf[:2000]!r}"
            self.sock.settimeout(max(0.1, min(self.timeout, left)))
        b = self.sock.recv(1 << 20)
        assert b, f"connection closed mid-response: {self.buf[:2000]!r}"
        self.buf += b

    def response(self):
        """(status line, headers, body) of the next response; header names in lower case."""
        while b"\r\n\r\n" not in self.buf:
            self._more()
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for l in lines[1:]:
            k, _, v = l.partition(":")
            headers[k.strip().lower()] = v.strip()
        n = int(headers["content-length"])
        while len(self.buf) < n:
            self._more()
        body, self.buf = self.buf[:n], self.buf[n:]
        return lines[0], headers, body


def read_response(sock, timeout=10):
    """The one response on a socket where nothing else is expected after it."""
    reader = ResponseReader(sock, timeout)
    out = reader.response()
    assert reader.buf == b"", f"bytes after the response: {reader.buf!r}"
    return out


def read_responses(sock, count, deadline=DEADLINE):
    """The next `count` Content-Length responses on `sock`, all within `deadline` seconds."""
    reader = ResponseReader(sock, deadline, deadline)
    return [reader.response() for _ in range(count)]


def server_send_queue(sock, server_port):
    """Bytes the server has written to `sock`'s connection that the client has not taken (its
    socket's send queue, from /proc/net/tcp), or None when it is not found."""
    client_port = sock.getsockname()[1]
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            next(f)
            for line in f:
                fields = line.split()
                local, remote, queues = fields[1], fields[2], fields[4]
                if (int(local.rsplit(":", 1)[1], 16) == server_port and
                        int(remote.rsplit(":", 1)[1], 16) == client_port):
                    return int(queues.split(":")[0], 16)
    return None


def wait_until_the_server_is_blocked(sock, server_port):
    """Waits until the server's writes to `sock` are stuck on the client not reading: its
    socket's send queue is non-empty and has stopped moving, and so has the client's receive
    queue. What the server has more to send waits in the worker (its sends pause)."""
    def sample():
        return (server_send_queue(sock, server_port),
                fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0\0\0\0"))

    last = [None]

    def stuck():
        now = sample()
        still = now == last[0] and now[0]
        last[0] = now
        return still
    wait_for(stuck, interval=0.2, what="the server's writes to block on the client")
