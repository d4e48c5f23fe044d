"""`calhub x12 validate|parse` reach the claims tools for 837, 999 and 277 (and leave room for 835)."""

from __future__ import annotations

from pathlib import Path

from claims.x12.tools import TOOLS

from calhub.x12_tool import available_tools, parse_file, validate_file

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def test_tools_cover_837_999_277() -> None:
    assert {"837", "999", "277"} <= set(TOOLS)
    assert {"837", "999", "277"} <= set(available_tools())


def test_validate_and_parse_a_golden_837p() -> None:
    path = FIXTURES / "837p" / "golden_healthnet.x12"
    assert validate_file(path) == []
    parsed = parse_file(path)
    assert parsed["version"] == "005010X222A1"
    claims = parsed["transaction_sets"][0]["claims"]
    assert [c["frequency_code"] for c in claims] == ["1", "7"]


def test_validate_reports_calhub_rules(tmp_path: Path) -> None:
    bad = tmp_path / "bad.x12"
    bad.write_text((FIXTURES / "837p" / "golden_healthnet.x12").read_text().replace("XX*1234567893",
                                                                                   "XX*1234567890"))
    rules = {e["rule"] for e in validate_file(bad)}
    assert "npi-check-digit" in rules


def test_parse_999_and_277ca() -> None:
    ack = parse_file(FIXTURES / "999" / "partial.x12")
    assert ack["acknowledgments"][0]["code"] == "P"
    status = parse_file(FIXTURES / "277ca" / "partial.x12")
    assert [c["outcome"] for c in status["claims"]] == ["accepted", "rejected", "rejected"]
    assert validate_file(FIXTURES / "277ca" / "partial.x12") == []
