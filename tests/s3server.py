"""A real S3-compatible server on loopback (moto's server mode) for the object-store tests."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

S3_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@contextmanager
def s3_bucket() -> Iterator[str]:
    """Serve S3 on a free loopback port, point pyarrow at it (AWS_ENDPOINT_URL), yield `s3://<bucket>`.

    The variables are set in this process's environment, so subprocesses (a `specstress run`)
    and Ray workers started afterwards reach the same server.
    """
    import pyarrow.fs as pafs
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    saved = {k: os.environ.get(k) for k in [*S3_ENV, "AWS_ENDPOINT_URL"]}
    os.environ.update(S3_ENV, AWS_ENDPOINT_URL=f"http://{host}:{port}")
    bucket = f"specstress-{uuid.uuid4().hex[:8]}"
    try:
        fs, _ = pafs.FileSystem.from_uri(f"s3://{bucket}?allow_bucket_creation=true")
        fs.create_dir(bucket)
        yield f"s3://{bucket}"
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        server.stop()
