"""An app for the template tests: what it does at import is chosen by environment variables.

TEMPLATE_APP_IMPORT_DELAY  seconds the import takes (a flow-building app's slow import)
TEMPLATE_APP_ALLOC_MB      megabytes of data built at import (shared with forked workers)
TEMPLATE_APP_THREAD        "1": start a thread at import (unsafe to fork)
TEMPLATE_APP_VERSION       a version string the app reports (the HUP tests rewrite a copy)
"""
import json
import os
import sys
import threading
import time

IMPORTED_IN = os.getpid()
VERSION = os.environ.get("TEMPLATE_APP_VERSION", "1")
print(f"template-app: imported pid={IMPORTED_IN}", file=sys.stderr, flush=True)

time.sleep(float(os.environ.get("TEMPLATE_APP_IMPORT_DELAY", "0")))

_MB = int(os.environ.get("TEMPLATE_APP_ALLOC_MB", "0"))
# Real pages, written at import: a zero-filled allocation would not be resident at all.
BALLAST = bytes(range(256)) * (_MB * 4096)

if os.environ.get("TEMPLATE_APP_THREAD") == "1":
    _stop = threading.Event()
    threading.Thread(target=_stop.wait, name="import-time-thread", daemon=True).start()


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    body = json.dumps({"pid": os.getpid(), "imported_in": IMPORTED_IN, "version": VERSION,
                       "ballast_mb": len(BALLAST) >> 20}).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})
