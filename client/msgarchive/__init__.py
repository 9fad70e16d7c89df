"""msgarchive: archive every campaign message before it is sent.

The client library senders import. It talks to the msgarchive sidecar over
gRPC and never needs AWS credentials or boto3.
"""

from msgarchive.client import ArchiveClient, AsyncArchiveClient
from msgarchive.errors import (
    ArchiveFailed,
    ArchiveUnavailable,
    DeadlineExceeded,
    InvalidMessage,
    MsgArchiveError,
    NotFound,
    PermissionDenied,
    RateLimited,
    Unauthenticated,
)
from msgarchive.keys import ArchiveLocation, locate
from msgarchive.v1.archive_service_pb2 import (
    ArchiveRequest,
    ArchiveResponse,
    EmailMessage,
    Platform,
    PushMessage,
    SmsMessage,
    WhatsAppMessage,
)

__all__ = [
    "ArchiveClient",
    "ArchiveFailed",
    "ArchiveLocation",
    "ArchiveRequest",
    "ArchiveResponse",
    "ArchiveUnavailable",
    "AsyncArchiveClient",
    "DeadlineExceeded",
    "EmailMessage",
    "InvalidMessage",
    "MsgArchiveError",
    "NotFound",
    "PermissionDenied",
    "Platform",
    "PushMessage",
    "RateLimited",
    "SmsMessage",
    "Unauthenticated",
    "WhatsAppMessage",
    "locate",
]
