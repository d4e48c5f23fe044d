"""The 58 California counties: canonical names, FIPS codes and the spellings partners use for them."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict


class County(BaseModel):
    """A California county under its canonical name (as DHCS spells it) with its 5-digit FIPS code."""

    model_config = ConfigDict(frozen=True)

    name: str
    fips: str  # state 06 + county code; California's county codes are the odd numbers 001-115 in name order
    aliases: tuple[str, ...] = ()


# Aliases are spellings seen in source tables: 'L.A.' in the DHCS MCP-by-county table, 'Tehema' (its typo).
COUNTIES: tuple[County, ...] = (
    County(name="Alameda", fips="06001"),
    County(name="Alpine", fips="06003"),
    County(name="Amador", fips="06005"),
    County(name="Butte", fips="06007"),
    County(name="Calaveras", fips="06009"),
    County(name="Colusa", fips="06011"),
    County(name="Contra Costa", fips="06013"),
    County(name="Del Norte", fips="06015"),
    County(name="El Dorado", fips="06017"),
    County(name="Fresno", fips="06019"),
    County(name="Glenn", fips="06021"),
    County(name="Humboldt", fips="06023"),
    County(name="Imperial", fips="06025"),
    County(name="Inyo", fips="06027"),
    County(name="Kern", fips="06029"),
    County(name="Kings", fips="06031"),
    County(name="Lake", fips="06033"),
    County(name="Lassen", fips="06035"),
    County(name="Los Angeles", fips="06037", aliases=("L.A.", "LA")),
    County(name="Madera", fips="06039"),
    County(name="Marin", fips="06041"),
    County(name="Mariposa", fips="06043"),
    County(name="Mendocino", fips="06045"),
    County(name="Merced", fips="06047"),
    County(name="Modoc", fips="06049"),
    County(name="Mono", fips="06051"),
    County(name="Monterey", fips="06053"),
    County(name="Napa", fips="06055"),
    County(name="Nevada", fips="06057"),
    County(name="Orange", fips="06059"),
    County(name="Placer", fips="06061"),
    County(name="Plumas", fips="06063"),
    County(name="Riverside", fips="06065"),
    County(name="Sacramento", fips="06067"),
    County(name="San Benito", fips="06069"),
    County(name="San Bernardino", fips="06071"),
    County(name="San Diego", fips="06073"),
    County(name="San Francisco", fips="06075"),
    County(name="San Joaquin", fips="06077"),
    County(name="San Luis Obispo", fips="06079"),
    County(name="San Mateo", fips="06081"),
    County(name="Santa Barbara", fips="06083"),
    County(name="Santa Clara", fips="06085"),
    County(name="Santa Cruz", fips="06087"),
    County(name="Shasta", fips="06089"),
    County(name="Sierra", fips="06091"),
    County(name="Siskiyou", fips="06093"),
    County(name="Solano", fips="06095"),
    County(name="Sonoma", fips="06097"),
    County(name="Stanislaus", fips="06099"),
    County(name="Sutter", fips="06101"),
    County(name="Tehama", fips="06103", aliases=("Tehema",)),
    County(name="Trinity", fips="06105"),
    County(name="Tulare", fips="06107"),
    County(name="Tuolumne", fips="06109"),
    County(name="Ventura", fips="06111"),
    County(name="Yolo", fips="06113"),
    County(name="Yuba", fips="06115"),
)

_COUNTY_SUFFIX = re.compile(r"\s+county\s*$")
_NOT_LETTER = re.compile(r"[^a-z]")


def _key(text: str) -> str:
    # Case, dots and spaces carry no meaning in a county name ('L.A.' = 'LA'); nor does a trailing 'County'.
    return _NOT_LETTER.sub("", _COUNTY_SUFFIX.sub("", text.casefold()))


def _index() -> dict[str, County]:
    index: dict[str, County] = {}
    for county in COUNTIES:
        for spelling in (county.name, *county.aliases):
            key = _key(spelling)
            if key in index and index[key] != county:
                raise ValueError(f"county spelling {spelling!r} is ambiguous")
            index[key] = county
    return index


_BY_KEY = _index()
_BY_FIPS = {county.fips: county for county in COUNTIES}


def county_named(text: str) -> County | None:
    """The county a name or alias refers to (any case, 'County' suffix allowed), or None if unknown."""
    return _BY_KEY.get(_key(text))


def county_by_fips(fips: str) -> County | None:
    """The county with this 5-digit FIPS code (e.g. '06037'), or None if unknown."""
    return _BY_FIPS.get(fips)


def require_county(county: County | str) -> County:
    """The county itself, or the county a name refers to. Raises ValueError for an unknown name."""
    if isinstance(county, County):
        return county
    found = county_named(county)
    if found is None:
        raise ValueError(f"unknown California county: {county!r}")
    return found
