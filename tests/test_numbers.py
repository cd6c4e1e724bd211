"""Phone numbers compared as one number whatever way they are written (phonenumbers)."""
import pytest

from c2c_ami.numbers import example_number, is_possible, known_region, number_key


@pytest.mark.parametrize("written", ["0899990988", "+84899990988", "84899990988", "0084899990988",
                                     "+84 899 990 988", "(089) 999-0988", "899990988"])
def test_one_number_in_vn_whatever_the_form(written):
    assert number_key(written, "VN") == "+84899990988"


def test_without_a_region_only_plus_numbers_are_international():
    assert number_key("+84899990988", None) == "+84899990988"
    assert number_key("0899990988", None) == "0899990988"
    assert number_key("84899990988", None) == "84899990988"        # digit for digit


def test_another_region_reads_the_same_digits_otherwise():
    assert number_key("0899990988", "US") != number_key("0899990988", "VN")
    assert number_key("+1 650 253 0000", "VN") == "+16502530000"


def test_possible_numbers_and_regions():
    assert is_possible("0899990988", "VN") and not is_possible("0899", "VN") and not is_possible("abc", "VN")
    assert is_possible("1234", None) and not is_possible("12", None)
    assert known_region("VN") and not known_region("XX")
    assert example_number("VN").startswith("0") and example_number(None) == "0123456789"
