"""The unit of work of one read, shared by the gRPC reads and the HTTP view.

`ReadCalls.run` authenticates the caller, rate-limits its account, runs the
read on that account's store, counts it, and binds the audit fields (account,
key or prefix) to the call's one summary log line; never message content.
`view` is the view lookup itself, answered as a `Described` copy that the gRPC
servicer and the HTTP endpoint each write in their own shape.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import structlog

from msgarchive.v1 import archive_service_pb2 as pb
from msgarchive_server.domain import describe
from msgarchive_server.domain.errors import DomainError, InternalError, WrongAccount
from msgarchive_server.domain.reads import Copy, Reader, ViewQuery
from msgarchive_server.edge.access import OPEN_ACCOUNT, Access
from msgarchive_server.edge.status import grpc_code
from msgarchive_server.telemetry.metrics import Metrics

log = structlog.get_logger("msgarchive.read")

T = TypeVar("T")


class ReadCalls:
    def __init__(self, access: Access, metrics: Metrics) -> None:
        self.access = access
        self.metrics = metrics

    def run(
        self,
        rpc: str,
        authorization: str,
        local: bool,
        read: Callable[[Reader], T],
        *,
        account_id: str = "",
    ) -> T:
        """`read` on the caller's store. Raises a `DomainError` (`InternalError`
        for a crash); `account_id`, when given, must be the credentials' account."""
        structlog.contextvars.bind_contextvars(audit=True)
        try:
            account, tenant = self.access.read_tenant(authorization, local)
            structlog.contextvars.bind_contextvars(account=account)
            if account_id and account not in (account_id, OPEN_ACCOUNT):
                raise WrongAccount("the credentials belong to another account")
            answer = read(tenant.reader)
        except DomainError as err:
            failed: DomainError = err
        except Exception:
            log.exception("read crashed")
            failed = InternalError(reading=True)
        else:
            self.metrics.reads.labels(rpc, "OK").inc()
            return answer
        self.metrics.reads.labels(rpc, grpc_code(failed).name).inc()
        raise failed


@dataclass(frozen=True, slots=True)
class Described:
    """A copy read back and what it says: the answer of a view or a get (a
    view's details also echo the request's fields)."""

    copy: Copy
    details: dict[str, Any]
    content: dict[str, Any]


def described(copy: Copy) -> Described:
    return Described(copy, describe.details(copy), describe.content(copy))


def view_query(request: pb.ViewMessageRequest) -> ViewQuery:
    return ViewQuery(
        user_id=request.user_id,
        campaign_channel=request.campaign_channel,
        campaign_id=request.campaign_id,
        sent_epoch_time=request.sent_epoch_time,
        event_name=request.event_name,
        platform=request.platform,
        delivery_type=request.delivery_type,
        campaign_type=request.campaign_type,
        event_id=request.event_id,
    )


def view(reader: Reader, request: pb.ViewMessageRequest) -> Described:
    """The copy a view request names (see `Reader.view`), described."""
    copy = reader.view(view_query(request))
    structlog.contextvars.bind_contextvars(key=copy.key)
    answer = described(copy)
    answer.details.update(
        delivery_type=request.delivery_type,
        campaign_type=request.campaign_type,
        event_id=request.event_id,
    )
    return answer
