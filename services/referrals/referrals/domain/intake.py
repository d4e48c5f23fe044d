"""Referral intake rules: read a submitted referral (JSON API or mapped FHIR), check every rule, report all.

`check_referral` never stops at the first problem: it walks the whole submission and returns every violation
(field path, rule, message without the submitted value) together, or a typed `ReferralDraft` when none.
Facts come from `shared.reference` (CIN/NPI syntax, counties, county→MCP table, POF and CS codes).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache
from typing import Any, Final

from shared.contracts.values import Address, MemberDemographics, Program, ServiceRequested, Urgency
from shared.reference.counties import county_named
from shared.reference.identifiers import cin_problem, npi_problem
from shared.reference.plans import plan_named, plan_offered_in
from shared.reference.services import community_support, is_always_expedited, population_of_focus

# The oldest member we accept: a birth date further back is a keying error (e.g. 1890 for 1990).
MAX_AGE_YEARS: Final = 120
MAX_NAME = 100
MAX_TEXT = 4000
MAX_REASON = 1000
SEXES: Final = ("F", "M", "U", "X")  # as MCP files carry them (MemberDemographics.sex)
ORGANIZATION_ID = re.compile(r"org_[A-Za-z0-9_]{1,60}")
_PHONE_DIGITS = re.compile(r"[0-9]{10}")
_PHONE_CHARS = re.compile(r"[0-9 ()+.\-]+")
_ZIP = re.compile(r"[0-9]{5}(?:-?[0-9]{4})?")
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_LANGUAGE = re.compile(r"[A-Za-z]{2,3}(?:-[A-Za-z0-9]{2,8})*|[A-Za-z][A-Za-z ]{1,40}")
# [rule] California ZIP codes are 90001-96162 (USPS); a residential address outside that range is not in CA.
_CA_ZIP_FIRST, _CA_ZIP_LAST = 90000, 96199


@dataclass(frozen=True, slots=True)
class Violation:
    """One broken rule: a dotted field path, the rule's machine name and words without the submitted value."""

    field: str
    rule: str
    message: str


@dataclass(frozen=True, slots=True)
class Contact:
    """Who at the referring organization to call back."""

    name: str
    phone: str | None = None
    email: str | None = None


@dataclass(frozen=True, slots=True)
class Consent:
    """The member's consent flags as the referrer recorded them (None: not stated)."""

    share_with_mcp: bool | None = None
    contact_member: bool | None = None
    obtained_on: date | None = None


@dataclass(frozen=True, slots=True)
class ReferralDraft:
    """A referral that passed every intake rule, in canonical form (county and plan names normalised)."""

    member: MemberDemographics
    county: str
    service: ServiceRequested
    urgency: Urgency
    expedited_reason: str | None
    expedited_by_rule: bool
    mcp_code: str | None
    referring_npi: str
    referring_name: str | None
    contact: Contact
    cbo_organization_id: str | None
    notes: str | None
    consent: Consent
    external_identifiers: tuple[dict[str, str], ...] = field(default=())


class _Reader:
    """Reads a JSON mapping field by field, recording a Violation for each problem instead of raising."""

    def __init__(self) -> None:
        self.violations: list[Violation] = []

    def fail(self, path: str, rule: str, message: str) -> None:
        self.violations.append(Violation(path, rule, message))

    def failed_under(self, prefix: str) -> bool:
        return any(v.field == prefix or v.field.startswith(prefix + ".") for v in self.violations)

    def obj(self, raw: Mapping[str, Any], key: str, path: str, *, required: bool,
            allowed: frozenset[str]) -> Mapping[str, Any] | None:
        value = raw.get(key)
        if value is None:
            if required:
                self.fail(path, "required", "Field required.")
            return None
        if not isinstance(value, Mapping):
            self.fail(path, "type", "Must be an object.")
            return None
        for unknown in sorted(set(value) - allowed):
            self.fail(f"{path}.{unknown}", "unknown_field", "Not a field of this object; check the spelling.")
        return value

    def text(self, raw: Mapping[str, Any], key: str, path: str, *, required: bool,
             max_length: int = MAX_NAME) -> str | None:
        value = raw.get(key)
        if value is None:
            if required:
                self.fail(path, "required", "Field required.")
            return None
        if not isinstance(value, str):
            self.fail(path, "type", "Must be a string.")
            return None
        value = value.strip()
        if not value:
            if required:
                self.fail(path, "required", "Must not be empty.")
            return None
        if len(value) > max_length:
            self.fail(path, "max_length", f"At most {max_length} characters.")
            return None
        return value

    def boolean(self, raw: Mapping[str, Any], key: str, path: str, *, required: bool = False) -> bool | None:
        value = raw.get(key)
        if value is None:
            if required:
                self.fail(path, "required", "Field required.")
            return None
        if not isinstance(value, bool):
            self.fail(path, "type", "Must be true or false.")
            return None
        return value

    def day(self, raw: Mapping[str, Any], key: str, path: str, *, required: bool) -> date | None:
        text = self.text(raw, key, path, required=required, max_length=10)
        if text is None:
            return None
        try:
            # fromisoformat also takes 20240101 and week dates; the API promises YYYY-MM-DD only.
            if not _ISO_DATE.fullmatch(text):
                raise ValueError("not YYYY-MM-DD")
            return date.fromisoformat(text)
        except ValueError:
            self.fail(path, "date_format", "Must be a date as YYYY-MM-DD.")
            return None

    def text_list(self, raw: Mapping[str, Any], key: str, path: str) -> list[str] | None:
        value = raw.get(key)
        if value is None:
            return None
        if not isinstance(value, list):
            self.fail(path, "type", "Must be a list of strings.")
            return None
        items: list[str] = []
        for index, item in enumerate(value):
            if not isinstance(item, str) or not item.strip():
                self.fail(f"{path}[{index}]", "type", "Must be a non-empty string.")
                continue
            items.append(item.strip())
        return items


_TOP = frozenset({"member", "mcp_code", "service", "urgency", "expedited_reason", "referring",
                  "cbo_organization_id", "notes", "consent", "external_identifiers"})
_MEMBER = frozenset({"cin", "last_name", "first_name", "middle_name", "birth_date", "sex", "phone",
                     "preferred_language", "address"})
_ADDRESS = frozenset({"line1", "line2", "city", "state", "zip", "county"})
_SERVICE = frozenset({"program", "pof_codes", "cs_code", "after_acute_care"})
_REFERRING = frozenset({"npi", "name", "contact"})
_CONTACT = frozenset({"name", "phone", "email"})
_CONSENT = frozenset({"share_with_mcp", "contact_member", "obtained_on"})


def years_between(born: date, on: date) -> int:
    """Whole years from `born` to `on` (age on a date)."""
    return on.year - born.year - ((on.month, on.day) < (born.month, born.day))


def check_referral(raw: Any, *, today: date) -> tuple[ReferralDraft | None, list[Violation]]:
    """Check a submitted referral against every intake rule; `today` is the Pacific date of receipt.

    Returns (draft, []) when the referral is acceptable, else (None, every violation found).
    """
    reader = _Reader()
    if not isinstance(raw, Mapping):
        return None, [Violation("body", "type", "The body must be a JSON object.")]
    for unknown in sorted(set(raw) - _TOP):
        reader.fail(unknown, "unknown_field", "Not a field of a referral; check the spelling.")

    member, county = _read_member(reader, raw, today)
    service, urgency, expedited_reason, by_rule = _read_service(reader, raw)
    mcp_code = _read_plan(reader, raw, county, today)
    npi, referring_name, contact = _read_referring(reader, raw)
    cbo = reader.text(raw, "cbo_organization_id", "cbo_organization_id", required=False, max_length=64)
    if cbo is not None and not ORGANIZATION_ID.fullmatch(cbo):
        reader.fail("cbo_organization_id", "pattern", "Must be a CalHub organization id (org_...).")
    notes = reader.text(raw, "notes", "notes", required=False, max_length=MAX_TEXT)
    consent = _read_consent(reader, raw, today)
    identifiers = _read_identifiers(reader, raw)

    if reader.violations or member is None or service is None or urgency is None or npi is None \
            or contact is None or county is None:
        return None, reader.violations
    return ReferralDraft(
        member=member, county=county, service=service, urgency=urgency, expedited_reason=expedited_reason,
        expedited_by_rule=by_rule, mcp_code=mcp_code, referring_npi=npi, referring_name=referring_name,
        contact=contact, cbo_organization_id=cbo, notes=notes, consent=consent,
        external_identifiers=identifiers,
    ), []


def _read_member(reader: _Reader, raw: Mapping[str, Any], today: date,
                 ) -> tuple[MemberDemographics | None, str | None]:
    member = reader.obj(raw, "member", "member", required=True, allowed=_MEMBER)
    if member is None:
        return None, None
    cin = reader.text(member, "cin", "member.cin", required=True, max_length=20)
    if cin is not None:
        problem = cin_problem(cin)
        if problem is not None:
            reader.fail("member.cin", "cin_format", f"A Medi-Cal CIN {problem}.")
    last = reader.text(member, "last_name", "member.last_name", required=True)
    first = reader.text(member, "first_name", "member.first_name", required=True)
    middle = reader.text(member, "middle_name", "member.middle_name", required=False)
    born = reader.day(member, "birth_date", "member.birth_date", required=True)
    if born is not None:
        if born > today:
            reader.fail("member.birth_date", "birth_date_in_future", "A birth date cannot be in the future.")
        elif years_between(born, today) > MAX_AGE_YEARS:
            reader.fail("member.birth_date", "birth_date_implausible",
                        f"Implies an age over {MAX_AGE_YEARS} years; check the year.")
    sex = reader.text(member, "sex", "member.sex", required=False, max_length=1)
    if sex is not None and sex.upper() not in SEXES:
        reader.fail("member.sex", "enum", f"Must be one of {', '.join(SEXES)}.")
    phone = _phone(reader, member, "phone", "member.phone")
    language = reader.text(member, "preferred_language", "member.preferred_language", required=False,
                           max_length=40)
    if language is not None and not _LANGUAGE.fullmatch(language):
        reader.fail("member.preferred_language", "language",
                    "Must be a language code (BCP 47, e.g. es, zh-Hant) or a language name.")
    address, county = _read_address(reader, member)
    if reader.failed_under("member") or None in (cin, last, first, born, address):
        return None, county
    assert cin is not None and last is not None and first is not None and born is not None
    return MemberDemographics(cin=cin, last_name=last, first_name=first, middle_name=middle, birth_date=born,
                              sex=sex.upper() if sex else None, phone=phone, preferred_language=language,
                              address=address), county


def _phone(reader: _Reader, raw: Mapping[str, Any], key: str, path: str) -> str | None:
    text = reader.text(raw, key, path, required=False, max_length=30)
    if text is None:
        return None
    digits = re.sub(r"[^0-9]", "", text)
    if digits.startswith("1") and len(digits) == 11:
        digits = digits[1:]
    if not _PHONE_CHARS.fullmatch(text) or not _PHONE_DIGITS.fullmatch(digits):
        reader.fail(path, "phone_format", "Must be a 10-digit US phone number.")
        return None
    return digits


def _read_address(reader: _Reader, member: Mapping[str, Any]) -> tuple[Address | None, str | None]:
    address = reader.obj(member, "address", "member.address", required=True, allowed=_ADDRESS)
    if address is None:
        return None, None
    line1 = reader.text(address, "line1", "member.address.line1", required=True, max_length=200)
    line2 = reader.text(address, "line2", "member.address.line2", required=False, max_length=200)
    city = reader.text(address, "city", "member.address.city", required=True)
    state = reader.text(address, "state", "member.address.state", required=False, max_length=2) or "CA"
    if state.upper() != "CA":
        reader.fail("member.address.state", "state_california",
                    "The residential address of a Medi-Cal managed care member must be in California (CA).")
    zip_code = reader.text(address, "zip", "member.address.zip", required=True, max_length=10)
    if zip_code is not None:
        if not _ZIP.fullmatch(zip_code):
            reader.fail("member.address.zip", "zip_format", "Must be a ZIP code: 5 digits or ZIP+4.")
            zip_code = None
        elif not _CA_ZIP_FIRST <= int(zip_code[:5]) <= _CA_ZIP_LAST:
            reader.fail("member.address.zip", "zip_california", "Must be a California ZIP code (90xxx-961xx).")
            zip_code = None
    county_text = reader.text(address, "county", "member.address.county", required=True, max_length=40)
    county = None
    if county_text is not None:
        found = county_named(county_text)
        if found is None:
            reader.fail("member.address.county", "california_county",
                        "Must be one of the 58 California counties (e.g. Los Angeles).")
        else:
            county = found.name
    if line1 is None or city is None or zip_code is None or county is None or reader.failed_under(
            "member.address"):
        return None, county
    return Address(line1=line1, line2=line2, city=city, state="CA", zip=zip_code, county=county), county


def _read_service(reader: _Reader, raw: Mapping[str, Any],
                  ) -> tuple[ServiceRequested | None, Urgency | None, str | None, bool]:
    # Every rule that can be checked is checked, also when the service is missing or names no known program:
    # the codes given are checked as far as they can be, and the expedited reason always.
    service = reader.obj(raw, "service", "service", required=True, allowed=_SERVICE)
    urgency_text = reader.text(raw, "urgency", "urgency", required=False, max_length=20) or Urgency.STANDARD
    urgency: Urgency | None
    try:
        urgency = Urgency(urgency_text.lower())
    except ValueError:
        reader.fail("urgency", "enum", "Must be standard or expedited.")
        urgency = None
    reason = reader.text(raw, "expedited_reason", "expedited_reason", required=False, max_length=MAX_REASON)
    program: Program | None = None
    pofs: list[str] | None = None
    cs_code: str | None = None
    after_acute = False
    if service is not None:
        program_text = reader.text(service, "program", "service.program", required=True, max_length=10)
        if program_text is not None:
            try:
                program = Program(program_text.lower())
            except ValueError:
                reader.fail("service.program", "enum", "Must be ecm, cs or chw.")
        pofs = reader.text_list(service, "pof_codes", "service.pof_codes")
        cs_code = reader.text(service, "cs_code", "service.cs_code", required=False, max_length=60)
        after_acute = reader.boolean(service, "after_acute_care", "service.after_acute_care") or False

    canonical_pofs: list[str] = []
    if program in (Program.ECM, None):  # None: unknown program, the codes given are still checked
        # [rule] ECM is authorized for a member in one or more Populations of Focus.
        if program is Program.ECM and not pofs:
            reader.fail("service.pof_codes", "required_for_ecm",
                        "ECM needs at least one Population of Focus (e.g. 1a, 3).")
        for index, code in enumerate(pofs or []):
            try:
                canonical = population_of_focus(code).code
            except ValueError:
                reader.fail(f"service.pof_codes[{index}]", "pof_code",
                            "Not an ECM Population of Focus code (1a, 1b, 2 ... 9).")
                continue
            if canonical in canonical_pofs:
                reader.fail(f"service.pof_codes[{index}]", "unique", "Population of Focus listed twice.")
                continue
            canonical_pofs.append(canonical)
    elif pofs:
        reader.fail("service.pof_codes", "not_allowed_for_program",
                    "Populations of Focus apply to ECM referrals only.")

    by_rule = False
    if program is Program.CS and cs_code is None:
        reader.fail("service.cs_code", "required_for_cs", "A Community Supports referral names one service.")
    elif program in (Program.CS, None) and cs_code is not None:
        try:
            cs_code = community_support(cs_code).code
            by_rule = is_always_expedited(cs_code, after_acute)
        except ValueError:
            reader.fail("service.cs_code", "cs_code", "Not a Community Support code (e.g. recuperative_care).")
    elif cs_code is not None:
        reader.fail("service.cs_code", "not_allowed_for_program",
                    "A Community Support code applies to CS referrals only.")

    if urgency is Urgency.EXPEDITED and reason is None and not by_rule:
        # APL 21-011: expedited review is for when the standard timeframe could seriously jeopardize the
        # member's life, health or ability to regain maximum function; the MCP needs the reason.
        reader.fail("expedited_reason", "required_when_expedited",
                    "An expedited referral states why the standard timeframe could harm the member.")
    if by_rule:
        urgency = Urgency.EXPEDITED  # some Community Supports are expedited by rule, whatever was asked
    if program is None or reader.failed_under("service"):
        return None, urgency, reason, by_rule
    requested = ServiceRequested(program=program, pof_codes=tuple(canonical_pofs),
                                 cs_code=cs_code if program is Program.CS else None,
                                 after_acute_care=after_acute)
    return requested, urgency, reason, by_rule


@lru_cache(maxsize=4096)
def _plan_offered_in(plan_code: str, county: str, today: date) -> bool:
    # The county→MCP table is fixed for the process; scanning it per request was a visible share of intake.
    return plan_offered_in(plan_code, county, today)


def _read_plan(reader: _Reader, raw: Mapping[str, Any], county: str | None, today: date) -> str | None:
    text = reader.text(raw, "mcp_code", "mcp_code", required=False, max_length=60)
    if text is None:
        return None
    plan = plan_named(text)
    if plan is None:
        reader.fail("mcp_code", "known_plan", "Not a Medi-Cal managed care plan CalHub knows.")
        return None
    if county is not None and not _plan_offered_in(plan.code, county, today):
        reader.fail("mcp_code", "plan_offered_in_county",
                    "This plan does not operate in the member's county (DHCS county-plan table).")
        return None
    return plan.code


def _read_referring(reader: _Reader, raw: Mapping[str, Any]) -> tuple[str | None, str | None, Contact | None]:
    referring = reader.obj(raw, "referring", "referring", required=True, allowed=_REFERRING)
    if referring is None:
        return None, None, None
    npi = reader.text(referring, "npi", "referring.npi", required=True, max_length=10)
    if npi is not None:
        problem = npi_problem(npi)
        if problem is not None:
            reader.fail("referring.npi", "npi_check_digit" if "check digit" in problem else "npi_format",
                        f"An NPI {problem}.")
            npi = None
    name = reader.text(referring, "name", "referring.name", required=False, max_length=200)
    contact_raw = reader.obj(referring, "contact", "referring.contact", required=True, allowed=_CONTACT)
    contact = None
    if contact_raw is not None:
        contact_name = reader.text(contact_raw, "name", "referring.contact.name", required=True)
        phone = _phone(reader, contact_raw, "phone", "referring.contact.phone")
        email = reader.text(contact_raw, "email", "referring.contact.email", required=False, max_length=254)
        if email is not None and not _EMAIL.fullmatch(email):
            reader.fail("referring.contact.email", "email_format", "Must be an email address.")
            email = None
        # On what was read: an empty string is no way to reach anyone. A phone or email that was given but is
        # malformed has its own violation already.
        if phone is None and email is None and not (reader.failed_under("referring.contact.phone")
                                                     or reader.failed_under("referring.contact.email")):
            reader.fail("referring.contact", "phone_or_email_required",
                        "Give a phone number or an email address to reach the referrer.")
        if contact_name is not None and not reader.failed_under("referring.contact"):
            contact = Contact(name=contact_name, phone=phone, email=email)
    return npi, name, contact


def _read_consent(reader: _Reader, raw: Mapping[str, Any], today: date) -> Consent:
    consent = reader.obj(raw, "consent", "consent", required=False, allowed=_CONSENT)
    if consent is None:
        return Consent()
    share = reader.boolean(consent, "share_with_mcp", "consent.share_with_mcp")
    contact = reader.boolean(consent, "contact_member", "consent.contact_member")
    obtained = reader.day(consent, "obtained_on", "consent.obtained_on", required=False)
    if obtained is not None and obtained > today:
        reader.fail("consent.obtained_on", "date_in_future", "Consent cannot be obtained in the future.")
        obtained = None
    return Consent(share_with_mcp=share, contact_member=contact, obtained_on=obtained)


def _read_identifiers(reader: _Reader, raw: Mapping[str, Any]) -> tuple[dict[str, str], ...]:
    value = raw.get("external_identifiers")
    if value is None:
        return ()
    if not isinstance(value, list) or len(value) > 10:
        reader.fail("external_identifiers", "type", "Must be a list of at most 10 {system, value} objects.")
        return ()
    found: list[dict[str, str]] = []
    for index, item in enumerate(value):
        path = f"external_identifiers[{index}]"
        if not isinstance(item, Mapping):
            reader.fail(path, "type", "Must be an object with system and value.")
            continue
        system = reader.text(item, "system", f"{path}.system", required=False, max_length=200)
        ident = reader.text(item, "value", f"{path}.value", required=True, max_length=200)
        if ident is not None:
            found.append({"system": system or "", "value": ident})
    return tuple(found)
