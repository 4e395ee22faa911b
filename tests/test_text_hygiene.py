"""Tracked text speaks to outside readers: no machine paths, no internal work items or documents.

Docstrings, comments, READMEs and committed result files are read by people who have this repository
and nothing else, so they cite papers (arXiv ids) and public repositories (file, commit) instead of a
machine's absolute paths, numbered items of a private tracker or private notes.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

#: (pattern, why it is not allowed). Public issue threads of other repositories are cited with their
#: repository ("MishaLaskin/curl issue #15") and do not match.
FORBIDDEN = [
    (re.compile(r"/(?:work|home|root|Users)/[\w.-]+/"), "an absolute path of one machine"),
    (re.compile(r"/tmp/[A-Za-z]"), "a temporary path of one machine"),
    (
        re.compile(r"(?<![\w/])(?:[Ii]ssue|task) \d+(?:'s| §| section|\b(?! of))(?![^\n]{0,40}github)"),
        "an internal work item",
    ),
    (re.compile(r"\b(?:lecture|reference) notes\b", re.IGNORECASE), "an internal document"),
    (re.compile(r"\b[Ss]ession \d+\b"), "a work session"),
]
ALLOWED_PREFIXES = ("tests/fixtures/",)
TEXT_SUFFIXES = {".py", ".md", ".toml", ".json", ".csv", ".txt", ".cfg", ".yaml", ".yml", ".sh", ""}


def tracked_text_files() -> list[Path]:
    out = subprocess.run(["git", "-C", str(REPO), "ls-files"], capture_output=True, text=True, check=True).stdout
    files = []
    for name in out.splitlines():
        path = REPO / name
        if name.startswith(ALLOWED_PREFIXES) or path.suffix not in TEXT_SUFFIXES or not path.is_file():
            continue
        files.append(path)
    return files


def offending_lines() -> list[str]:
    found = []
    this_file = Path(__file__).resolve()
    for path in tracked_text_files():
        if path.resolve() == this_file:
            continue
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        for number, line in enumerate(text.splitlines(), start=1):
            for pattern, why in FORBIDDEN:
                if pattern.search(line):
                    found.append(f"{path.relative_to(REPO)}:{number}: {why}: {line.strip()[:120]}")
    return found


@pytest.mark.skipif(not (REPO / ".git").exists(), reason="needs a git checkout")
def test_no_machine_paths_or_internal_references_in_tracked_text():
    found = offending_lines()
    assert not found, "\n".join(found)


#: A line, or a table cell, that is nothing but an UPPER_SNAKE word (``RESULT_ROW``, ``| RUN_COST |``): a
#: placeholder left for a figure that was never filled in.
PLACEHOLDER = re.compile(r"^\s*(?:\|.*)?(?:^|\|)\s*[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+\s*(?:\|.*)?$")


@pytest.mark.skipif(not (REPO / ".git").exists(), reason="needs a git checkout")
def test_no_unfilled_placeholders_in_markdown():
    found = []
    for path in tracked_text_files():
        if path.suffix != ".md":
            continue
        in_code = False
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            in_code ^= line.lstrip().startswith("```")
            if not in_code and PLACEHOLDER.match(line):
                found.append(f"{path.relative_to(REPO)}:{number}: {line.strip()[:120]}")
    assert not found, "unfilled placeholders:\n" + "\n".join(found)


@pytest.mark.parametrize("line", ["RESULT_ROW", "| a | b | RUN_COST |", "| STATE_FILE | x |"])
def test_the_placeholder_pattern_catches_what_it_should(line):
    assert PLACEHOLDER.match(line)


@pytest.mark.parametrize("line", ["| `MALLOC_MMAP_MAX_=0` | x |", "Set MUJOCO_GL=egl first", "| a | b |"])
def test_the_placeholder_pattern_leaves_prose_and_settings_alone(line):
    assert not PLACEHOLDER.match(line)
