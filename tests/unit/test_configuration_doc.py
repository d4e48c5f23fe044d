"""docs/configuration.md is the settings table `calhub settings` prints: it must never drift from the code."""

from __future__ import annotations

import difflib
from pathlib import Path

import pytest

from calhub.configuration import settings_markdown

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"
FIX = "run `calhub settings > docs/configuration.md`"


def test_configuration_doc_matches_the_settings() -> None:
    if not DOC.is_file():
        pytest.fail(f"docs/configuration.md is missing: {FIX}")
    committed = DOC.read_text(encoding="utf-8")
    generated = settings_markdown()
    if committed != generated:
        diff = list(difflib.unified_diff(committed.splitlines(), generated.splitlines(),
                                         "docs/configuration.md (committed)", "calhub settings", lineterm=""))
        shown = "\n".join(diff[:40]) + ("\n..." if len(diff) > 40 else "")
        pytest.fail(f"docs/configuration.md is out of date: {FIX}\n{shown}", pytrace=False)
