"""Phone numbers as one number, whatever way they are written: E.164 by region.

A tenant's ``default_region`` (ISO 3166 alpha-2, e.g. ``VN``) says how a number without its
country code is read: in VN ``0899990988``, ``+84899990988``, ``84899990988`` and
``0084899990988`` are all ``+84899990988``. Google's libphonenumber (the ``phonenumbers``
package) knows each country's trunk prefix and number lengths; no rule is written by hand.
Without a region only numbers written with ``+`` are read as international; the others are
compared digit for digit.
"""
from __future__ import annotations

import phonenumbers

_FORMATTING = str.maketrans("", "", " .-()")


def known_region(region: str) -> bool:
    """Whether ``region`` is a region phonenumbers knows (``VN``, ``US``...)."""
    return region in phonenumbers.SUPPORTED_REGIONS


def number_key(number: str, region: str | None) -> str:
    """The one form a number is compared in: E.164 (``+84899990988``) when it can be read
    with ``region`` (or carries ``+``), else its digits (formatting removed)."""
    text = number.translate(_FORMATTING)
    digits = text.removeprefix("+")
    if not digits.isdigit():
        return text
    if region is None and not text.startswith("+"):
        return digits
    try:
        parsed = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return digits
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def is_possible(number: str, region: str | None) -> bool:
    """Whether ``number`` can be a phone number of ``region`` (its length is one a number
    there may have); without a region, any 3-20 digits are."""
    text = number.translate(_FORMATTING)
    digits = text.removeprefix("+")
    if not digits.isdigit() or not 3 <= len(digits) <= 20:
        return False
    if region is None and not text.startswith("+"):
        return True
    try:
        return phonenumbers.is_possible_number(phonenumbers.parse(text, region))
    except phonenumbers.NumberParseException:
        return False


def example_number(region: str | None) -> str:
    """A number as a customer of ``region`` would dial it (national format digits, e.g. VN
    ``0912345678``): what the PBX check asks the dialplan to match."""
    if region is not None:
        example = phonenumbers.example_number_for_type(region, phonenumbers.PhoneNumberType.MOBILE)
        if example is not None:
            national = phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.NATIONAL)
            return "".join(ch for ch in national if ch.isdigit())
    return "0123456789"
