"""The real sidecar as a child process: `python -m msgarchive_server serve`.

It listens on port 0 and the test learns the port from its "serving" log
line, so there is no race for a free port.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def machine_env() -> dict[str, str]:
    """This process's environment without the machine's own AWS and
    OpenTelemetry settings: what every child a test starts inherits (its
    PATH, and a PYTHONPATH that points it at the code under test)."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "OTEL_"))}


class SidecarProcess:
    def __init__(
        self,
        args: Sequence[str],
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        python: str | Path = sys.executable,
        command: str = "serve",
    ) -> None:
        """`python` runs it: this interpreter, or another install's; `command`:
        serve, or another that logs a "serving" line with its port (console)."""
        self.args = [str(python), "-m", "msgarchive_server", command, *args]
        self.env = {**machine_env(), "MSGARCHIVE_LOG_FORMAT": "json", **(env or {})}
        self.cwd = cwd
        self.process: subprocess.Popen[str] | None = None
        self.lines: list[dict[str, Any]] = []
        self.stderr = ""
        self._lines: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.port = 0
        self.serving: dict[str, Any] = {}

    @property
    def address(self) -> str:
        """Where to call the sidecar: 127.0.0.1:PORT, or its unix: address."""
        if self.port:
            return f"127.0.0.1:{self.port}"
        return str(self.serving["listen"])

    def start(self, timeout: float = 30.0) -> SidecarProcess:
        self.process = subprocess.Popen(
            self.args,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self.env,
            cwd=self.cwd,
        )
        threading.Thread(target=self._read, args=(self.process.stdout,), daemon=True).start()
        while True:
            try:
                line = self._lines.get(timeout=timeout)
            except queue.Empty:
                self.kill()
                raise RuntimeError("the sidecar did not start in time") from None
            if line is None:
                self.process.wait(10)
                self.stderr = self.process.stderr.read() if self.process.stderr else ""
                raise RuntimeError(f"the sidecar exited: {self.stderr}")
            if line.get("event") == "serving":
                self.serving = line
                self.port = int(line["port"] or 0)
                return self

    def _read(self, stream: IO[str]) -> None:
        for raw in stream:
            try:
                line = json.loads(raw)
            except ValueError:
                line = {"event": "unparsed", "text": raw}
            self.lines.append(line)
            self._lines.put(line)
        self._lines.put(None)

    def wait_for_line(
        self, match: Callable[[dict[str, Any]], bool], timeout: float = 30.0
    ) -> dict[str, Any]:
        """The first log line `match` accepts, waiting for the sidecar's log thread
        to write it (a call's line can follow its answer)."""
        deadline = time.monotonic() + timeout
        while True:
            found = next((line for line in list(self.lines) if match(line)), None)
            if found is not None:
                return found
            assert time.monotonic() < deadline, "no such log line"
            time.sleep(0.05)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        """Signal the sidecar and wait; its exit code."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(sig)
        code = self.process.wait(timeout)
        if self.process.stderr:
            self.stderr = self.process.stderr.read()
        return code

    def wait(self, timeout: float = 30.0) -> int:
        """Wait for the sidecar to exit by itself; its exit code."""
        assert self.process is not None
        code = self.process.wait(timeout)
        if self.process.stderr:
            self.stderr = self.process.stderr.read()
        return code

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


def on_s3(
    endpoint: str, env: Mapping[str, str], *flags: str, listen: str = "127.0.0.1:0"
) -> SidecarProcess:
    """A started sidecar (on a free loopback port) whose stores are buckets at the
    S3 `endpoint`; `flags` name them (--store or --accounts), and the rest."""
    return SidecarProcess(
        [f"--listen={listen}", f"--s3-endpoint-url={endpoint}", "--s3-path-style=true", *flags],
        env=env,
    ).start()


def s3_sidecar(bucket: str, endpoint: str, env: Mapping[str, str], *extra: str) -> SidecarProcess:
    """A started sidecar on a free loopback port, storing into s3://BUCKET at `endpoint`."""
    return on_s3(endpoint, env, f"--store=s3://{bucket}", *extra)


def run_to_exit(args: Sequence[str], env: Mapping[str, str] | None = None) -> tuple[int, str]:
    """Run `msgarchive serve ARGS` expecting it to stop by itself: (exit code, stderr)."""
    done = subprocess.run(
        [sys.executable, "-m", "msgarchive_server", "serve", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=30,
        check=False,
    )
    return done.returncode, done.stderr


def health(address: str) -> str:
    """What `msgarchive health` says of the sidecar at `address`."""
    done = subprocess.run(
        [sys.executable, "-m", "msgarchive_server", "health", "--address", address],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return done.stdout.strip() or done.stderr.strip()


def wait_until_serving(address: str, timeout: float = 120.0) -> None:
    """Poll health until SERVING, with deadlines generous enough for a busy
    machine: in this process over one channel (a `msgarchive health` child per
    poll costs an interpreter's start, and gives each check 3 s), each check
    allowed 30 s."""
    deadline = time.monotonic() + timeout
    last = "no answer yet"
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while True:
            try:
                status = stub.Check(health_pb2.HealthCheckRequest(), timeout=30).status
            except grpc.RpcError as err:
                last = err.code().name if isinstance(err, grpc.Call) else str(err)
            else:
                if status == health_pb2.HealthCheckResponse.SERVING:
                    return
                last = health_pb2.HealthCheckResponse.ServingStatus.Name(status)
            assert time.monotonic() < deadline, f"the sidecar did not start serving: {last}"
            time.sleep(0.2)


def verify(
    bucket: str, public_key: Path, endpoint: str, env: Mapping[str, str]
) -> tuple[int, str, str]:
    """Run `msgarchive verify --json` on s3://BUCKET: (exit code, stdout, stderr)."""
    done = subprocess.run(
        [
            sys.executable, "-m", "msgarchive_server", "verify", f"s3://{bucket}",
            f"--public-key={public_key}", f"--s3-endpoint-url={endpoint}", "--json",
        ],
        capture_output=True, text=True, env={**env}, timeout=300, check=False,
    )  # fmt: skip
    return done.returncode, done.stdout, done.stderr


def manifest_key_pair(directory: Path) -> tuple[Path, Path]:
    """`msgarchive manifest-key` in `directory`: the private key file (0600) and
    the public key it printed, saved beside it."""
    private, public = directory / "signing.pem", directory / "signing.pub"
    made = subprocess.run(
        [sys.executable, "-m", "msgarchive_server", "manifest-key", str(private)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert oct(private.stat().st_mode & 0o777) == "0o600"
    assert made.stdout.startswith("-----BEGIN PUBLIC KEY-----")
    public.write_text(made.stdout)
    return private, public
