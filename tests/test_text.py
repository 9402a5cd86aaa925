from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mimgw import TextInfo, analyse_text


@pytest.mark.parametrize(
    ("text", "encoding", "units", "segments"),
    [
        ("", "gsm7", 0, 0),
        ("a", "gsm7", 1, 1),
        ("a" * 160, "gsm7", 160, 1),
        ("a" * 161, "gsm7", 161, 2),
        ("a" * 306, "gsm7", 306, 2),
        ("a" * 307, "gsm7", 307, 3),
        ("€" * 80, "gsm7", 160, 1),  # extension characters take two septets
        ("€" * 81, "gsm7", 162, 2),
        ("a" * 152 + "€", "gsm7", 154, 1),
        ("a" * 159 + "€", "gsm7", 161, 2),  # the escape pair is not split: 152 + (7+2)
        ("আমার সোনার বাংলা", "ucs2", 16, 1),
        ("অ" * 70, "ucs2", 70, 1),
        ("অ" * 71, "ucs2", 71, 2),
        ("অ" * 134, "ucs2", 134, 2),
        ("অ" * 135, "ucs2", 135, 3),
        ("hello “quoted”", "ucs2", 14, 1),  # curly quotes are not GSM-7
        ("😀" * 35, "ucs2", 70, 1),  # astral characters take two UTF-16 units
        ("😀" * 36, "ucs2", 72, 2),
        ("Ünïcode àé", "ucs2", 10, 1),  # ï is not in the GSM alphabet
        ("ÄÖÜäöüàé", "gsm7", 8, 1),
    ],
)
def test_analysis(text: str, encoding: str, units: int, segments: int) -> None:
    info = analyse_text(text)
    assert (info.encoding, info.units, info.segments) == (encoding, units, segments)
    assert info.characters == len(text)
    assert info.unicode is (encoding == "ucs2")
    assert info.long is (segments > 1)


def test_one_bangla_character_makes_the_whole_message_ucs2() -> None:
    assert analyse_text("a" * 100 + "ক").encoding == "ucs2"


@given(st.text(max_size=800))
def test_segments_hold_every_unit(text: str) -> None:
    info = analyse_text(text)
    per = {"gsm7": (160, 153), "ucs2": (70, 67)}[info.encoding]
    if info.units <= per[0]:
        assert info.segments == (1 if info.units else 0)
    else:
        assert info.segments * per[1] >= info.units
        assert (info.segments - 1) * per[1] < info.units + info.segments  # at most 1 lost per seg


def _reference(text: str) -> tuple[str, int, int]:
    """The definition, character by character: encoding, units, segments."""
    from mimgw.text import _GSM_BASIC, _GSM_EXTENSION, CONCAT, SINGLE

    gsm = all(ch in _GSM_BASIC or ch in _GSM_EXTENSION for ch in text)
    encoding = "gsm7" if gsm else "ucs2"
    if gsm:
        sizes = [2 if ch in _GSM_EXTENSION else 1 for ch in text]
    else:
        sizes = [2 if ord(ch) > 0xFFFF else 1 for ch in text]
    units = sum(sizes)
    if units <= SINGLE[encoding]:
        return encoding, units, 1 if units else 0
    segments, used = 1, 0
    for size in sizes:
        if used + size > CONCAT[encoding]:
            segments, used = segments + 1, 0
        used += size
    return encoding, units, segments


def test_analysis_matches_the_character_by_character_definition() -> None:
    import random

    from mimgw.text import analyse_text

    rng = random.Random(13)
    alphabet = ["a", "Z", " ", "€", "[", "^", "é", "আ", "😀", "\ud800", "“", "\n"]
    for _ in range(3000):
        pool = rng.sample(alphabet, rng.randint(1, len(alphabet)))
        text = "".join(rng.choice(pool) for _ in range(rng.randint(0, 400)))
        info = analyse_text(text)
        assert (info.encoding, info.units, info.segments) == _reference(text), repr(text)
        assert info.characters == len(text)


def test_texts_with_the_same_analysis_share_one_object() -> None:
    first, second = analyse_text("hello 1001"), analyse_text("hello 2002")
    assert first is second  # a campaign of personalised texts keeps one per length
    assert first == TextInfo(encoding="gsm7", characters=10, units=10, segments=1)
    other = analyse_text("hello 30003")
    assert other is not first and other.characters == 11
    ucs2 = analyse_text("অ" * 10)
    assert ucs2 is not first and ucs2.encoding == "ucs2" and ucs2.units == first.units
