"""docs/choosing-a-gateway.md: its capability matrix is the providers' own ``capabilities``."""

from __future__ import annotations

from pathlib import Path

from mimgw.cli.info import CAPABILITY_ROWS, provider_classes

DOC = Path(__file__).resolve().parent.parent / "docs" / "choosing-a-gateway.md"
START, END = "<!-- capability-matrix:start -->", "<!-- capability-matrix:end -->"


def _cell(value: object) -> str:
    if value is True:
        return "yes"
    if value is False:
        return "no"
    if value is None:
        return "–"
    return str(value)


def capability_matrix() -> str:
    """The Markdown matrix, one column per provider kind, one row per capability."""
    classes = provider_classes()
    lines = [
        "| | " + " | ".join(f"`{c.kind}`" for c in classes) + " |",
        "|---|" + "---|" * len(classes),
    ]
    for key, label in CAPABILITY_ROWS:
        cells = [_cell(c.capabilities.as_dict()[key]) for c in classes]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def test_the_matrix_is_what_the_providers_declare() -> None:
    text = DOC.read_text(encoding="utf-8")
    matrix = text[text.index(START) + len(START) : text.index(END)].strip()
    assert matrix == capability_matrix(), "regenerate with: python tests/test_docs_choosing.py"


def test_every_kind_has_its_gaps_listed() -> None:
    text = DOC.read_text(encoding="utf-8")
    gaps = text[text.index("## Documented gaps") :]
    for cls in provider_classes():
        assert f"`{cls.kind}`" in gaps, cls.kind


if __name__ == "__main__":
    print(capability_matrix())
