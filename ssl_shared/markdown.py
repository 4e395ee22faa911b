"""Markdown tables for the documents generated from the registries (``docs/*.md``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def format_value(value: Any) -> str:
    """A setting as it reads in a table: floats in ``:g`` form (``1e-06``), ints with thousands separators
    (``4,096``), strings in backticks, ``None`` and booleans as words, containers element-wise."""
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, str):
        return f"`{value}`"
    if isinstance(value, tuple):
        return "(" + ", ".join(format_value(v) for v in value) + ")"
    if isinstance(value, list):
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {format_value(v)}" for k, v in value.items()) + "}"
    return str(value)


def markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    """The lines of a markdown table; a ``|`` inside a cell is escaped."""

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"

    return [line(header), "|" + "---|" * len(header)] + [line(row) for row in rows]


def generated_doc_main(prog: str, description: str, render: Callable[[], str], argv: list[str] | None = None) -> None:
    """The command line of a generated document: print ``render()``, or write it with ``--out PATH``."""
    import argparse
    from pathlib import Path

    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--out", help="write the markdown here (default: print it)")
    args = parser.parse_args(argv)
    text = render()
    if args.out:
        Path(args.out).write_text(text)
    else:
        print(text, end="")
