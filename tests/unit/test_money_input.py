"""What people type into amount fields, parsed once for every form."""

import pytest

from marketplace.money import MAX_AMOUNT, parse_user_amount


@pytest.mark.parametrize(
    ("text", "cents"),
    [("12.34", 1234), ("1,234.50", 123450), (" 7 ", 700), (".5", 50), ("+3", 300), ("10000000000", MAX_AMOUNT)],
)
def test_accepts_plain_amounts(text, cents):
    assert parse_user_amount(text) == cents


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "Enter an amount, for example 12.34."),
        (None, "Enter an amount, for example 12.34."),
        ("abc", "Enter the amount as a number"),
        ("1e999999999", "Enter the amount as a number"),
        ("1,23.00", "Enter the amount as a number"),
        ("1.234", "at most two decimal places"),
        ("0", "must be more than zero"),
        ("-5", "must be more than zero"),
        ("10000000000.01", "too large"),
        ("9" * 41, "Enter the amount as a number"),
    ],
)
def test_rejects_with_a_sentence(text, message):
    with pytest.raises(ValueError, match=message.replace(".", r"\.")):
        parse_user_amount(text)


def test_names_the_field_it_parses():
    with pytest.raises(ValueError, match=r"^Enter a price, for example 7\.50\.$"):
        parse_user_amount("", what="price", example="7.50")
