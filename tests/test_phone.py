from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mimgw import InvalidMessageError, normalize_number
from mimgw.phone import region_of

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


@pytest.mark.parametrize(
    "number",
    ["02-9876543", "029876543", "+880 2 9876543", "88029876543", "+880 31 712345", "031-712345"],
)
def test_bangladeshi_landlines_are_not_recipients(number: str) -> None:
    with pytest.raises(InvalidMessageError, match="landline"):
        normalize_number(number)


@pytest.mark.parametrize("number", ["01112345678", "+8801112345678", "008801112345678"])
def test_the_dead_011_prefix_is_rejected(number: str) -> None:
    with pytest.raises(InvalidMessageError, match="011"):
        normalize_number(number)


@pytest.mark.parametrize(
    "number", ["01212345678", "+8801012345678", "0171234567", "+88017123456789"]
)
def test_other_bangladeshi_shapes_are_rejected(number: str) -> None:
    with pytest.raises(InvalidMessageError):
        normalize_number(number)


@pytest.mark.parametrize("prefix", ["13", "14", "15", "16", "17", "18", "19"])
def test_every_operator_prefix_takes_the_fast_path(
    prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import builtins

    real_import = builtins.__import__

    def guarded(name: str, *args: object, **kwargs: object) -> object:
        assert name != "phonenumbers", "the fast path must not use phonenumbers"
        return real_import(name, *args, **kwargs)  # type: ignore[arg-type]

    normalize_number.cache_clear()
    monkeypatch.setattr(builtins, "__import__", guarded)
    for form in (f"0{prefix}12345678", f"+880{prefix}12345678", f"00880 {prefix}12-345678"):
        assert normalize_number(form) == f"880{prefix}12345678"


def test_a_national_prefix_after_the_country_code_is_dropped() -> None:
    assert normalize_number("+880 (0)1712-345678") == "8801712345678"


def test_national_forms_follow_the_region() -> None:
    assert normalize_number("07911 123456", "GB") == "447911123456"
    assert normalize_number("+8801712345678", "GB") == "8801712345678"


@pytest.mark.parametrize(
    ("number", "region"),
    [("8801712345678", "BD"), ("447400123456", "GB"), ("14155552671", "US"), ("999", "ZZ")],
)
def test_region_of(number: str, region: str) -> None:
    assert region_of(number) == region


def test_a_provider_declares_the_regions_it_serves() -> None:
    from mimgw import Message, Receipt
    from mimgw.providers.base import Outgoing, Provider

    class Anywhere(Provider):
        kind = "anywhere"
        default_base_url = "https://gw.test"

        async def _send(self, outgoing: Outgoing) -> Receipt:  # pragma: no cover - not sent
            raise NotImplementedError

    class BangladeshOnly(Anywhere):
        regions = frozenset({"BD"})

    local = BangladeshOnly(sender="ME")
    assert local.prepare(Message(to="01712345678", text="hi")).to == "8801712345678"
    with pytest.raises(InvalidMessageError, match="does not deliver to GB numbers"):
        local.prepare(Message(to="+447400123456", text="hi"))
    anywhere = Anywhere(sender="ME")  # regions None: every valid number
    assert anywhere.regions is None
    assert anywhere.prepare(Message(to="+447400123456", text="hi")).to == "447400123456"
