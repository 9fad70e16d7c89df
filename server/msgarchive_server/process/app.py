"""Assembling the sidecar: store, pipeline, gRPC server, health, reflection."""

from __future__ import annotations

import dataclasses
import os
import socket
import time
from concurrent import futures
from pathlib import Path
from typing import TYPE_CHECKING

import grpc
import structlog
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from msgarchive.v1 import archive_service_pb2 as pb
from msgarchive.v1 import archive_service_pb2_grpc as pb_grpc
from msgarchive_server import addresses
from msgarchive_server.domain.accounts import Accounts, AccountsFileError
from msgarchive_server.domain.archive import Archiver
from msgarchive_server.domain.circuit import StoreCircuit
from msgarchive_server.domain.manifests.journal import Journal
from msgarchive_server.domain.ratelimit import RateLimiter
from msgarchive_server.domain.reads import Reader
from msgarchive_server.domain.retry import (
    RetriesExhausted,
    RetryPolicy,
    opens_circuit,
    with_retries,
)
from msgarchive_server.edge.access import Access, Tenant
from msgarchive_server.edge.backpressure import InFlightLimit, StreamSlots
from msgarchive_server.edge.calls import ArchiveCalls
from msgarchive_server.edge.httpserver import HttpServer
from msgarchive_server.edge.interceptors import RequestLogInterceptor, StreamSlotsInterceptor
from msgarchive_server.edge.lane import StreamLane, UnaryLane
from msgarchive_server.edge.reads import ReadCalls
from msgarchive_server.edge.scrape import metrics_listener
from msgarchive_server.edge.servicer import ArchiveServicer
from msgarchive_server.edge.streams import ArchiveStreams
from msgarchive_server.process.config import Settings
from msgarchive_server.process.signals import StopSignals
from msgarchive_server.process.workers import supervise
from msgarchive_server.stores import Retention, Store, StoreError, Unsupported, open_store
from msgarchive_server.telemetry import tracing
from msgarchive_server.telemetry.metrics import Metrics

if TYPE_CHECKING:
    from msgarchive_server.domain.manifests.sealer import Sealer
    from msgarchive_server.edge.http import HttpListener

log = structlog.get_logger("msgarchive.server")

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["ArchiveService"].full_name
# gRPC's own size limit sits above the rendered-JSON limit, so that an over-size
# message gets INVALID_ARGUMENT naming the field rather than a transport error.
_HEADROOM = 1024 * 1024
ARCHIVE_METHOD = f"/{SERVICE_NAME}/Archive"
ARCHIVE_STREAM_METHOD = f"/{SERVICE_NAME}/ArchiveStream"
HEALTH_CHECK = "/grpc.health.v1.Health/Check"
_READS = ("ViewMessage", "GetArchivedMessage", "ListArchivedMessages")
# Archive's lane threads past --max-in-flight: they answer OVERLOADED beyond it.
_LANE_SPARE = 8
_STREAM_SPARE = 4  # ArchiveStream's lane threads past --max-streams
_READ_THREADS = 16  # each read RPC's, at most (reads are rate-limited per account)
_HEALTH_THREADS = 8


class StartupError(Exception):
    """The sidecar cannot start; the message is one line saying why."""


def make_store(settings: Settings, url: str, retention: Retention | None = None) -> Store:
    """The store at `url`; with `retention`, one that verifies its bucket keeps it."""
    try:
        return open_store(url, settings.store_options, retention)
    except Unsupported as err:
        raise StartupError(f"store {url}: {err}") from None


class Sidecar:
    """A built, not yet started, sidecar: server, health, and one tenant (store,
    circuit, archiver, reader) per store location."""

    def __init__(self, settings: Settings, store: Store | None = None) -> None:
        self.settings = settings
        self.draining = False
        self.metrics = Metrics()
        self.health = health.HealthServicer(experimental_non_blocking=True)
        self.retry = RetryPolicy(max_retries=settings.max_retries)
        try:
            self.accounts = (
                Accounts.load(Path(settings.accounts)) if settings.accounts else Accounts({})
            )
        except AccountsFileError as err:
            raise StartupError(str(err)) from None
        # One tenant per account (accounts never share a store: Accounts.load
        # checks), or one default tenant for every account without a file.
        self.tenants: list[Tenant] = []
        tenants = {
            a.account_id: self._tenant(a.store, retention=a.retention or settings.retention)
            for a in self.accounts.accounts.values()
        }
        default = None if tenants else self._tenant(settings.store, settings.retention, store)
        self.tenants = [default] if default else list(tenants.values())
        self._report_availability()
        access = Access(self.accounts, tenants, default, RateLimiter(settings.read_rate_limit))
        calls = ArchiveCalls(access, self.metrics, InFlightLimit(settings.max_in_flight))
        # Open streams (ArchiveStream's and reflection's) share one bound.
        slots = StreamSlots(settings.max_streams, settings.max_streams_per_peer)
        self.streams = ArchiveStreams(
            calls, settings.stream_window, idle_timeout=settings.stream_idle_timeout, slots=slots
        )
        self.reads = ReadCalls(access, self.metrics)
        servicer = ArchiveServicer(calls, self.streams, self.reads)
        # A --workers worker shares its port with its siblings; otherwise no
        # one may share it (gRPC would allow it by default on Linux).
        reuse_port = settings.is_worker
        interceptors = [
            RequestLogInterceptor(self.metrics),
            StreamSlotsInterceptor(slots, self.metrics),
        ]
        self.server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=settings.threads, thread_name_prefix="grpc"),
            interceptors=interceptors,
            options=[
                ("grpc.max_receive_message_length", settings.max_message_bytes + _HEADROOM),
                ("grpc.so_reuseport", 1 if reuse_port else 0),
            ],
        )
        pb_grpc.add_ArchiveServiceServicer_to_server(servicer, self.server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        self.lanes = self._lanes(interceptors)
        reflection.enable_server_reflection(
            (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), self.server
        )
        self._set_health(serving=False)
        probe_listen(settings.listen, reuse_port)
        listen = addresses.canonical(settings.listen)  # ":PORT" is loopback, as everywhere
        try:
            credentials = server_credentials(settings)
            if credentials is None:
                self.port = self.server.add_insecure_port(listen)
            else:
                self.port = self.server.add_secure_port(listen, credentials)
        except RuntimeError as err:
            raise StartupError(f"--listen {settings.listen}: cannot listen: {err}") from None
        self.metrics_port = 0
        self.scrape: HttpServer | None = None
        if settings.metrics_listen:
            try:
                self.scrape = metrics_listener(settings.metrics_listen, self.metrics.registry)
                self.scrape.start()
                self.metrics_port = self.scrape.port
            except OSError as err:  # asyncio's own text holds the address again: errno's
                reason = os.strerror(err.errno) if err.errno else str(err)
                raise StartupError(
                    f"--metrics-listen {settings.metrics_listen}: cannot listen: {reason}"
                ) from None
        self.http = self._http_listener()

    def _lanes(
        self, interceptors: list[grpc.ServerInterceptor]
    ) -> dict[str, UnaryLane | StreamLane]:
        """The unary RPCs and ArchiveStream, each on threads of its own
        (edge/lane.py), so that no method's callers can take the threads
        another needs: Archive with as many as may be in flight and a few more
        to refuse the rest at once, each read and health checks with a few,
        ArchiveStream one a stream. A method for which this grpcio lacks what
        a lane needs stays on the pool."""
        wanted = {
            ARCHIVE_METHOD: (self.settings.max_in_flight + _LANE_SPARE, "archive"),
            **{f"/{SERVICE_NAME}/{rpc}": (_READ_THREADS, "read") for rpc in _READS},
            HEALTH_CHECK: (_HEALTH_THREADS, "health"),
        }
        lanes: dict[str, UnaryLane | StreamLane] = {}
        for method, (threads, name) in wanted.items():
            lane = UnaryLane.attach(self.server, method, interceptors, threads, name)
            if lane is not None:
                lanes[method] = lane
        # ArchiveStream: a thread a stream, a few more than may be open, to
        # refuse the rest at once.
        threads = self.settings.max_streams + _STREAM_SPARE
        streams = StreamLane.attach(
            self.server, ARCHIVE_STREAM_METHOD, self.streams.serve_lane, threads, "archive-stream"
        )
        if streams is not None:
            lanes[ARCHIVE_STREAM_METHOD] = streams
        return lanes

    def _http_listener(self) -> HttpListener | None:
        """The HTTP view, when --http-listen is set (with --workers, in worker 0 only)."""
        settings = self.settings
        if not settings.http_listen or not settings.first_worker:
            return None
        # Imported here: h11 and asyncio are only needed with --http-listen.
        from msgarchive_server.edge.http import HttpListener, TlsFiles

        tls = None
        if settings.tls_cert and settings.tls_key:
            tls = TlsFiles(settings.tls_cert, settings.tls_key, settings.tls_client_ca)
        probe_listen(settings.http_listen, flag="--http-listen")
        try:
            return HttpListener(
                settings.http_listen,
                self.reads,
                tls,
                shutdown_timeout=settings.grace_period,
                timeout=settings.http_timeout,
            )
        except OSError as err:
            reason = err.strerror or str(err)
            raise StartupError(
                f"--http-listen {settings.http_listen}: cannot listen: {reason}"
            ) from None

    def _tenant(self, url: str, retention: Retention | None, store: Store | None = None) -> Tenant:
        store = store or make_store(self.settings, url, retention)
        circuit = StoreCircuit(
            store, self._on_availability_change, max_delay=self.settings.probe_max_interval
        )
        journal, sealer = self._manifests(store)
        archiver = Archiver(
            store,
            max_message_bytes=self.settings.max_message_bytes,
            retry=self.retry,
            circuit=circuit,
            metrics=self.metrics,
            journal=journal,
        )
        reader = Reader(store, self.settings.view_tolerance)
        return Tenant(store, circuit, archiver, reader, sealer)

    def _manifests(self, store: Store) -> tuple[Journal | None, Sealer | None]:
        """The store's journal, and its sealer in the process that seals (the only
        one, or --workers' worker 0: one chain per store and writer)."""
        settings = self.settings
        if not settings.manifests_dir or not settings.manifest_signing_key:
            return None, None
        # Imported here: cryptography and pyarrow cost memory a sidecar without
        # manifests has no use for.
        from msgarchive_server.domain.manifests.heads import Ed25519FileSigner
        from msgarchive_server.domain.manifests.sealer import Sealer, journal_directory
        from msgarchive_server.domain.manifests.timestamps import Timestamper

        try:
            signer = Ed25519FileSigner.from_file(Path(settings.manifest_signing_key))
        except (OSError, ValueError) as err:
            raise StartupError(
                f"--manifest-signing-key {settings.manifest_signing_key}: {err}"
            ) from None
        directory = journal_directory(Path(settings.manifests_dir), store.bucket, store.prefix)
        try:
            journal = Journal(
                directory, writer=f"w{settings.worker or 0}", on_change=self._on_availability_change
            )
            if not settings.first_worker:
                return journal, None
            writer = settings.manifest_writer or socket.gethostname()
            # On a full disk this starts anyway, NOT_SERVING: sealing frees space.
            witnesses = settings.witnesses
            for witness in witnesses:
                self.metrics.witness_configured(witness.name)
            timestamper = None
            if settings.timestamp_url:
                timestamper = Timestamper(settings.timestamp_url)
                self.metrics.timestamp_configured()
            return journal, Sealer(
                store, journal, signer, writer, witnesses=witnesses,
                on_witness=self.metrics.witness_answered, timestamper=timestamper,
                on_timestamp=self.metrics.timestamp_answered,
            )  # fmt: skip
        except OSError as err:
            raise StartupError(
                f"--manifests-dir {settings.manifests_dir}: {err.strerror or err}"
            ) from None

    @property
    def store(self) -> Store:
        """The (first) store: the only one without an accounts file."""
        return self.tenants[0].store

    @property
    def archiving_available(self) -> bool:
        """True while any store takes writes and its journal has room."""
        return any(tenant.takes_archives for tenant in self.tenants)

    def start(self) -> None:
        for tenant in self.tenants:
            if tenant.sealer is not None:
                tenant.sealer.start()
        self.server.start()
        for lane in self.lanes.values():
            lane.start()
        if self.http is not None:
            self.http.start()
        self._set_health(serving=self.archiving_available)

    def stop(self, grace: float) -> None:
        """Drain: health turns NOT_SERVING, new calls are refused, in-flight
        calls get `grace` seconds to finish."""
        self.draining = True
        # Refuse new calls first, then tell health watchers (their streams are
        # in flight and still hear it): no call is taken once NOT_SERVING shows.
        stopped = self.server.stop(grace)
        if self.http is not None:
            self.http.stop()  # returns once its requests in progress are answered
        self.health.enter_graceful_shutdown()
        for tenant in self.tenants:
            tenant.circuit.stop()
        stopped.wait()
        # The server has stopped: a lane call still running (cancelled after the
        # grace) ends within its deadline's budget; wait as long again.
        deadline = time.monotonic() + grace
        for lane in self.lanes.values():
            lane.join(max(deadline - time.monotonic(), 0.0))
        self.streams.close()
        for tenant in self.tenants:
            if tenant.archiver.journal is not None:
                tenant.archiver.journal.close()
            if tenant.sealer is not None:
                tenant.sealer.stop()
                # With --workers the supervisor seals once every worker is done.
                if not self.settings.is_worker:
                    self._seal_now(tenant.sealer)
        self.close_scrape()
        for tenant in self.tenants:
            tenant.store.close()

    def close_scrape(self) -> None:
        """Stop serving /metrics (a scrape in progress gets a second)."""
        if self.scrape is not None:
            self.scrape.stop(1)
            self.scrape = None

    @staticmethod
    def _seal_now(sealer: Sealer) -> None:
        try:
            sealed = sealer.seal_now()
        except OSError as err:
            log.error(
                "sealing at shutdown failed; the journal keeps the entries",
                error=err.strerror or str(err),
            )
        except Exception:
            # The journal stays on disk: the next start, or msgarchive seal, seals it.
            log.exception("sealing at shutdown failed; the journal keeps the entries")
        else:
            log.info("sealed at shutdown", hours=len(sealed))

    def _on_availability_change(self, serving: bool) -> None:
        """A store's circuit or a journal's disk changed: metrics and health follow."""
        self._report_availability()
        self._set_health(serving=self.archiving_available)

    def _report_availability(self) -> None:
        for tenant in self.tenants:
            bucket = tenant.store.bucket
            self.metrics.store_available.labels(bucket).set(0 if tenant.circuit.is_open else 1)
            journal = tenant.archiver.journal
            if journal is not None:
                self.metrics.journal_full.labels(bucket).set(1 if journal.full else 0)

    def _set_health(self, *, serving: bool) -> None:
        if self.draining:
            return
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for service in ("", SERVICE_NAME):
            self.health.set(service, status)


def server_credentials(settings: Settings) -> grpc.ServerCredentials | None:
    """TLS credentials (mTLS with a client CA), or None for plaintext."""
    if not settings.tls_cert or not settings.tls_key:
        return None
    files = {"--tls-cert": settings.tls_cert, "--tls-key": settings.tls_key}
    if settings.tls_client_ca:
        files["--tls-client-ca"] = settings.tls_client_ca
    pem = {}
    for flag, path in files.items():
        try:
            pem[flag] = Path(path).read_bytes()
        except OSError as err:
            raise StartupError(f"{flag} {path}: {err.strerror}") from None
        if b"-----BEGIN" not in pem[flag]:
            raise StartupError(f"{flag} {path}: not a PEM file")
    return grpc.ssl_server_credentials(
        [(pem["--tls-key"], pem["--tls-cert"])],
        root_certificates=pem.get("--tls-client-ca"),
        require_client_auth="--tls-client-ca" in pem,
    )


def build_server(settings: Settings, store: Store | None = None) -> Sidecar:
    """The sidecar for `settings`, bound to its address but not started.

    With ``--listen 127.0.0.1:0`` the port is chosen by the OS; `Sidecar.port`
    tells which. `store` replaces the default store (tests pass their own).
    """
    return Sidecar(settings, store)


def check_store(sidecar: Sidecar) -> None:
    """Probe every store at startup, with the archive retry policy.

    An unusable local directory stops startup. A remote store that refuses the
    credentials, lacks the bucket, or denies every write opens its circuit:
    its account gets FAILED_PRECONDITION (and with one store, the sidecar
    serves NOT_SERVING) until the store accepts writes. A store that is merely
    unreachable is logged; writes retry and fail closed.
    """
    for tenant in sidecar.tenants:
        try:
            with_retries(sidecar.retry, None, tenant.store.probe)
        except RetriesExhausted as err:
            if not opens_circuit(err, sidecar.retry):
                log.warning(
                    "store check failed", store_error=err.error.code, bucket=tenant.store.bucket
                )
            elif tenant.store.remote:
                tenant.circuit.trip(err.error)
            else:
                raise StartupError(f"store {tenant.store.bucket}: {err.error}") from None


def probe_listen(address: str, reuse_port: bool = False, flag: str = "--listen") -> None:
    """Raise StartupError naming why `address` cannot be listened on.

    gRPC's own bind failure only says "Failed to bind"; this says why (address
    in use, no such directory, unknown host) in one line.
    """
    try:
        where = addresses.parse(address)
    except addresses.BadAddress as err:
        raise StartupError(f"{flag} {address}: {err}") from None
    if where.unix:
        path = Path(where.path)
        if not path.parent.is_dir():
            raise StartupError(f"{flag} {address}: no such directory {path.parent}")
        return
    try:
        infos = socket.getaddrinfo(where.host, where.port, type=socket.SOCK_STREAM)
        family, kind, proto, _, sockaddr = infos[0]
        with socket.socket(family, kind, proto) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse_port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind(sockaddr)
    except OSError as err:
        reason = err.strerror or str(err)
        raise StartupError(f"{flag} {address}: cannot listen: {reason}") from None


def seal(settings: Settings) -> int:
    """Seal every journaled hour through the current one, for every store: what
    a stopping sidecar does, for a journal that a crashed or removed one left,
    and for --workers' supervisor once its workers are done."""
    if not settings.manifests_dir:
        raise StartupError("seal needs --manifests-dir and --manifest-signing-key")
    from msgarchive_server.domain.manifests.sealer import SealConflict

    # The stores, journals and sealers, without the sidecar's ports: it may run
    # beside a live sidecar.
    quiet = dataclasses.replace(
        settings, listen="127.0.0.1:0", metrics_listen=None, http_listen=None, workers=1
    )
    sidecar = build_server(quiet)
    try:
        for tenant in sidecar.tenants:
            if tenant.sealer is not None:
                try:
                    hours = tenant.sealer.seal_now()
                except (StoreError, SealConflict) as err:
                    raise StartupError(f"store {tenant.store.bucket}: cannot seal: {err}") from None
                except OSError as err:
                    raise StartupError(
                        f"--manifests-dir {settings.manifests_dir}: cannot seal: "
                        f"{err.strerror or err}; rerun once the disk has room"
                    ) from None
                log.info("sealed", bucket=tenant.store.bucket, hours=len(hours))
    finally:
        for tenant in sidecar.tenants:
            if tenant.archiver.journal is not None:
                tenant.archiver.journal.close()
            tenant.store.close()
        sidecar.close_scrape()
    return 0


def serve(settings: Settings) -> int:
    """Run the sidecar until SIGTERM or SIGINT, then drain; the exit code."""
    if settings.workers > 1:
        return supervise(settings)
    try:
        tracing.configure()
    except tracing.TracingConfigError as err:
        raise StartupError(str(err)) from None
    sidecar = build_server(settings)
    check_store(sidecar)
    store = sidecar.store
    with StopSignals() as signals:
        sidecar.start()
        log.info(
            "serving",
            listen=settings.listen,
            port=None if addresses.parse(settings.listen).unix else sidecar.port,
            store=type(store).__name__,
            bucket=store.bucket,
            prefix=store.prefix,
            accounts=len(sidecar.accounts.accounts),
            pid=os.getpid(),
            tls="mtls" if settings.tls_client_ca else "tls" if settings.tls_cert else "off",
            metrics_port=sidecar.metrics_port or None,
            http_port=sidecar.http.port if sidecar.http else None,
            tracing=tracing.enabled(),
            archiving_available=sidecar.archiving_available,
        )
        signals.wait()
        log.info("draining", grace_seconds=settings.grace_period)
        sidecar.stop(settings.grace_period)
        tracing.shutdown()  # exports the spans still buffered
    log.info("stopped")
    return 0
