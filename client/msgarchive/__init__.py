"""msgarchive: archive every campaign message before it is sent.

The client library senders import. It talks to the msgarchive sidecar over
gRPC and never needs AWS credentials or boto3.
"""

from msgarchive.client import ArchiveClient, AsyncArchiveClient, StreamResult
from msgarchive.errors import (
    ArchiveFailed,
    ArchiveUnavailable,
    DataLoss,
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
    ArchivedMessageSummary,
    ArchiveRequest,
    ArchiveResponse,
    Channel,
    EmailMessage,
    GetArchivedMessageRequest,
    GetArchivedMessageResponse,
    ListArchivedMessagesRequest,
    ListArchivedMessagesResponse,
    ListOrder,
    MessageLocator,
    Platform,
    PushMessage,
    SmsMessage,
    ViewMessageRequest,
    ViewMessageResponse,
    WhatsAppMessage,
)

__all__ = [
    "ArchiveClient",
    "ArchiveFailed",
    "ArchiveLocation",
    "ArchiveRequest",
    "ArchiveResponse",
    "ArchiveUnavailable",
    "ArchivedMessageSummary",
    "AsyncArchiveClient",
    "Channel",
    "DataLoss",
    "DeadlineExceeded",
    "EmailMessage",
    "GetArchivedMessageRequest",
    "GetArchivedMessageResponse",
    "InvalidMessage",
    "ListArchivedMessagesRequest",
    "ListArchivedMessagesResponse",
    "ListOrder",
    "MessageLocator",
    "MsgArchiveError",
    "NotFound",
    "PermissionDenied",
    "Platform",
    "PushMessage",
    "RateLimited",
    "SmsMessage",
    "StreamResult",
    "Unauthenticated",
    "ViewMessageRequest",
    "ViewMessageResponse",
    "WhatsAppMessage",
    "locate",
]
