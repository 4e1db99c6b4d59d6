"""Small helpers shared by the e2e test modules (fixtures live in conftest.py)."""

from __future__ import annotations

import uuid

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
