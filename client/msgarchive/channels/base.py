"""What a channel is: the one shape every channel module fills in."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

from msgarchive.rules import FieldViolation
from msgarchive.v1 import archive_service_pb2 as pb


@dataclass(frozen=True, slots=True)
class RawJSON:
    """JSON text that is written into the copy as it is."""

    text: str


JSONValue = str | int | list[str] | dict[str, str] | RawJSON
CopyFields = list[tuple[str, JSONValue]]
# A channel's view events: event name -> the platforms that agree with it.
Events = Mapping[str, frozenset[str]]


def user_id(request: pb.ArchiveRequest) -> str:
    """The device identity when present, else the customer identity."""
    return request.device_identity or request.customer_identity


@dataclass(frozen=True, slots=True)
class Addressed:
    """A request with its channel known and its recipient normalized, once."""

    request: pb.ArchiveRequest
    channel: Channel
    to: str  # the message's address as the copy writes it
    recipient: str  # the identity the key's user hash is taken of


class Channel(ABC):
    """One channel: its names, its checks, its recipient, its message id, its copy.

    A channel is one module of this package holding one instance of a subclass;
    `msgarchive.channels` lists them. Methods taking an `Addressed` are given a
    request of this channel only.
    """

    name: ClassVar[str]  # the ArchiveRequest oneof field; the name used everywhere else
    folder: ClassVar[str]  # its folder in the key
    enum: ClassVar[pb.Channel.ValueType]  # the API's Channel value
    # The view API's events of this channel: event name -> the platforms that
    # agree with it, as the view API writes them (upper case; "" for none given).
    events: ClassVar[Events]
    # The platforms a copy of this channel names, as the copy writes them; a
    # channel with none has one platform, itself.
    platforms: ClassVar[tuple[str, ...]] = ()
    # How a recipient is written, for people (help texts and errors).
    recipient_kind: ClassVar[str]

    @property
    def api_name(self) -> str:
        """The channel as the API's enum spells it, without its prefix: ``SMS``."""
        return pb.Channel.Name(self.enum).removeprefix("CHANNEL_")

    @abstractmethod
    def address(self, request: pb.ArchiveRequest) -> Addressed:
        """The request with its recipient normalized."""

    @abstractmethod
    def check(self, message: Addressed, found: list[FieldViolation]) -> None:
        """Append every problem of the channel's message to `found`."""

    @abstractmethod
    def lookup_identity(self, written: str) -> str | None:
        """The identity a lookup's recipient is hashed as, normalized as the key's
        is; None when `written` cannot be one (see `lookup_rule`)."""

    lookup_rule: ClassVar[str] = ""  # what lookup_identity asks of a recipient

    @abstractmethod
    def message_id_parts(self, message: Addressed) -> list[str]:
        """The message-id inputs, in the contract's order."""

    @abstractmethod
    def copy_fields(self, message: Addressed) -> CopyFields:
        """The copy's channel fields, after ``version``, in the contract's order."""

    def __repr__(self) -> str:
        return f"<channel {self.name}>"
