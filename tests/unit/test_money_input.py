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


@pytest.mark.parametrize(
    ("typed", "normal"),
    [
        ("1.234,56", "1234.56"),
        ("1 234,56", "1234.56"),
        ("1\u00a0234,56", "1234.56"),
        ("1234,5", "1234.5"),
        ("7,25", "7.25"),
        ("7.25", "7.25"),
        ("1.234", "1234"),
        ("12.345.678", "12345678"),
        ("1.5", "1.5"),
        ("1,2,3", "1.2.3"),
        ("", ""),
    ],
)
def test_decimal_comma_input_is_read_as_people_mean_it(typed, normal):
    from marketplace.money import normalize_decimal_comma

    assert normalize_decimal_comma(typed) == normal


def test_decimal_comma_amounts_parse_exactly():
    from marketplace.money import normalize_decimal_comma

    assert parse_user_amount(normalize_decimal_comma("1.234,56")) == 123_456
    assert parse_user_amount(normalize_decimal_comma("0,01")) == 1
    with pytest.raises(ValueError):
        parse_user_amount(normalize_decimal_comma("1,2,3"))
    with pytest.raises(ValueError):
        parse_user_amount(normalize_decimal_comma("1,234"))  # three decimals are never money
