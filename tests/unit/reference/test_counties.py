"""California counties: canonical names, aliases and FIPS codes."""

from __future__ import annotations

import pytest

from shared.reference.counties import COUNTIES, County, county_by_fips, county_named, require_county


def test_there_are_58_counties_with_unique_names_and_fips_codes() -> None:
    assert len(COUNTIES) == 58
    assert len({county.name for county in COUNTIES}) == 58
    assert len({county.fips for county in COUNTIES}) == 58


def test_fips_codes_are_odd_numbers_in_name_order() -> None:
    # California's county FIPS codes run 001, 003 … 115 in alphabetical order of the county names.
    by_name = sorted(COUNTIES, key=lambda county: county.name)
    assert [county.fips for county in by_name] == [f"06{2 * i + 1:03d}" for i in range(58)]


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("Los Angeles", "Los Angeles"),
        ("L.A.", "Los Angeles"),
        ("LA", "Los Angeles"),
        ("la", "Los Angeles"),
        ("L.A. County", "Los Angeles"),
        ("los angeles county", "Los Angeles"),
        ("  LOS   ANGELES ", "Los Angeles"),
        ("san luis obispo", "San Luis Obispo"),
        ("Tehema", "Tehama"),  # the DHCS table's typo
        ("El Dorado County", "El Dorado"),
    ],
)
def test_county_named_accepts_aliases_and_any_case(text: str, name: str) -> None:
    county = county_named(text)
    assert county is not None
    assert county.name == name


@pytest.mark.parametrize("text", ["", "County", "Clark", "Los", "Santa", "Reno"])
def test_county_named_returns_none_for_unknown_names(text: str) -> None:
    assert county_named(text) is None


def test_county_by_fips_finds_los_angeles() -> None:
    assert county_by_fips("06037") == county_named("Los Angeles")
    assert county_by_fips("06999") is None


def test_require_county_raises_for_an_unknown_name() -> None:
    with pytest.raises(ValueError, match="unknown California county"):
        require_county("Atlantis")


def test_require_county_passes_a_county_through() -> None:
    county = COUNTIES[0]
    assert require_county(county) is county
    assert isinstance(require_county("alameda"), County)
