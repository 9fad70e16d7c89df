"""A copy for people who do not read JSON: its text, a page, and for email a mail message.

Every page is self-contained and inert: a Content-Security-Policy that loads
nothing and runs nothing, and the message's own content (HTML bodies
included) shown as escaped text, never rendered, so that no tracking pixel
calls home and no script runs when a reviewer opens it.
"""

from __future__ import annotations

import datetime
import email.policy
import email.utils
import html
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

from msgarchive import channels
from msgarchive.channels import Channel
from msgarchive_server.domain.describe import content_of

# What a page may do: nothing but its own inline style.
PAGE_POLICY = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"
# Headers the EML writes itself; a copy's own headers of these names are left out.
_OWN_HEADERS = {"from", "to", "cc", "bcc", "subject", "date", "message-id", "mime-version",
                "content-type", "content-transfer-encoding"}  # fmt: skip


def sent_time(fields: dict[str, Any]) -> str:
    """The copy's sent_at as ISO 8601 UTC, milliseconds kept ("" without one)."""
    sent_at = fields.get("sent_at")
    if not isinstance(sent_at, int):
        return ""
    instant = datetime.datetime.fromtimestamp(sent_at / 1000, datetime.UTC)
    return instant.isoformat(timespec="milliseconds").replace("+00:00", "Z")


# --- text --------------------------------------------------------------------------


def _email_text(fields: dict[str, Any]) -> str:
    return "\n".join(
        [f"Subject: {fields.get('subject', '')}", "", str(fields.get("plaintext_body", ""))]
    )


def _message_text(fields: dict[str, Any]) -> str:
    return str(fields.get("body", ""))


def _push_text(fields: dict[str, Any]) -> str:
    content = content_of("push", fields)
    lines = [content.get("title", ""), content.get("message", "")]
    lines += list(content.get("related_urls", []))
    return "\n".join(line for line in lines if line)


def _email_sender(fields: dict[str, Any]) -> str:
    return email.utils.formataddr(
        (str(fields.get("from_name", "")), str(fields.get("from_address", "")))
    )


def _provider(fields: dict[str, Any]) -> str:
    return str(fields.get("provider", ""))


@dataclass(frozen=True, slots=True)
class Rendition:
    """How one channel's copies are shown to people outside the archive."""

    text: Callable[[dict[str, Any]], str]  # its text, as a review tool indexes it
    sender: Callable[[dict[str, Any]], str]  # who sent it, as a load file's From
    # (field, label): bodies its page shows as source, never rendered
    sources: tuple[tuple[str, str], ...] = ()
    mail: bool = False  # also written as an RFC 5322 message (`eml`)
    conversation: bool = False  # also in an RSMF conversation, to a number


RENDITIONS: dict[Channel, Rendition] = {
    channels.PUSH: Rendition(_push_text, _provider),
    channels.EMAIL: Rendition(
        _email_text,
        _email_sender,
        sources=(("html_body", "HTML body (source)"), ("amp_body", "AMP body")),
        mail=True,
    ),
    channels.SMS: Rendition(_message_text, _provider, conversation=True),
    channels.WHATSAPP: Rendition(_message_text, _provider, conversation=True),
}


def rendition(channel: str) -> Rendition:
    """The rendition of a channel, by name."""
    return RENDITIONS[channels.named(channel)]


def text(channel: str, fields: dict[str, Any]) -> str:
    return rendition(channel).text(fields)


def sender(channel: str, fields: dict[str, Any]) -> str:
    """Who sent it, as a load file's From: the email sender, else the provider."""
    return rendition(channel).sender(fields)


# --- email as a mail message ---------------------------------------------------------


def eml(fields: dict[str, Any]) -> bytes:
    """An email copy as an RFC 5322 message: its bodies as alternatives (plain
    text, AMP, HTML, in that order: a client shows the last it can), the copy's
    own headers, and Bcc kept (an archive records who got it)."""
    message = EmailMessage(policy=email.policy.SMTP)
    message["From"] = _email_sender(fields)
    message["To"] = str(fields.get("to", ""))
    for name in ("cc", "bcc"):
        if fields.get(name):
            message[name.capitalize()] = ", ".join(str(a) for a in fields[name])
    message["Subject"] = str(fields.get("subject", ""))
    sent_at = fields.get("sent_at")
    if isinstance(sent_at, int):
        instant = datetime.datetime.fromtimestamp(sent_at / 1000, datetime.UTC)
        message["Date"] = email.utils.format_datetime(instant)
    message["Message-ID"] = f"<{fields.get('message_id', '')}@msgarchive>"
    headers = fields.get("headers")
    if isinstance(headers, dict):
        for name, value in sorted(headers.items()):
            if str(name).lower() not in _OWN_HEADERS:
                message[str(name)] = str(value)
    message.set_content(
        str(fields.get("plaintext_body", "")), subtype="plain", cte="quoted-printable"
    )
    if fields.get("amp_body"):
        message.add_alternative(
            str(fields["amp_body"]), subtype="x-amp-html", cte="quoted-printable"
        )
    message.add_alternative(
        str(fields.get("html_body", "")), subtype="html", cte="quoted-printable"
    )
    # A boundary of the copy's own (not a random one): the same copy, the same bytes.
    message.set_boundary(f"=_msgarchive_{fields.get('message_id', '')}")
    return message.as_bytes()


# --- a page ------------------------------------------------------------------------


def page(title: str, body: str) -> str:
    """A self-contained HTML page that loads nothing and runs nothing."""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{PAGE_POLICY}">\n'
        '<meta name="referrer" content="no-referrer">\n'
        f"<title>{html.escape(title)}</title>\n<style>{_STYLE}</style></head>\n"
        f"<body>\n{body}\n</body></html>\n"
    )


_STYLE = (
    "body{font:14px/1.45 system-ui,sans-serif;margin:2em;color:#1b1b1b}"
    "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.3em .6em;"
    "text-align:left;vertical-align:top}th{background:#f3f3f3}"
    "pre{white-space:pre-wrap;background:#f7f7f7;padding:1em;border:1px solid #ddd}"
)


def item_page(control: str, channel: str, fields: dict[str, Any], files: dict[str, str]) -> str:
    """One copy for a reviewer: its details, its content as sent (escaped), its files."""
    rows = [
        ("Control number", control),
        ("Channel", channel),
        ("Sent", sent_time(fields)),
        ("From", sender(channel, fields)),
        ("To", str(fields.get("to", ""))),
        ("Campaign", f"{fields.get('campaign_name', '')} ({fields.get('campaign_id', '')})"),
        ("Message id", str(fields.get("message_id", ""))),
    ]
    if fields.get("platform"):
        rows.append(("Platform", str(fields["platform"])))
    table = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in rows)
    sections = [f"<h1>{html.escape(control)}</h1>", f"<table>{table}</table>"]
    sections.append(f"<h2>Text</h2><pre>{html.escape(text(channel, fields))}</pre>")
    for name, label in rendition(channel).sources:
        if fields.get(name):
            sections.append(f"<h2>{label}</h2><pre>{html.escape(str(fields[name]))}</pre>")
    links = "".join(
        f'<li><a href="{html.escape(path)}">{html.escape(label)}</a></li>'
        for label, path in files.items()
    )
    sections.append(f"<h2>Files</h2><ul>{links}</ul>")
    return page(control, "\n".join(sections))
