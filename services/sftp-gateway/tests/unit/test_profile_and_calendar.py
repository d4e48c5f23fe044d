"""Profiles (validation, recognition) and the expected-file calendar (deadlines, windows, order)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import yaml
from sftp_gateway.domain.calendar import (
    daily_run_at,
    due_days,
    is_out_of_order,
    monthly_run_at,
    next_deadline,
    previous_deadline,
    previous_month,
)
from sftp_gateway.domain.profile import Expectation, ProfileError, normalize_period, parse_profile
from sftp_gateway.profiles_store import ProfileCatalog

from shared.contracts.gateway import FileKind
from shared.reference.calendar import PACIFIC

PACKAGED = Path(__file__).resolve().parents[2] / "sftp_gateway" / "profiles"


def example(mcp: str) -> dict:
    return yaml.safe_load((PACKAGED / f"{mcp}.yaml").read_text())


def test_packaged_profiles_load() -> None:
    catalog = ProfileCatalog(PACKAGED)
    assert catalog.reload().loaded == ["healthnet", "lacare", "molina"]
    assert catalog.for_account("lacare").mcp_code == "lacare"  # type: ignore[union-attr]


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda d: d["account"].update(username="Bad User"), "account.username"),
    (lambda d: d["account"].update(authorized_keys=["not a key"]), "authorized_keys"),
    (lambda d: d["files"].append({"glob": "*.x", "regex": "x", "kind": "other"}), "exactly one of glob or regex"),
    (lambda d: d["files"].append({"regex": "(", "kind": "other"}), "regex does not compile"),
    (lambda d: d["layouts"]["mif"]["columns"].update(Extra="no_such_field"), "unknown canonical fields"),
    (lambda d: d["layouts"].pop("referral"), "layouts.referral is missing"),
    (lambda d: d["calendar"].append({"kind": "mif"}), "exactly one of monthly_by_day"),
    (lambda d: d["pgp"].update(outbound_encrypt=True), "recipient"),
    (lambda d: d.update(surprise=1), "surprise"),
])
def test_invalid_profiles_name_the_field(mutate, message: str) -> None:  # type: ignore[no-untyped-def]
    data = example("lacare")
    data.setdefault("pgp", {})
    mutate(data)
    with pytest.raises(ProfileError, match=message):
        parse_profile(yaml.safe_dump(data), "lacare.yaml")


def test_a_broken_reload_keeps_the_profiles_in_force(tmp_path: Path) -> None:
    for mcp in ("healthnet", "lacare"):
        (tmp_path / f"{mcp}.yaml").write_text((PACKAGED / f"{mcp}.yaml").read_text())
    catalog = ProfileCatalog(tmp_path)
    assert catalog.reload().ok
    (tmp_path / "healthnet.yaml").write_text("mcp_code: [")
    result = catalog.reload()
    assert not result.ok and "not valid YAML" in result.errors[0]
    assert [p.mcp_code for p in catalog.all()] == ["healthnet", "lacare"]


def test_two_profiles_with_one_account_are_refused(tmp_path: Path) -> None:
    data = example("molina")
    data["account"]["username"] = "lacare"
    (tmp_path / "a.yaml").write_text((PACKAGED / "lacare.yaml").read_text())
    (tmp_path / "b.yaml").write_text(yaml.safe_dump(data))
    assert "SFTP account lacare" in ProfileCatalog(tmp_path).reload().errors[0]


@pytest.mark.parametrize(("mcp", "name", "kind", "period"), [
    ("healthnet", "HN_ECM_MIF_202610.csv", FileKind.MIF, "2026-10"),
    ("healthnet", "hn_ecm_mif_202610_2.CSV", FileKind.MIF, "2026-10"),
    ("healthnet", "HN_ECM_MIF_202610.csv.pgp", FileKind.MIF, "2026-10"),
    ("healthnet", "remit_0001.835", FileKind.X12_835, None),
    ("molina", "MOL_ECM_MIF_2026-09.tsv", FileKind.MIF, "2026-09"),
    ("lacare", "LAC_AUTH_STATUS_20261015.txt", FileKind.OTHER, None),
])
def test_file_names_are_recognized_with_their_period(mcp: str, name: str, kind: FileKind, period: str | None) -> None:
    recognition = parse_profile(yaml.safe_dump(example(mcp))).recognize(name)
    assert recognition is not None and (recognition.kind, recognition.period) == (kind, period)


def test_unknown_names_are_not_recognized() -> None:
    assert parse_profile(yaml.safe_dump(example("healthnet"))).recognize("notes.docx") is None


@pytest.mark.parametrize(("text", "period"), [("202610", "2026-10"), ("2026-10", "2026-10"), ("10/2026", "2026-10"),
                                              ("102026", "2026-10"), ("202613", None), ("abc", None)])
def test_periods_normalize(text: str, period: str | None) -> None:
    assert normalize_period(text) == period


def _deadline(day: date) -> datetime:
    return datetime.combine(day, datetime.max.time(), PACIFIC)


def test_monthly_by_the_10th_moves_off_weekends_and_state_holidays() -> None:
    mif = Expectation(kind=FileKind.MIF, monthly_by_day=10)
    # 2026-10-10 is a Saturday -> Monday the 12th; 2027-01-10 is a Sunday -> Monday the 11th.
    assert due_days(mif, date(2026, 10, 1), date(2027, 1, 31)) == [
        date(2026, 10, 12), date(2026, 11, 10), date(2026, 12, 10), date(2027, 1, 11)]
    # 2026-11-11 (Veterans Day, Wednesday) as a due day rolls to the 12th.
    veterans = Expectation(kind=FileKind.MIF, monthly_by_day=11)
    assert due_days(veterans, date(2026, 11, 1), date(2026, 11, 30)) == [date(2026, 11, 12)]


def test_days_15_and_29_clamp_in_february_and_can_stay_on_weekends() -> None:
    status = Expectation(kind=FileKind.OTHER, days_of_month=(15, 29), roll_to_business_day=False)
    assert due_days(status, date(2027, 2, 1), date(2027, 2, 28)) == [date(2027, 2, 15), date(2027, 2, 28)]


def test_weekly_835_deadline_and_window() -> None:
    weekly = Expectation(kind=FileKind.X12_835, weekly_on="friday")
    after = datetime(2026, 11, 16, 12, tzinfo=UTC)  # a Monday
    deadline = next_deadline(weekly, after)
    assert deadline == _deadline(date(2026, 11, 20))
    assert previous_deadline(weekly, deadline) == _deadline(date(2026, 11, 13))
    # Thanksgiving week: Friday 2026-11-27 (Day After Thanksgiving) rolls to Monday the 30th.
    assert next_deadline(weekly, deadline) == _deadline(date(2026, 11, 30))


def test_order_and_periods() -> None:
    assert is_out_of_order("2026-09", "2026-10")
    assert not is_out_of_order("2026-10", "2026-10")
    assert not is_out_of_order(None, "2026-10") and not is_out_of_order("2026-09", None)
    assert previous_month(datetime(2027, 1, 5, 14, tzinfo=UTC)) == "2026-12"
    assert monthly_run_at(5, 6, datetime(2026, 11, 5, 15, tzinfo=UTC)) == datetime(2026, 12, 5, 6, tzinfo=PACIFIC)
    assert monthly_run_at(5, 6, datetime(2026, 11, 5, 13, tzinfo=UTC)) == datetime(2026, 11, 5, 6, tzinfo=PACIFIC)
    # 03:00 UTC on the 5th is 19:00 Pacific on the 4th: past 18:00, so the next run is the 5th.
    assert daily_run_at(18, datetime(2026, 11, 5, 3, tzinfo=UTC)) == datetime(2026, 11, 5, 18, tzinfo=PACIFIC)
    assert daily_run_at(18, datetime(2026, 11, 5, 1, tzinfo=UTC)) == datetime(2026, 11, 4, 18, tzinfo=PACIFIC)
