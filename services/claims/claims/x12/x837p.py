"""X12 837P professional claims, 005010X222A1: typed claims in, one interchange out (pure, no I/O).

Layout per transaction set (TR3 005010X222A1): 1000A submitter, 1000B receiver, then one 2000A billing
provider HL per billing provider with one 2000B subscriber HL per claim (the Medi-Cal member is always the
subscriber, so there is no 2000C patient loop), 2300 claim, 2310B rendering provider, 2400 service lines.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

from claims.domain.pricing import cents
from shared.x12.envelope import EnvelopeSpec, Party, build_interchange_rendered

IMPLEMENTATION = "005010X222A1"  # GS08 and ST03; x12sdk writes X222A2, which MCPs reject
FUNCTIONAL_CODE = "HC"
# TR3 1.4.1: "no more than 5000 CLM segments in a single transaction set (ST-SE)".
MAX_CLAIMS_PER_TRANSACTION = 5000
MAX_LINES_PER_CLAIM = 50  # loop 2400 repeats at most 50 times
MAX_DIAGNOSES = 12  # HI in 2300 carries at most 12 codes
FREQUENCIES = {"1": "original", "7": "replacement", "8": "void"}
CLAIM_FILING_MEDICAID = "MC"  # SBR09: Medi-Cal managed care



@dataclass(frozen=True)
class PostalAddress:
    """N3/N4: street, city, state, ZIP (the billing provider's must be the 9-digit ZIP+4)."""

    line1: str
    city: str
    state: str
    zip: str
    line2: str | None = None


@dataclass(frozen=True)
class Submitter:
    """Loop 1000A: who sends the file (the hub), with its EDI contact."""

    name: str
    identifier: str
    contact_name: str
    contact_phone: str


@dataclass(frozen=True)
class Receiver:
    """Loop 1000B: the MCP's EDI receiver."""

    name: str
    identifier: str


@dataclass(frozen=True)
class Payer:
    """Loop 2010BB: the MCP as payer (NM1*PR, payer id qualifier PI)."""

    name: str
    identifier: str


@dataclass(frozen=True)
class BillingProvider:
    """Loop 2010AA: the hub or the CBO, per the MCP contract; NPI, EIN and a 9-digit ZIP address."""

    name: str
    npi: str
    tin: str
    address: PostalAddress
    taxonomy: str | None = None


@dataclass(frozen=True)
class Subscriber:
    """Loop 2010BA: the member, identified by CIN (NM1*IL qualifier MI)."""

    cin: str
    last_name: str
    first_name: str
    birth_date: date
    sex: str  # F, M or U (DMG03)
    address: PostalAddress
    middle_name: str | None = None


@dataclass(frozen=True)
class RenderingProvider:
    """Loop 2310B: the person (or CBO) who rendered the services, when different from the billing provider."""

    npi: str
    last_name: str
    first_name: str | None = None
    taxonomy: str | None = None
    organization: bool = False


@dataclass(frozen=True)
class ServiceLine:
    """Loop 2400: SV1 (HCPCS with up to 4 modifiers, charge, units, diagnosis pointers) and DTP*472."""

    procedure_code: str
    charge: Decimal
    units: Decimal
    service_from: date
    diagnosis_pointers: tuple[int, ...]
    modifiers: tuple[str, ...] = ()
    service_to: date | None = None
    place_of_service: str | None = None  # only when it differs from CLM05-1
    control_number: str | None = None  # REF*6R, echoed in the 835 SVC loop


@dataclass(frozen=True)
class ProfessionalClaim:
    """Loop 2300: CLM01 claim id, CLM05 place of service and frequency, REF*F8/REF*G1, HI diagnoses, lines."""

    claim_id: str
    billing_provider: BillingProvider
    subscriber: Subscriber
    payer: Payer
    place_of_service: str
    diagnosis_codes: tuple[str, ...]
    lines: tuple[ServiceLine, ...]
    frequency_code: str = "1"
    payer_claim_number: str | None = None  # REF*F8, required for frequency 7 and 8
    prior_authorization: str | None = None  # REF*G1
    rendering_provider: RenderingProvider | None = None

    @property
    def total_charge(self) -> Decimal:
        """CLM02: the sum of the lines' SV102 charges, each as SV102 writes it (in cents), so the two always
        agree even for a charge with sub-cent digits (prices are whole cents; a hand-made claim may not be)."""
        return sum((cents(line.charge) for line in self.lines), Decimal("0"))


@dataclass(frozen=True)
class BatchHeader:
    """What the interchange needs besides its claims."""

    sender: Party
    receiver_party: Party
    submitter: Submitter
    receiver: Receiver
    interchange_control_number: int
    group_control_number: int
    created: datetime
    reference: str  # BHT03: our batch id
    usage: str = "P"


@dataclass
class Built837:
    """The interchange text and, per claim, the ST02 of the transaction set that carries it."""

    text: str
    transaction_of_claim: dict[str, str] = field(default_factory=dict)
    transaction_sets: int = 0


class ClaimBuildError(ValueError):
    """A claim cannot be expressed in 005010X222A1: a structural limit, or a value the file cannot carry. The
    message names the element and the rule, never the value."""


def money(value: Decimal) -> str:
    """An X12 R (decimal) amount in cents, rounded as prices are (`pricing.cents`): no trailing zeros beyond
    cents, no exponent (`125`, `12.5`, `0`)."""
    text = format(cents(value), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"


def quantity(value: Decimal) -> str:
    """An X12 R quantity (SV104 units) without trailing zeros."""
    text = format(value.normalize(), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


_DELIMITERS_TO_SPACE = str.maketrans({ch: " " for ch in "~*:^\r\n\t"})
# The ISA separators of our 837P: element, component, repetition, segment.
DELIMITERS = frozenset("*:^~")
REFERENCE_MAX = 50  # REF02 is AN 1/50 (2300 REF*G1, REF*F8)
REFERENCE_RULE = (f"1 to {REFERENCE_MAX} characters of the X12 basic or extended character set, without the "
                  "delimiters * : ^ ~")
TEXT_RULE = ("letters of the Latin alphabet (accents are dropped), digits, spaces and X12 punctuation, with at "
             "least one letter or digit")


_LETTER_OR_DIGIT = re.compile(r"[A-Za-z0-9]")
# Typographic punctuation that phones and word processors put in names and addresses (O’Brien, Mary‐Kate,
# St. Mary’s Ave): written as its ASCII form, not refused. NFKD has no ASCII decomposition for these.
_TYPOGRAPHIC = str.maketrans({
    **dict.fromkeys("\u2018\u2019\u201a\u201b\u2032\u02bc", "'"),
    **dict.fromkeys("\u201c\u201d\u201e\u201f\u2033", '"'),
    **dict.fromkeys("\u2010\u2011\u2012\u2013\u2014\u2015\u2212", "-"),
})


def _x12_character(ch: str) -> bool:
    # X12.6 as 5010 uses it: the basic set (A-Z, 0-9, space, ! " & ' ( ) * + , - . / : ; ? =) and the extended
    # set (a-z, % @ [ ] _ { } \ | < > ~ ^ ` # $) together are exactly the printable ASCII characters.
    return " " <= ch <= "~"


def reference_problem(value: str) -> str | None:
    """Why `value` cannot be written as a REF02 reference (REF*G1 prior authorization, REF*F8 payer claim
    number), or None. A delimiter inside would end the element or the segment early."""
    if not 1 <= len(value) <= REFERENCE_MAX:
        return f"must be 1 to {REFERENCE_MAX} characters"
    if any(ch in DELIMITERS or not _x12_character(ch) for ch in value):
        return "must use the X12 basic or extended character set, without the delimiters * : ^ ~"
    return None


def text_problem(value: str) -> str | None:
    """Why a name or address line would lose characters when written into the 837P (`_x12_text`), or None.

    The only transliterations are the documented ones: accents are folded (Peña -> PENA), typographic quotes
    and dashes become their ASCII forms (O’Brien -> O'BRIEN) and delimiters become spaces. A character with no
    ASCII letter under its accents (王, ß, Ø) would silently disappear, so it is refused instead, as is a value
    left with no letter or digit.
    """
    if value.isascii():  # most names: checked without folding
        if not value.isprintable() and not all(_x12_character(ch) or ch in "\t\r\n" for ch in value):
            return "must use the X12 character set"
        return None if _LETTER_OR_DIGIT.search(value) else "must contain a letter or digit"
    value = value.translate(_TYPOGRAPHIC)
    for ch in value:
        if _x12_character(ch) or ch in "\t\r\n" or unicodedata.combining(ch):
            continue
        base = [c for c in unicodedata.normalize("NFKD", ch) if not unicodedata.combining(c)]
        if not base or not all(_x12_character(c) for c in base):
            return "must be written in Latin letters: a character has no X12 equivalent"
    return None if _LETTER_OR_DIGIT.search(_x12_text(value, len(value))) else "must contain a letter or digit"


def _x12_text(value: str, limit: int) -> str:
    # X12 files are ASCII: accents are folded (Peña -> PENA), our delimiters '~*:^' become spaces, and names
    # are upper-cased as MCP EDI systems expect.
    if not value.isascii():
        value = unicodedata.normalize("NFKD", value.translate(_TYPOGRAPHIC)).encode("ascii", "ignore").decode()
    return " ".join(value.translate(_DELIMITERS_TO_SPACE).upper().split())[:limit]


def _seg(*elements: str) -> str:
    """One segment without its terminator; trailing empty elements dropped (5010 forbids them)."""
    return "*".join(elements).rstrip("*")


def _composite(*components: str) -> str:
    return ":".join(components).rstrip(":")


def _check_text(value: str | None, element: str, required: bool = True) -> None:
    if value is None or (not value and not required):
        return
    problem = text_problem(value)
    if problem is not None:
        raise ClaimBuildError(f"{element} {problem}")


def check_claim(claim: ProfessionalClaim) -> None:
    """Raise ClaimBuildError (naming the element and the rule) when the claim cannot be written as one valid
    005010X222A1 claim: structural limits, and values the file cannot carry unchanged."""
    lines = claim.lines
    diagnoses = len(claim.diagnosis_codes)
    if not lines:
        raise ClaimBuildError("a claim needs at least one service line")
    if len(lines) > MAX_LINES_PER_CLAIM:
        raise ClaimBuildError(f"a claim carries at most {MAX_LINES_PER_CLAIM} service lines")
    if not 1 <= diagnoses <= MAX_DIAGNOSES:
        raise ClaimBuildError(f"a claim carries 1 to {MAX_DIAGNOSES} diagnosis codes")
    if claim.frequency_code not in FREQUENCIES:
        raise ClaimBuildError("frequency code must be 1, 7 or 8")
    if claim.frequency_code in ("7", "8") and not claim.payer_claim_number:
        raise ClaimBuildError("a replacement or void needs the payer claim number (REF*F8)")
    for line in lines:
        if len(line.modifiers) > 4:
            raise ClaimBuildError("SV101 carries at most 4 modifiers")
        pointers = line.diagnosis_pointers
        if not 1 <= len(pointers) <= 4:
            raise ClaimBuildError("SV107 carries 1 to 4 diagnosis pointers")
        if not 1 <= min(pointers) <= max(pointers) <= diagnoses:
            raise ClaimBuildError("a diagnosis pointer points past the claim's diagnosis codes")
    # Values from outside CalHub (an MCP's authorization number, a CBO's correction, member demographics): one
    # that the file cannot carry would fail the whole batch's validation, or split a segment.
    if claim.prior_authorization:
        problem = reference_problem(claim.prior_authorization)
        if problem is not None:
            raise ClaimBuildError(f"REF*G1 prior authorization number {problem}")
    if claim.frequency_code in ("7", "8") and claim.payer_claim_number:
        problem = reference_problem(claim.payer_claim_number)
        if problem is not None:
            raise ClaimBuildError(f"REF*F8 payer claim number {problem}")
    # Names and addresses: a character with no X12 equivalent would be dropped (a non-Latin name becomes an empty
    # NM103, which fails validation); intake refuses them, this catches rows stored before it did.
    sub = claim.subscriber
    _check_text(sub.last_name, "NM1*IL subscriber last name")
    _check_text(sub.first_name, "NM1*IL subscriber first name", required=False)
    _check_text(sub.middle_name, "NM1*IL subscriber middle name", required=False)
    _check_text(sub.address.line1, "N3 subscriber address line 1")
    _check_text(sub.address.line2, "N3 subscriber address line 2", required=False)
    _check_text(sub.address.city, "N4 subscriber city")
    rendering = claim.rendering_provider
    if rendering is not None:
        _check_text(rendering.last_name, "NM1*82 rendering provider last or organization name")
        _check_text(rendering.first_name, "NM1*82 rendering provider first name", required=False)


class _SegmentWriter:
    """Renders the claims of one batch as segment text (no terminators).

    A 50,000-claim batch has about a million segments, so segments are written as strings straight away (no
    element lists, no generic renderer), and what many claims share — payer, rendering providers, cities, dates,
    diagnosis lists, amounts — is rendered once per batch and looked up after that.
    """

    def __init__(self) -> None:
        self._dates: dict[date, str] = {}
        self._amounts: dict[Decimal, str] = {}
        self._quantities: dict[Decimal, str] = {}
        self._n4: dict[tuple[str, str, str], str] = {}
        self._payers: dict[tuple[str, str], str] = {}
        self._renderings: dict[tuple[str, str, str | None, str | None, bool], tuple[str, ...]] = {}
        self._diagnoses: dict[tuple[str, ...], str] = {}
        self._pointers: dict[tuple[int, ...], str] = {}
        self._procedures: dict[tuple[str, tuple[str, ...]], str] = {}

    def date(self, value: date) -> str:
        text = self._dates.get(value)
        if text is None:
            text = self._dates[value] = value.strftime("%Y%m%d")
        return text

    def money(self, value: Decimal) -> str:
        # Equal amounts render alike, except a signed zero and NaN: those skip the cache.
        if not value.is_finite() or not value:
            return money(value)
        text = self._amounts.get(value)
        if text is None:
            text = self._amounts[value] = money(value)
        return text

    def quantity(self, value: Decimal) -> str:
        if not value.is_finite() or not value:
            return quantity(value)
        text = self._quantities.get(value)
        if text is None:
            text = self._quantities[value] = quantity(value)
        return text

    def address(self, address: PostalAddress) -> tuple[str, str]:
        """N3 and N4."""
        line2 = address.line2
        n3 = ("N3*" + _x12_text(address.line1, 55) + ("*" + _x12_text(line2, 55) if line2 else "")).rstrip("*")
        key = (address.city, address.state, address.zip)
        n4 = self._n4.get(key)
        if n4 is None:
            n4 = self._n4[key] = _seg("N4", _x12_text(address.city, 30), address.state.upper(), address.zip)
        return n3, n4

    def payer(self, payer: Payer) -> str:
        key = (payer.name, payer.identifier)
        text = self._payers.get(key)
        if text is None:
            text = self._payers[key] = _seg("NM1", "PR", "2", _x12_text(payer.name, 60), "", "", "", "", "PI",
                                            payer.identifier)
        return text

    def rendering(self, rendering: RenderingProvider) -> tuple[str, ...]:
        """Loop 2310B: NM1*82 and, with a taxonomy, PRV*PE."""
        key = (rendering.npi, rendering.last_name, rendering.first_name, rendering.taxonomy, rendering.organization)
        segments = self._renderings.get(key)
        if segments is None:
            if rendering.organization:
                nm1 = _seg("NM1", "82", "2", _x12_text(rendering.last_name, 60), "", "", "", "", "XX", rendering.npi)
            else:
                nm1 = _seg("NM1", "82", "1", _x12_text(rendering.last_name, 60),
                           _x12_text(rendering.first_name or "", 35), "", "", "", "XX", rendering.npi)
            segments = (nm1, "PRV*PE*PXC*" + rendering.taxonomy) if rendering.taxonomy else (nm1,)
            self._renderings[key] = segments
        return segments

    def diagnoses(self, codes: tuple[str, ...]) -> str:
        text = self._diagnoses.get(codes)
        if text is None:
            text = self._diagnoses[codes] = "HI*" + "*".join(
                ("ABK:" if index == 0 else "ABF:") + code.replace(".", "").upper() for index, code in enumerate(codes))
        return text

    def pointers(self, pointers: tuple[int, ...]) -> str:
        text = self._pointers.get(pointers)
        if text is None:
            text = self._pointers[pointers] = ":".join(str(p) for p in pointers)
        return text

    def procedure(self, code: str, modifiers: tuple[str, ...]) -> str:
        """SV101: HC, the procedure code and its modifiers."""
        key = (code, modifiers)
        text = self._procedures.get(key)
        if text is None:
            text = self._procedures[key] = _composite("HC", code, *modifiers)
        return text

    def claim(self, claim: ProfessionalClaim, subscriber_hl: int, parent_hl: int, out: list[str]) -> None:
        """Append loops 2000B-2400 of one claim to `out`. Raises ClaimBuildError."""
        check_claim(claim)
        sub = claim.subscriber
        n3, n4 = self.address(sub.address)
        sex = sub.sex
        out += (
            f"HL*{subscriber_hl}*{parent_hl}*22*0",
            "SBR*P*18*******" + CLAIM_FILING_MEDICAID,
            _seg("NM1", "IL", "1", _x12_text(sub.last_name, 60), _x12_text(sub.first_name, 35),
                 _x12_text(sub.middle_name, 25) if sub.middle_name else "", "", "", "MI", sub.cin),
            n3, n4,
            "DMG*D8*" + self.date(sub.birth_date) + ("*F" if sex == "F" else "*M" if sex == "M" else "*U"),
            self.payer(claim.payer),
            # CLM05: place of service : B (facility code qualifier, place of service) : frequency.
            f"CLM*{claim.claim_id}*{self.money(claim.total_charge)}***{claim.place_of_service}:B:"
            f"{claim.frequency_code}*Y*A*Y*Y",
        )
        # 2300 REF order in the TR3: G1 (prior authorization) comes before F8 (payer claim control number).
        if claim.prior_authorization:
            out.append("REF*G1*" + claim.prior_authorization)
        if claim.payer_claim_number and claim.frequency_code in ("7", "8"):
            out.append("REF*F8*" + claim.payer_claim_number)
        out.append(self.diagnoses(claim.diagnosis_codes))
        rendering = claim.rendering_provider
        if rendering is not None and rendering.npi != claim.billing_provider.npi:
            out += self.rendering(rendering)
        claim_place = claim.place_of_service
        for number, line in enumerate(claim.lines, start=1):
            place = line.place_of_service
            out.append(f"LX*{number}")
            out.append(_seg("SV1", self.procedure(line.procedure_code, line.modifiers), self.money(line.charge),
                            "UN", self.quantity(line.units), place if place and place != claim_place else "", "",
                            self.pointers(line.diagnosis_pointers)))
            end = line.service_to
            if end is None or end == line.service_from:
                out.append("DTP*472*D8*" + self.date(line.service_from))
            else:
                out.append(f"DTP*472*RD8*{self.date(line.service_from)}-{self.date(end)}")
            if line.control_number:
                out.append("REF*6R*" + line.control_number)


def claim_segments(claim: ProfessionalClaim, subscriber_hl: int, parent_hl: int) -> list[str]:
    """Loops 2000B-2400 of one claim (one subscriber HL per claim), as segments without terminators.

    Raises ClaimBuildError.
    """
    segments: list[str] = []
    _SegmentWriter().claim(claim, subscriber_hl, parent_hl, segments)
    return segments


def _billing_provider_segments(provider: BillingProvider, hl: int, writer: _SegmentWriter) -> list[str]:
    segments = [f"HL*{hl}**20*1"]
    if provider.taxonomy:
        segments.append("PRV*BI*PXC*" + provider.taxonomy)
    segments.append(_seg("NM1", "85", "2", _x12_text(provider.name, 60), "", "", "", "", "XX", provider.npi))
    segments.extend(writer.address(provider.address))
    segments.append("REF*EI*" + provider.tin)
    return segments


def _transaction_body(header: BatchHeader, claims: Sequence[ProfessionalClaim], control: str,
                      writer: _SegmentWriter) -> list[str]:
    created = header.created
    body = [
        # BHT06 CH: chargeable (fee-for-service claims); BHT02 00: original transmission.
        _seg("BHT", "0019", "00", f"{header.reference}{control}"[-30:], created.strftime("%Y%m%d"),
             created.strftime("%H%M"), "CH"),
        _seg("NM1", "41", "2", _x12_text(header.submitter.name, 60), "", "", "", "", "46",
             header.submitter.identifier),
        _seg("PER", "IC", _x12_text(header.submitter.contact_name, 60), "TE", header.submitter.contact_phone),
        _seg("NM1", "40", "2", _x12_text(header.receiver.name, 60), "", "", "", "", "46",
             header.receiver.identifier),
    ]
    hl = 0
    by_provider: dict[BillingProvider, list[ProfessionalClaim]] = {}
    for claim in claims:
        by_provider.setdefault(claim.billing_provider, []).append(claim)
    for provider, provider_claims in by_provider.items():
        hl += 1
        parent = hl
        body.extend(_billing_provider_segments(provider, parent, writer))
        for claim in provider_claims:
            hl += 1
            writer.claim(claim, hl, parent, body)
    return body


def chunk(claims: Sequence[ProfessionalClaim], size: int) -> Iterable[Sequence[ProfessionalClaim]]:
    """Consecutive slices of at most `size` claims."""
    for start in range(0, len(claims), size):
        yield claims[start:start + size]


def build_837p(header: BatchHeader, claims: Sequence[ProfessionalClaim], *,
               max_claims_per_transaction: int = MAX_CLAIMS_PER_TRANSACTION, line_breaks: bool = False,
               ) -> Built837:
    """One interchange with one HC group: claims ordered by billing provider, at most 5000 per ST.

    Raises ClaimBuildError for a claim the guide cannot express, ValueError for an empty batch.
    """
    if not claims:
        raise ValueError("an 837P batch needs at least one claim")
    ordered = sorted(claims, key=lambda c: (c.billing_provider.npi, c.billing_provider.tin, c.claim_id))
    parts = list(chunk(ordered, max_claims_per_transaction))
    owner = {claim.claim_id: f"{index:04d}" for index, part in enumerate(parts, start=1) for claim in part}
    writer = _SegmentWriter()

    def transactions() -> Iterator[list[str]]:
        # One transaction set's segments at a time: the envelope turns each into text before the next is built.
        for index, part in enumerate(parts, start=1):
            yield _transaction_body(header, part, f"{index:04d}", writer)

    spec = EnvelopeSpec(sender=header.sender, receiver=header.receiver_party,
                        interchange_control_number=header.interchange_control_number,
                        group_control_number=header.group_control_number, functional_code=FUNCTIONAL_CODE,
                        version=IMPLEMENTATION, created=header.created, usage=header.usage)
    text = build_interchange_rendered(spec, transactions(), line_breaks=line_breaks)
    return Built837(text=text, transaction_of_claim=owner, transaction_sets=len(parts))
