"""Work an app leaves running when its worker exits: a non-daemon thread, a ThreadPoolExecutor
job, an atexit handler. Each writes a line to the file named by EXIT_APP_FILE when it is done,
so that a test can tell what ran before the process ended."""
import asyncio
import atexit
import concurrent.futures
import ctypes
import os
import threading
import time
import urllib.parse

MARKS = os.environ.get("EXIT_APP_FILE", os.devnull)
executor = concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="exit-app")


def mark(text):
    with open(MARKS, "a") as f:
        f.write(f"{text}\n")


def _at_exit():
    mark(f"atexit {os.getpid()}")
    # Left in sys.stdout's buffer: only a flush at exit gets it to the log.
    print(f"unflushed print at exit {os.getpid()}", end="\n")


atexit.register(_at_exit)


def _hang():
    mark("hang at exit started")
    threading.Event().wait()


def _hang_holding_the_gil():
    mark("hang at exit started")
    ctypes.PyDLL(None).sleep(3600)  # C code that keeps the GIL: no Python thread runs again


def _later(what, seconds):
    time.sleep(seconds)
    mark(what)


_tasks = set()  # the loop keeps only weak references to its tasks


async def _pending(tag, stubborn):
    # A task the app leaves running (a batch flusher, a pool's keep-alive): cancelled at exit,
    # as asyncio.run does, its cleanup runs.
    while True:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            if stubborn:
                continue  # one that will not end: the exit must not wait for it forever
            raise
        finally:
            mark(f"task cleanup {tag}")


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    q = dict(urllib.parse.parse_qsl(scope["query_string"].decode()))
    tag, seconds = q.get("tag", "-"), float(q.get("seconds", "2"))
    path = scope["path"]
    if path == "/thread":
        threading.Thread(target=_later, args=(f"thread {tag}", seconds), name=f"job-{tag}").start()
    elif path == "/executor":
        executor.submit(_later, f"executor {tag}", seconds)
    elif path == "/task":
        _tasks.add(asyncio.get_running_loop().create_task(_pending(tag, False)))
    elif path == "/stubborn-task":
        _tasks.add(asyncio.get_running_loop().create_task(_pending(tag, True)))
    elif path == "/forever":
        threading.Thread(target=threading.Event().wait, name="never-ends").start()
    elif path == "/hang-at-exit":
        atexit.register(_hang)
    elif path == "/hang-at-exit-holding-the-gil":
        atexit.register(_hang_holding_the_gil)
    body = f"{path} {os.getpid()}".encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})
