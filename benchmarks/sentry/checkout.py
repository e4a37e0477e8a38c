"""A Python service failing at checkout, reporting through the Sentry Python SDK (Debian's python3-sentry-sdk):
a chained exception (a KeyError inside a ValueError) with a local variable `password`, a user, a tag, a secret
extra, a release and an environment, then a message.

  /usr/bin/python3 checkout.py DSN              sends both to DSN (the web suite's Sentry test)
  /usr/bin/python3 checkout.py --record FOLDER  records what the SDK would send for the exception, gzipped as it
                                                sends it: an envelope (sentry-sdk 2.x) or a store endpoint's JSON
                                                event (1.x), for benchmarks/sentry-load.sh to replay
"""
import gzip
import io
import json
import os
import sys

import sentry_sdk
from sentry_sdk.transport import Transport

recording = len(sys.argv) > 2 and sys.argv[1] == "--record"
folder = sys.argv[2] if recording else "."


class FileTransport(Transport):
    def __init__(self, options=None):
        super().__init__(options)

    def capture_event(self, event):  # sentry-sdk 1.x: errors go to /store/ as one JSON event
        with gzip.open(os.path.join(folder, "python-exception.store.gz"), "wb") as f:
            f.write(json.dumps(event, default=str).encode("utf-8"))

    def capture_envelope(self, envelope):  # sentry-sdk 2.x: errors go to /envelope/
        if not any(item.headers.get("type") == "event" for item in envelope.items):
            return
        out = io.BytesIO()
        envelope.serialize_into(out)
        with gzip.open(os.path.join(folder, "python-exception.envelope.gz"), "wb") as f:
            f.write(out.getvalue())

    def flush(self, timeout, callback=None):
        pass

    def kill(self):
        pass


sentry_sdk.init(
    dsn="http://0123456789abcdef0123456789abcdef@127.0.0.1/dev/error/1" if recording else sys.argv[1],
    transport=FileTransport if recording else None,
    release="api@2.0.0",
    environment="production",
    default_integrations=False,
    auto_session_tracking=False,
)
sentry_sdk.set_user({"username": "grace"})
sentry_sdk.set_tag("region", "us")
sentry_sdk.set_extra("db_password", "py-secret-9")


def load(cart):
    return cart["sku"]


def checkout():
    password = "py-local-secret-5"  # a local variable: the SDK sends frame variables; none is stored
    try:
        load({"owner": password[:0]})
    except KeyError as e:
        raise ValueError("cart 1042 broken") from e


try:
    checkout()
except Exception:
    sentry_sdk.capture_exception()
if not recording:
    sentry_sdk.capture_message("queue depth 17 over limit")
sentry_sdk.flush(10)
