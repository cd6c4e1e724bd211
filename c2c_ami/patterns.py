"""The syntax of every value the gateway accepts, one pattern each.

Request validation (``api/schemas.py``), the config loader and the OpenAPI document all read
these, so a rule is written once and the documentation cannot drift from the check.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Pattern:
    """A full-match regular expression and the rule it enforces, in words for error messages."""
    regex: str
    rule: str
    compiled: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "compiled", re.compile(self.regex))

    def fullmatch(self, value: str) -> bool:
        return self.compiled.fullmatch(value) is not None

    @property
    def anchored(self) -> str:
        """The pattern as OpenAPI and JSON Schema expect it (they search, not full-match)."""
        return f"^{self.regex}$"


# Request parameters (each may reach AMI, so none admits a control character, quote or comma).
EXTENSION = Pattern(r"[A-Za-z0-9_.-]{1,32}", "1-32 letters, digits, '.', '_' or '-'")
PHONE_DIGITS = Pattern(r"[0-9]{3,20}", "3-20 digits (spaces, dots, dashes, parentheses and a "
                                       "leading + are allowed and removed)")
PHONE_FORMATTING = re.compile(r"[ .\-()]")   # removed from a phone number before it is checked
CID_NUMBER = Pattern(r"\+?[0-9]{1,20}", "1-20 digits with an optional leading +")
HOTLINE = Pattern(r"\+?[0-9]{2,20}", "a phone number (2-20 digits, optional leading +)")
CALL_ID = Pattern(r"[A-Za-z0-9._-]{1,64}", "1-64 letters, digits, '.', '_' or '-'")
CUSTOMER_ID = Pattern(r"[A-Za-z0-9._:@-]{1,64}", "1-64 letters, digits, '.', '_', '-', ':' or '@'")
# GET /v1/cdr/{id}: a call_id or a SIP Call-ID (which may hold '@' and other punctuation)
CDR_ID = Pattern(r"[\x21-\x7e]{1,255}", "a call_id or a SIP Call-ID: 1-255 printable ASCII characters")
# GET /v1/blacklist/{id}: an entry's id or a number in any of its forms
BLACKLIST_ID = Pattern(r"[A-Za-z0-9+ ._()-]{1,64}", "an entry's id or a phone number (1-64 characters)")
IDEMPOTENCY_KEY = Pattern(r"[A-Za-z0-9_.:-]{1,128}", "1-128 letters, digits, '.', '_', ':' or '-'")
HOOK_ID = Pattern(r"[0-9a-f-]{36}", "a webhook id")
HOOK_SECRET = Pattern(r"[\x21-\x7e]{16,256}", "16-256 printable ASCII characters without spaces")
HOOK_URL = Pattern(r"[\x21-\x7e]{1,2000}", "an http(s) URL without spaces or control characters")
# Sent to the receiver as X-Api-Key and Authorization: Bearer, so nothing that could end a header.
HOOK_API_KEY = Pattern(r"[\x21-\x7e]{1,512}", "1-512 printable ASCII characters without spaces "
                                               "or control characters")
NAME_MAX_LENGTH = 64                          # caller-ID names; their characters: api/schemas.py
NAME_PUNCTUATION = frozenset(" .-_'@+")       # allowed in names besides letters and digits

# Configuration values.
BUNDLE_NAME = Pattern(r"[a-z0-9][a-z0-9_-]{0,31}", "1-32 lower-case letters, digits, '_' or '-', "
                      "starting with a letter or digit")
CONFIG_NAME = Pattern(r"[A-Za-z0-9_.-]{1,80}", "1-80 letters, digits, '.', '_' or '-'")
ENDPOINT = Pattern(r"[A-Za-z0-9_/@.-]*\{ext\}[A-Za-z0-9_/@.-]*",
                   "must contain {ext} and only letters, digits, / @ . _ -")
AMI_TEXT = Pattern(r"[\x21-\x7e]{1,200}", "must be printable ASCII without spaces")
TOKEN = Pattern(r"[\x21-\x7e]{1,512}", "a token is printable ASCII without spaces")
# A configured secret (tenants[].tokens, tenants[].api_keys, metrics.token): long enough that
# guessing it, at the failed-authentication limit, is hopeless.
MIN_TOKEN_LENGTH = 16
CONFIG_TOKEN = Pattern(rf"[\x21-\x7e]{{{MIN_TOKEN_LENGTH},512}}",
                       f"{MIN_TOKEN_LENGTH}-512 printable ASCII characters without spaces, or sha256:<64 hex digits>")
SIGNING_SECRET = Pattern(r"[\x21-\x7e]{32,512}", "32-512 printable ASCII characters without spaces")
TOKEN_DIGEST = Pattern(r"sha256:([0-9a-f]{64})", "sha256: and 64 lowercase hex digits")
SIP_HEADER_NAME = Pattern(r"[A-Za-z][A-Za-z0-9-]{0,40}", "not a SIP header name")
SIP_HEADER_VALUE = Pattern(r"[\x20\x21\x23-\x2b\x2d-\x5b\x5d-\x7e]{1,200}",
                           "value must be printable ASCII without commas, quotes or backslashes "
                           "(AMI's Variable parsing and SIPADDHEADER would alter them)")
