"""The rules a field is held to: its patterns, its normalizations, and how a
broken rule is reported (`FieldViolation`, naming the field, never its value).

The ground floor of validation: the request's own checks
(`msgarchive.validation`) and each channel's (`msgarchive.channels`) are
written with these.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import NamedTuple

CAMPAIGN_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,128}")
BATCH_ID_PATTERN = re.compile(r"[0-9]{8}")
# Separators people write inside phone numbers; removed before counting digits.
PHONE_SEPARATORS = re.compile(r"[\s().-]")
PHONE_PATTERN = re.compile(r"[0-9]{8,15}")
# Pragmatic, not RFC 5322: one @, no spaces, a dotted domain of sane labels.
EMAIL_PATTERN = re.compile(
    r"[^@\s]{1,64}@(?=.{1,253}$)(?:[^@\s.]{1,63}\.)+[^@\s.0-9][^@\s.]{0,62}",
)
MAX_ID_LENGTH = 256

# What a campaign id must be: it is a folder of the key.
CAMPAIGN_ID_RULE = "must be 1 to 128 characters of A-Z a-z 0-9 _ -"
EMAIL_RULE = "must be an email address"
PHONE_RULE = "must be a phone number with country code: 8 to 15 digits"


class FieldViolation(NamedTuple):
    """One bad field: its proto path and what is wrong with it (never its value)."""

    field: str
    description: str


def summarize(found: Iterable[FieldViolation]) -> str:
    """The violations in one line, for a status message: ``field problem; ...``."""
    return "; ".join(f"{v.field} {v.description}" for v in found)


def normalize_phone(number: str) -> str:
    """A phone number in country-code format: digits only, no ``+``."""
    digits = PHONE_SEPARATORS.sub("", number.strip())
    return digits.removeprefix("+")


def normalize_email(address: str) -> str:
    """An email address as it is hashed: trimmed and lowercased."""
    return address.strip().lower()


def is_campaign_id(value: str) -> bool:
    return CAMPAIGN_ID_PATTERN.fullmatch(value) is not None


def is_email(address: str) -> bool:
    return EMAIL_PATTERN.fullmatch(address.strip()) is not None


def is_phone(normalized: str) -> bool:
    """Whether a number already normalized (`normalize_phone`) is one."""
    return PHONE_PATTERN.fullmatch(normalized) is not None


def parse_json_object(text: str) -> str | None:
    """Why `text` is not a JSON object, or None when it is one."""

    def reject_constant(name: str) -> object:
        raise ValueError(f"{name} is not valid JSON")

    try:
        value = json.loads(text, parse_constant=reject_constant)
    except RecursionError:
        return "is nested too deeply"
    except json.JSONDecodeError as err:
        # Where, not what: no message content leaks into the error.
        return f"is not valid JSON: {err.msg} (line {err.lineno}, column {err.colno})"
    except ValueError as err:
        return f"is not valid JSON: {err}"
    if not isinstance(value, dict):
        return f"must be a JSON object, not a JSON {type(value).__name__}"
    return None


def check_id(found: list[FieldViolation], field: str, value: str, *, required: bool) -> bool:
    """Check an identifier: present (when required) and of bounded length."""
    if not value.strip():
        if required:
            found.append(FieldViolation(field, "is required"))
        return False
    if len(value) > MAX_ID_LENGTH:
        found.append(FieldViolation(field, f"must be at most {MAX_ID_LENGTH} characters"))
        return False
    return True
