"""An app that gives its own logger a handler and lets records propagate (as Django's LOGGING
does with its "django" logger): rotor's root handler must not log those records again, while
records no handler of the app took still reach rotor's error log."""
import logging
import sys

own = logging.getLogger("myapp")
own.setLevel(logging.INFO)
_handler = logging.StreamHandler(sys.stderr)
_handler.setLevel(logging.WARNING)  # below it, records reach only rotor's handler
_handler.setFormatter(logging.Formatter("OWNLOG %(name)s %(levelname)s %(message)s"))
own.addHandler(_handler)
# As a library does (the logging HOWTO's advice, urllib3 and botocore follow it): a NullHandler
# says "no output of my own", so its records still go wherever the root logger's go.
logging.getLogger("quietlib").addHandler(logging.NullHandler())


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    if scope["path"] == "/fail":
        try:
            raise ValueError("own-logger-boom")
        except ValueError:
            logging.getLogger("myapp.views").exception("handled by the app's own handler")
    logging.getLogger("myapp.views").info("below the app handler's level")
    logging.getLogger("other.library").warning("no handler of the app")
    logging.getLogger("quietlib.pool").warning("a library's NullHandler takes nothing")
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"logged"})
