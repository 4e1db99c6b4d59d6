"""Small helpers shared by the e2e test modules (fixtures live in conftest.py)."""

from __future__ import annotations

import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from mlflow.exceptions import MlflowException


def unique(prefix: str) -> str:
    """A name that no other test (or earlier session on the same server) uses."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def assert_mlflow_error(excinfo: pytest.ExceptionInfo, error_code: str, http_status: int | None = None):
    """Check the error code (and HTTP status) that the client reports for a failed call."""
    err = excinfo.value
    assert isinstance(err, MlflowException), repr(err)
    assert err.error_code == error_code, f"expected {error_code}, got {err.error_code}: {err.message}"
    if http_status is not None:
        assert err.get_http_status_code() == http_status


def s3_keys(server, contains: str = "") -> list[str]:
    """All object keys under the server's S3 artifact prefix (only for the s3 backend)."""
    import os

    import boto3

    s3 = boto3.client(
        "s3",
        endpoint_url=os.environ["SEXTANT_TEST_S3_ENDPOINT"],
        aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "testing"),
        aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "testing"),
        region_name=os.environ.get("AWS_REGION", "us-east-1"),
    )
    keys = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=server.s3_bucket, Prefix=f"{server.s3_prefix}/"):
        keys += [obj["Key"] for obj in page.get("Contents", [])]
    return [k for k in keys if contains in k]


class Receiver:
    """An HTTP endpoint on 127.0.0.1 that keeps the JSON bodies posted to it, as an
    Alertmanager receiver or a CI job's webhook would."""

    def __init__(self) -> None:
        self.bodies: list[tuple[str, dict]] = []
        bodies = self.bodies

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                length = int(self.headers.get("Content-Length", 0))
                bodies.append((self.path, json.loads(self.rfile.read(length))))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def posted(self, path: str, timeout: float = 30.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [body for at, body in self.bodies if at == path]
            if found:
                return found
            time.sleep(0.1)
        return []

    def close(self) -> None:
        self.server.shutdown()
