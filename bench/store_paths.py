"""Candidate S3 write paths for the archive, measured against SeaweedFS.

`python -m bench.store_paths` starts SeaweedFS on loopback and, in interleaved
rounds (A B C ... A B C ...), runs each candidate in a process of its own: the
same small copies written by 16 threads. Every candidate sends what an archive
write needs (an integrity checksum the store verifies, `If-None-Match: *`,
the SSE header) and reads back the etag, and each checks it got a 412 for a key
already written. The figures are CPU per put in the writing process and in
SeaweedFS, and puts/s, as the median over rounds with the min-max spread.

Candidates:
- boto3: `put_object` as the S3 store called it before this comparison;
- boto3-tuned: the same with parameter validation off and a pool of 16;
- botocore-signer: botocore's SigV4 signer (the AWS credential chain, its
  signing code) over a urllib3 connection pool, the request and the error
  document handled by hand;
- obstore: Rust's object_store (`put`, mode "create", checksum sha256);
- awscrt: the AWS C runtime's HTTP client with SigV4 signing in C.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import queue
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote, urlsplit

THREADS = 16
SSE: Literal["AES256"] = "AES256"
Put = Callable[[str, bytes], str]  # key, body -> etag; raises on any failure


def _bodies(count: int, seed: str) -> list[tuple[str, bytes]]:
    from bench.run import copies, messages

    return copies(messages(count), prefix=f"{seed}/")


# --- candidates (each imported only in its own process) --------------------------------


def boto3_put(endpoint: str, bucket: str, tuned: bool) -> Put:
    import boto3
    import botocore.config
    import botocore.handlers

    config = botocore.config.Config(
        region_name="us-east-1",
        retries={"total_max_attempts": 1},
        s3={"addressing_style": "path"},
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        max_pool_connections=THREADS if tuned else 10,
        parameter_validation=not tuned,
    )
    client = boto3.session.Session().client("s3", endpoint_url=endpoint, config=config)
    client.meta.events.unregister("before-call.s3", botocore.handlers.add_expect_header)

    def put(key: str, body: bytes) -> str:
        md5 = base64.b64encode(hashlib.md5(body, usedforsecurity=False).digest()).decode()
        answer = client.put_object(
            Bucket=bucket,
            Key=key,
            Body=body,
            ContentMD5=md5,
            ContentType="application/x-lz4",
            IfNoneMatch="*",
            ServerSideEncryption=SSE,
        )
        return str(answer["ETag"]).strip('"')

    return put


def botocore_signer_put(endpoint: str, bucket: str) -> Put:
    import botocore.auth
    import botocore.awsrequest
    import botocore.session
    import urllib3

    credentials = botocore.session.get_session().get_credentials()
    assert credentials is not None
    parts = urlsplit(endpoint)
    pool = urllib3.HTTPConnectionPool(
        parts.hostname or "127.0.0.1", parts.port, maxsize=THREADS, block=True
    )

    def put(key: str, body: bytes) -> str:
        md5 = base64.b64encode(hashlib.md5(body, usedforsecurity=False).digest()).decode()
        path = f"/{bucket}/{quote(key, safe='/~')}"
        request = botocore.awsrequest.AWSRequest(
            "PUT",
            endpoint + path,
            data=body,
            headers={
                "Content-MD5": md5,
                "Content-Type": "application/x-lz4",
                "If-None-Match": "*",
                "x-amz-server-side-encryption": SSE,
            },
        )
        botocore.auth.S3SigV4Auth(credentials.get_frozen_credentials(), "s3", "us-east-1").add_auth(
            request
        )
        reply = pool.urlopen(
            "PUT", path, body=body, headers=dict(request.headers.items()), retries=False
        )
        if reply.status != 200:
            raise RuntimeError(f"{reply.status}: {reply.data[:200]!r}")
        return str(reply.headers["ETag"]).strip('"')

    return put


def obstore_put(endpoint: str, bucket: str) -> Put:
    import datetime

    import obstore
    from obstore.store import S3Store

    store = S3Store(
        bucket,
        endpoint=endpoint,
        region="us-east-1",
        access_key_id=os.environ["AWS_ACCESS_KEY_ID"],
        secret_access_key=os.environ["AWS_SECRET_ACCESS_KEY"],
        checksum_algorithm="sha256",
        server_side_encryption=SSE,
        client_options={"allow_http": True, "pool_max_idle_per_host": str(THREADS)},
        retry_config={"max_retries": 0, "retry_timeout": datetime.timedelta(seconds=10)},
    )

    def put(key: str, body: bytes) -> str:
        answer = obstore.put(store, key, body, mode="create", use_multipart=False)
        return str(answer["e_tag"]).strip('"')

    return put


def awscrt_put(endpoint: str, bucket: str) -> Put:
    from awscrt import auth, http, io

    parts = urlsplit(endpoint)
    host, port = parts.hostname or "", parts.port or 80
    loops = io.EventLoopGroup(2)
    bootstrap = io.ClientBootstrap(loops, io.DefaultHostResolver(loops))
    # awscrt's Python API has no connection pool: one connection per thread.
    idle: queue.SimpleQueue[Any] = queue.SimpleQueue()
    for _ in range(THREADS):
        idle.put(http.HttpClientConnection.new(host, port, bootstrap=bootstrap).result())
    provider = auth.AwsCredentialsProvider.new_static(
        os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"]
    )
    signing = auth.AwsSigningConfig(
        algorithm=auth.AwsSigningAlgorithm.V4,
        signature_type=auth.AwsSignatureType.HTTP_REQUEST_HEADERS,
        credentials_provider=provider,
        region="us-east-1",
        service="s3",
        signed_body_value=None,
        signed_body_header_type=auth.AwsSignedBodyHeaderType.X_AMZ_CONTENT_SHA_256,
    )

    def put(key: str, body: bytes) -> str:
        import io as pyio

        md5 = base64.b64encode(hashlib.md5(body, usedforsecurity=False).digest()).decode()
        headers = http.HttpHeaders(
            [
                ("Host", f"{host}:{port}"),
                ("Content-Length", str(len(body))),
                ("Content-MD5", md5),
                ("Content-Type", "application/x-lz4"),
                ("If-None-Match", "*"),
                ("x-amz-server-side-encryption", SSE),
            ]
        )
        request = http.HttpRequest(
            "PUT", f"/{bucket}/{quote(key, safe='/~')}", headers, pyio.BytesIO(body)
        )
        auth.aws_sign_request(request, signing).result()
        connection = idle.get()
        answer: dict[str, Any] = {"body": b""}

        def on_response(http_stream: Any, status_code: int, headers: Any, **_: Any) -> None:
            answer["status"], answer["headers"] = status_code, dict(headers)

        def on_body(http_stream: Any, chunk: bytes, **_: Any) -> None:
            answer["body"] += chunk

        try:
            stream = connection.request(request, on_response, on_body)
            stream.activate()
            stream.completion_future.result()
        finally:
            idle.put(connection)
        if answer["status"] != 200:
            raise RuntimeError(f"{answer['status']}: {answer['body'][:200]!r}")
        headers_by_name = {k.lower(): v for k, v in answer["headers"].items()}
        return str(headers_by_name["etag"]).strip('"')

    return put


CANDIDATES: dict[str, Callable[[str, str], Put]] = {
    "boto3": lambda e, b: boto3_put(e, b, tuned=False),
    "boto3-tuned": lambda e, b: boto3_put(e, b, tuned=True),
    "botocore-signer": botocore_signer_put,
    "obstore": obstore_put,
    "awscrt": awscrt_put,
}


def run_candidate(name: str, endpoint: str, bucket: str, count: int) -> dict[str, float]:
    """In this process: `count` puts by THREADS threads; CPU and wall figures."""
    put = CANDIDATES[name](endpoint, bucket)
    bodies = _bodies(count + 1, f"{name}-{os.getpid()}")
    put(*bodies[0])  # warm: imports, connections, credentials
    try:
        put(*bodies[0])
    except Exception as err:
        refused = "412" in str(err) or "PreconditionFailed" in str(err) or "exist" in str(err)
        if not refused:
            raise
    else:
        raise RuntimeError(f"{name}: a second write of one key was not refused")
    cpu0, started = time.process_time(), time.perf_counter()
    with ThreadPoolExecutor(THREADS) as pool:
        etags = list(pool.map(lambda item: put(*item), bodies[1:]))
    seconds = time.perf_counter() - started
    cpu = time.process_time() - cpu0
    expected = [hashlib.md5(body, usedforsecurity=False).hexdigest() for _, body in bodies[1:]]
    assert etags == expected, f"{name}: etags differ from the bodies' MD5"
    return {"cpu_ms_per_put": cpu / count * 1000, "puts_per_s": count / seconds}


# --- the comparison ---------------------------------------------------------------------


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100.0


def _spread(values: list[float]) -> str:
    def text(value: float) -> str:
        return f"{value:.0f}" if value >= 100 else f"{value:.3g}"

    return f"{text(statistics.median(values))} ({text(min(values))}-{text(max(values))})"


def compare(names: list[str], rounds: int, count: int) -> str:
    from tests.seaweed import SeaweedFS

    figures: dict[str, dict[str, list[float]]] = {n: {} for n in names}
    with tempfile.TemporaryDirectory() as workdir:
        seaweed = SeaweedFS(Path(workdir))
        seaweed.start()
        assert seaweed.process is not None
        try:
            for round_ in range(rounds):
                for name in names:
                    bucket = seaweed.new_bucket()
                    store_cpu0 = _cpu_seconds(seaweed.process.pid)
                    done = subprocess.run(  # noqa: S603 (this module, in a child)
                        [sys.executable, "-m", "bench.store_paths", "--run", name, bucket,
                         seaweed.endpoint, str(count)],
                        capture_output=True, text=True, check=False,
                        env={**os.environ, **seaweed.env},
                    )  # fmt: skip
                    if done.returncode != 0:
                        raise RuntimeError(f"{name}: {done.stderr[-2000:]}")
                    result = json.loads(done.stdout.strip().splitlines()[-1])
                    # SeaweedFS's CPU over the whole child run (warm-up included).
                    store_ms = (_cpu_seconds(seaweed.process.pid) - store_cpu0) / (count + 2)
                    result["store_cpu_ms_per_put"] = store_ms * 1000
                    for key, value in result.items():
                        figures[name].setdefault(key, []).append(value)
                print(f"round {round_ + 1}/{rounds} done", file=sys.stderr)
        finally:
            seaweed.stop()
    base = figures[names[0]]["cpu_ms_per_put"]
    rows = [
        f"{count} puts of small copies by {THREADS} threads, {rounds} interleaved rounds; "
        "median (min-max)",
        "",
        f"| write path | CPU ms/put (writer) | vs {names[0]} | CPU ms/put (SeaweedFS) | puts/s |",
        "|---|---|---|---|---|",
    ]
    for name in names:
        f = figures[name]
        # Each round's figure against the same round's first candidate.
        ratios = [v / b for v, b in zip(f["cpu_ms_per_put"], base, strict=True)]
        rows.append(
            f"| {name} | {_spread(f['cpu_ms_per_put'])} | {_spread(ratios)}x | "
            f"{_spread(f['store_cpu_ms_per_put'])} | {_spread(f['puts_per_s'])} |"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.store_paths", description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--puts", type=int, default=1000, help="puts per candidate per round")
    parser.add_argument("--only", nargs="*", choices=list(CANDIDATES), default=list(CANDIDATES))
    parser.add_argument("--run", nargs=4, metavar=("NAME", "BUCKET", "ENDPOINT", "COUNT"))
    args = parser.parse_args(argv)
    if args.run:
        name, bucket, endpoint, count = args.run
        print(json.dumps(run_candidate(name, endpoint, bucket, int(count))))
        return 0
    print(compare(args.only, args.rounds, args.puts))
    return 0


if __name__ == "__main__":
    threading.current_thread().name = "main"
    sys.exit(main())
