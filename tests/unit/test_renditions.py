"""Renditions of a copy for people: the EML, the text, the inert page."""

from __future__ import annotations

import email
import email.policy
import json

from msgarchive import channels
from msgarchive.channels import address
from msgarchive_server.domain import renditions
from msgarchive_server.domain.payloads import render
from tests import samples


def fields_of(channel: str, **email_fields: str) -> dict[str, object]:
    request = samples.REQUESTS[channel]()
    for name, value in email_fields.items():
        setattr(request.email, name, value)
    copy: dict[str, object] = json.loads(
        render(address(request), message_id="m" * 64, sent_at_ms=1)
    )
    return copy


def test_every_channel_has_a_text() -> None:
    assert set(renditions.RENDITIONS) == set(channels.CHANNELS)
    assert renditions.text("sms", fields_of("sms")) == samples.sms_request().sms.body
    assert "Flat 20% off" in renditions.text("push", fields_of("push"))


def test_an_email_is_a_message_mail_tools_read_with_its_bodies_in_order() -> None:
    fields = fields_of("email", amp_body="<html amp4email>AMP</html>")
    message = email.message_from_bytes(renditions.eml(fields), policy=email.policy.default)
    assert [p.get_content_type() for p in message.iter_parts()] == [
        "text/plain", "text/x-amp-html", "text/html"
    ]  # fmt: skip
    assert message["Message-ID"].strip() == f"<{'m' * 64}@msgarchive>"  # may be folded
    assert message["Date"] == "Thu, 01 Jan 1970 00:00:00 +0000"
    assert renditions.eml(fields) == renditions.eml(fields)  # no random boundary


def test_a_page_loads_and_runs_nothing_and_shows_html_as_text() -> None:
    fields = fields_of(
        "email", html_body='<img src="https://tracker.example/p.gif"><script>x()</script>'
    )
    page = renditions.item_page("MSG000001", "email", fields, {"native": "native.json.lz4"})
    assert "default-src 'none'" in page
    assert "<img" not in page
    assert "<script>" not in page
    assert "&lt;script&gt;x()&lt;/script&gt;" in page
