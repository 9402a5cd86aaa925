from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mimgw import InvalidMessageError, normalize_number

BD_FORMS = [
    "01712345678",
    "8801712345678",
    "+8801712345678",
    "008801712345678",
    "+880 1712 345678",
    "+880-1712-345678",
    "01712-345678",
    "(+880) 1712345678",
    " 01712345678 ",
]


@pytest.mark.parametrize("form", BD_FORMS)
def test_every_common_bangladeshi_form(form: str) -> None:
    assert normalize_number(form) == "8801712345678"


@pytest.mark.parametrize(
    ("number", "expected"),
    [
        ("01812345678", "8801812345678"),  # Robi
        ("01912345678", "8801912345678"),  # Banglalink
        ("01512345678", "8801512345678"),  # Teletalk
        ("01312345678", "8801312345678"),  # Grameenphone 013
        ("01612345678", "8801612345678"),  # Airtel
    ],
)
def test_operators(number: str, expected: str) -> None:
    assert normalize_number(number) == expected


@pytest.mark.parametrize(
    ("number", "expected"),
    [
        ("+14155552671", "14155552671"),
        ("0014155552671", "14155552671"),
        ("+447911123456", "447911123456"),
        ("385981234567", "385981234567"),  # bare international digits
    ],
)
def test_foreign_numbers_become_e164_digits(number: str, expected: str) -> None:
    assert normalize_number(number) == expected


@pytest.mark.parametrize(
    "number",
    ["", "   ", "123", "0171234567", "017123456789", "abc", "+880171234567x", "++8801712345678"],
)
def test_invalid_numbers_raise(number: str) -> None:
    with pytest.raises(InvalidMessageError):
        normalize_number(number)


def test_non_string_raises_typed_error() -> None:
    with pytest.raises(InvalidMessageError):
        normalize_number(1712345678)  # type: ignore[arg-type]


@given(st.text(max_size=30))
def test_any_text_is_a_number_or_a_typed_error(text: str) -> None:
    try:
        result = normalize_number(text)
    except InvalidMessageError:
        return
    assert result.isdigit()
