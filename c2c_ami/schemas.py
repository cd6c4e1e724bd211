"""Request validation: the raw query string becomes a typed ``ClickToCallRequest`` or an
``InvalidParams`` naming the parameter.

Every value that can later reach AMI is checked here against a whitelist (charset, length),
so CR, LF, NUL, other control characters, Unicode separators, quotes, commas and brackets
never leave this module. The AMI client re-checks at the socket as a last guard.
"""
from __future__ import annotations

import base64
import binascii
import re
import unicodedata
from dataclasses import dataclass
from urllib.parse import parse_qsl

from .errors import InvalidParams

MAX_QUERY_LENGTH = 4096
MAX_NAME_LENGTH = 64
KNOWN_PARAMS = ("ext", "phone", "src_cid_name", "src_cid_number", "dest_cid_name",
                "dest_cid_number", "auto_answer", "hotline", "is_encode")

_EXT = re.compile(r"[A-Za-z0-9_.-]{1,32}")
_PHONE_FORMATTING = re.compile(r"[ .\-()]")
_PHONE = re.compile(r"[0-9]{3,20}")
_CID_NUMBER = re.compile(r"\+?[0-9]{1,20}")
_HOTLINE = re.compile(r"\+?[0-9]{2,20}")
_NAME_PUNCTUATION = frozenset(" .-_'@+")
_BOOLEANS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


@dataclass(frozen=True)
class ClickToCallRequest:
    """A validated click-to-call request; optional caller-ID fields are None when absent."""
    ext: str
    phone: str                       # digits only, formatting removed
    src_cid_name: str = "Click2Call"
    src_cid_number: str | None = None    # default: the ext
    dest_cid_name: str | None = None     # default: the hotline number
    dest_cid_number: str | None = None   # default: the hotline number
    auto_answer: bool = False
    hotline: str | None = None           # default: the tenant's first hotline


def parse_query(raw_query: str) -> dict[str, str]:
    """Decode a raw query string strictly: UTF-8 only, no repeated known parameter."""
    if len(raw_query) > MAX_QUERY_LENGTH:
        raise InvalidParams(f"query: longer than {MAX_QUERY_LENGTH} characters")
    try:
        pairs = parse_qsl(raw_query, keep_blank_values=True, encoding="utf-8",
                          errors="strict", max_num_fields=64)
    except UnicodeDecodeError:
        raise InvalidParams("query: not valid UTF-8 after percent-decoding") from None
    except ValueError:
        raise InvalidParams("query: too many parameters") from None
    params: dict[str, str] = {}
    for name, value in pairs:
        if name in params and name in KNOWN_PARAMS:
            raise InvalidParams(f"{name}: given more than once")
        params.setdefault(name, value)
    return params


def parse_click_to_call(params: dict[str, str]) -> ClickToCallRequest:
    """Build the request from decoded parameters; unknown parameters are ignored."""
    ext = _required(params, "ext")
    if not _EXT.fullmatch(ext):
        raise InvalidParams("ext: must be 1-32 letters, digits, '.', '_' or '-'")
    phone = _required(params, "phone")
    if parse_bool(params, "is_encode"):
        phone = _decode_base64(phone)
    return ClickToCallRequest(
        ext=ext,
        phone=normalize_phone(phone),
        src_cid_name=_name(params, "src_cid_name") or "Click2Call",
        src_cid_number=_number(params, "src_cid_number"),
        dest_cid_name=_name(params, "dest_cid_name"),
        dest_cid_number=_number(params, "dest_cid_number"),
        auto_answer=parse_bool(params, "auto_answer"),
        hotline=_hotline(params),
    )


def normalize_phone(raw: str) -> str:
    """Remove common formatting (spaces, dots, dashes, parentheses, one leading +)."""
    digits = _PHONE_FORMATTING.sub("", raw)
    if digits.startswith("+"):
        digits = digits[1:]
    if not _PHONE.fullmatch(digits):
        raise InvalidParams("phone: must be 3-20 digits (spaces, dots, dashes, parentheses "
                            "and a leading + are allowed and removed)")
    return digits


def parse_bool(params: dict[str, str], name: str) -> bool:
    value = params.get(name, "")
    if value == "":
        return False
    try:
        return _BOOLEANS[value.lower()]
    except KeyError:
        raise InvalidParams(f"{name}: must be true, false, 1, 0, yes or no") from None


def _required(params: dict[str, str], name: str) -> str:
    value = params.get(name, "")
    if value == "":
        raise InvalidParams(f"{name}: required")
    return value


def _decode_base64(value: str) -> str:
    """``is_encode=true``: phone is Base64 (standard or URL-safe alphabet, padding optional)."""
    if len(value) > 64:
        raise InvalidParams("phone: Base64 value too long")
    padded = value + "=" * (-len(value) % 4)
    try:
        alphabet_fixed = padded.replace("-", "+").replace("_", "/")
        decoded = base64.b64decode(alphabet_fixed, validate=True)
        return decoded.decode("ascii")
    except (binascii.Error, ValueError):
        raise InvalidParams("phone: is_encode is true but phone is not valid Base64 of an ASCII number") from None


def _name(params: dict[str, str], name: str) -> str | None:
    """Caller-ID names: letters (any script), digits, space and . - _ ' @ +; NFC-normalised."""
    value = params.get(name, "")
    if value == "":
        return None
    value = unicodedata.normalize("NFC", value)
    if len(value) > MAX_NAME_LENGTH:
        raise InvalidParams(f"{name}: longer than {MAX_NAME_LENGTH} characters")
    for ch in value:
        if ch in _NAME_PUNCTUATION:
            continue
        if unicodedata.category(ch)[0] not in "LMN":
            raise InvalidParams(f"{name}: character {ch!r} is not allowed "
                                "(letters, digits, space and . - _ ' @ + only)")
    if value.strip() != value or not value.strip():
        raise InvalidParams(f"{name}: must not start or end with a space")
    return value


def optional_match(params: dict[str, str], name: str, pattern: re.Pattern[str], rule: str) -> str | None:
    """An optional parameter that must fully match ``pattern``; None when absent or empty."""
    value = params.get(name, "")
    if value == "":
        return None
    if not pattern.fullmatch(value):
        raise InvalidParams(f"{name}: {rule}")
    return value


def _number(params: dict[str, str], name: str) -> str | None:
    return optional_match(params, name, _CID_NUMBER, "must be 1-20 digits with an optional leading +")


def _hotline(params: dict[str, str]) -> str | None:
    return optional_match(params, "hotline", _HOTLINE, "must be a phone number (2-20 digits, optional leading +)")
