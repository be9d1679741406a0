#!/usr/bin/env python3
"""The local AWS emulator: moto's server, with DynamoDB requests isolated as DynamoDB isolates them.

    emulator.py [-H HOST] [-p PORT]      (the same flags as moto_server)

moto applies a TransactWriteItems by snapshotting its tables and, when the transaction is
cancelled (a condition fails), restoring the snapshot -- which erases every write other
requests made meanwhile. Real DynamoDB isolates requests (serializable transactions). This
server runs moto's own WSGI application in one process (so S3, SQS, STS, IAM, EventBridge and
DynamoDB share state) under werkzeug's threaded server, and serves requests whose
`X-Amz-Target` names DynamoDB (`DynamoDB_20120810.*`) one at a time, response body included;
S3, SQS long polls and everything else stay concurrent.

Run it with the virtualenv's python (`make setup` installs moto there).
"""

import argparse
import os
import signal
import sys
import threading

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import run_simple

DYNAMODB_TARGET_PREFIX = "DynamoDB_"


class IsolatedDynamoDB:
    """WSGI middleware: DynamoDB requests hold one lock from request to last response byte."""

    def __init__(self, app):
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        if not environ.get("HTTP_X_AMZ_TARGET", "").startswith(DYNAMODB_TARGET_PREFIX):
            return self.app(environ, start_response)
        with self.lock:
            result = self.app(environ, start_response)
            try:
                body = b"".join(result)
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
        return [body]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=int(os.environ.get("MOTO_PORT", 5000)))
    args = parser.parse_args()
    # moto builds some URLs (SQS queue URLs) from MOTO_PORT.
    os.environ.setdefault("MOTO_PORT", str(args.port))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(
        args.host,
        args.port,
        IsolatedDynamoDB(app),
        threaded=True,
        request_handler=MotoRequestHandler,
    )


if __name__ == "__main__":
    main()
