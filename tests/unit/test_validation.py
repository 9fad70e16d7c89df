"""Every bad-input case of the contract is refused, naming the field."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from msgarchive.v1 import archive_service_pb2 as pb
from msgarchive.validation import normalize_phone, violations
from tests import samples

Mutation = Callable[[pb.ArchiveRequest], None]


def _set(path: str, value: object) -> Mutation:
    def mutate(request: pb.ArchiveRequest) -> None:
        *parents, name = path.split(".")
        target = request
        for parent in parents:
            target = getattr(target, parent)
        setattr(target, name, value)

    return mutate


def _partial_journey(request: pb.ArchiveRequest) -> None:
    request.journey_id = "7"
    request.journey_name = "Welcome"


def _clear_channel(request: pb.ArchiveRequest) -> None:
    request.ClearField(request.WhichOneof("message"))  # type: ignore[arg-type]


CASES: list[tuple[str, Callable[[], pb.ArchiveRequest], Mutation, str]] = [
    ("no channel", samples.sms_request, _clear_channel, "message"),
    ("no account", samples.sms_request, _set("account_id", ""), "account_id"),
    ("blank account", samples.sms_request, _set("account_id", "   "), "account_id"),
    ("no campaign id", samples.sms_request, _set("campaign_id", ""), "campaign_id"),
    ("no campaign name", samples.sms_request, _set("campaign_name", ""), "campaign_name"),
    ("no batch id", samples.sms_request, _set("batch_id", ""), "batch_id"),
    ("batch id 30 Feb", samples.sms_request, _set("batch_id", "20240230"), "batch_id"),
    ("batch id month 13", samples.sms_request, _set("batch_id", "20241301"), "batch_id"),
    ("batch id short", samples.sms_request, _set("batch_id", "202409"), "batch_id"),
    ("batch id letters", samples.sms_request, _set("batch_id", "2024O901"), "batch_id"),
    ("no created time", samples.sms_request, _set("created_at_ms", 0), "created_at_ms"),
    ("negative created", samples.sms_request, _set("created_at_ms", -5), "created_at_ms"),
    ("no identity", samples.sms_request, _set("customer_identity", ""), "customer_identity"),
    ("campaign slash", samples.sms_request, _set("campaign_id", "a/b"), "campaign_id"),
    ("campaign dotdot", samples.sms_request, _set("campaign_id", ".."), "campaign_id"),
    ("campaign space", samples.sms_request, _set("campaign_id", "a b"), "campaign_id"),
    ("campaign 129", samples.sms_request, _set("campaign_id", "a" * 129), "campaign_id"),
    ("journey partial", samples.sms_request, _partial_journey, "journey_node_id"),
    ("sms no recipient", samples.sms_request, _set("sms.to", ""), "sms.to"),
    ("sms 7 digits", samples.sms_request, _set("sms.to", "+1555555"), "sms.to"),
    ("sms 16 digits", samples.sms_request, _set("sms.to", "1" * 16), "sms.to"),
    ("sms letters", samples.sms_request, _set("sms.to", "+1 555 CALL NOW"), "sms.to"),
    ("sms no body", samples.sms_request, _set("sms.body", ""), "sms.body"),
    ("wa bad phone", samples.whatsapp_request, _set("whatsapp.to", "12-34"), "whatsapp.to"),
    ("email no recipient", samples.email_request, _set("email.to", ""), "email.to"),
    ("email no at", samples.email_request, _set("email.to", "jane.example.com"), "email.to"),
    ("email two ats", samples.email_request, _set("email.to", "a@b@example.com"), "email.to"),
    ("email space", samples.email_request, _set("email.to", "jane doe@example.com"), "email.to"),
    ("email no tld", samples.email_request, _set("email.to", "jane@localhost"), "email.to"),
    ("email no from", samples.email_request, _set("email.from_address", ""), "email.from_address"),
    ("push no token", samples.push_request, _set("push.to", ""), "push.to"),
    ("push no payload", samples.push_request, _set("push.payload_json", ""), "push.payload_json"),
    ("push array", samples.push_request, _set("push.payload_json", "[1,2]"), "push.payload_json"),
    ("push string", samples.push_request, _set("push.payload_json", '"hi"'), "push.payload_json"),
    ("push broken", samples.push_request, _set("push.payload_json", '{"a":'), "push.payload_json"),
    ("push NaN", samples.push_request, _set("push.payload_json", '{"a":NaN}'), "push.payload_json"),
    ("push platform", samples.push_request, _set("push.platform", 0), "push.platform"),
    ("push platform 9", samples.push_request, _set("push.platform", 9), "push.platform"),
]


@pytest.mark.parametrize(
    ("factory", "mutate", "field"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_bad_input_names_the_field(
    factory: Callable[[], pb.ArchiveRequest], mutate: Mutation, field: str
) -> None:
    request = factory()
    assert violations(request) == []
    mutate(request)
    found = violations(request)
    assert [v.field for v in found] == [field]
    assert found[0].description


def test_bad_cc_names_its_index() -> None:
    request = samples.email_request()
    request.email.cc.append("not an address")
    assert [v.field for v in violations(request)] == ["email.cc[1]"]


def test_every_problem_is_listed_at_once() -> None:
    request = samples.sms_request(account_id="", batch_id="2024")
    request.sms.to = "1"
    assert [v.field for v in violations(request)] == ["account_id", "batch_id", "sms.to"]


def test_descriptions_do_not_echo_values() -> None:
    request = samples.push_request()
    request.push.payload_json = '{"secret-token-value": }'
    (found,) = violations(request)
    assert "secret-token-value" not in found.description
    assert "line 1" in found.description


@pytest.mark.parametrize(
    ("given", "digits"),
    [
        ("+1 (555) 555-5555", "15555555555"),
        ("44.20.7946.0018", "442079460018"),
        ("15555555555", "15555555555"),
    ],
)
def test_phone_normalization(given: str, digits: str) -> None:
    assert normalize_phone(given) == digits


def test_valid_edge_values_pass() -> None:
    request = samples.sms_request(campaign_id="A_b-9" * 25 + "xyz", batch_id="20240229")
    assert len(request.campaign_id) == 128
    request.sms.to = "12345678"
    assert violations(request) == []
