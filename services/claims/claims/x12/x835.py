"""835 Health Care Claim Payment/Advice (005010X221A1): a fast, pure parser into typed, immutable values.

One pass over the segments: the envelope (ISA/GS/ST/SE/GE/IEA) is checked for control numbers and counts, each
transaction set becomes a `Remittance` (one payment: BPR + TRN) holding its claim payments (loop 2100), their
service lines (loop 2110) and the provider-level adjustments (PLB). Amounts are `Decimal`, dates are `date`.
Errors raise `X835Error` naming the segment position, element and rule, never an element's value (PHI).
Balancing and matching are not done here: see claims.domain.remittance.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Final, NamedTuple

from shared.collector import collector_paused
from shared.x12.segments import X12SyntaxError, detect_delimiters

IMPLEMENTATION: Final = "005010X221A1"
FUNCTIONAL_CODE: Final = "HP"  # GS01 for 835

# CLP02 claim status codes (835 TR3, loop 2100).
CLAIM_STATUS_CODES: Final = frozenset({"1", "2", "3", "4", "19", "20", "21", "22", "23", "25"})
# CAS01: CR is not a 5010 group code (it was dropped after 4010).
ADJUSTMENT_GROUPS: Final = frozenset({"CO", "OA", "PI", "PR"})
# Every segment the 835 TR3 allows inside a transaction set; anything else means a wrong or broken file.
_KNOWN_SEGMENTS: Final = frozenset({
    "BPR", "TRN", "CUR", "REF", "DTM", "N1", "N2", "N3", "N4", "PER", "RDM", "LX", "TS3", "TS2", "CLP", "CAS",
    "NM1", "MIA", "MOA", "AMT", "QTY", "SVC", "LQ", "PLB",
})
_ENVELOPE_SEGMENTS: Final = frozenset({"ISA", "GS", "ST", "GE", "IEA"})
_ZERO: Final = Decimal(0)


class X835Error(X12SyntaxError):
    """The interchange is not a well-formed 005010X221A1 835; names position, segment, element and rule."""

    def __init__(self, message: str, *, position: int = 0, segment_id: str | None = None,
                 element: str | None = None) -> None:
        super().__init__(message, position=position, segment_id=segment_id)
        self.element = element

    def as_dict(self) -> dict[str, object]:
        """The error as JSON-ready data (no element values: they may carry PHI)."""
        return {**super().as_dict(), "element": self.element}


class Adjustment(NamedTuple):
    """One CAS adjustment: group (CO, PR, OA, PI), CARC, amount and optional quantity."""

    group: str
    reason: str
    amount: Decimal
    quantity: Decimal | None = None


class Procedure(NamedTuple):
    """A composite medical procedure (SVC01 / SVC06): qualifier (HC for HCPCS), code and up to 4 modifiers."""

    qualifier: str
    code: str
    modifiers: tuple[str, ...] = ()


class Person(NamedTuple):
    """An NM1 person in loop 2100 (patient QC, insured IL, corrected patient 74). PHI: kept out of repr."""

    last_name: str
    first_name: str
    middle_name: str = ""
    id_qualifier: str = ""
    id: str = ""

    def __repr__(self) -> str:
        # Names and member ids are PHI: a logged or printed value must not show them.
        return f"Person(id_qualifier={self.id_qualifier!r}, <redacted>)"


class ServicePayment(NamedTuple):
    """Loop 2110: one adjudicated service line."""

    position: int  # 1-based segment position of SVC in the interchange
    procedure: Procedure
    charge: Decimal  # SVC02
    paid: Decimal  # SVC03
    revenue_code: str = ""  # SVC04
    units_paid: Decimal | None = None  # SVC05 (1 when absent, per the TR3)
    original_procedure: Procedure | None = None  # SVC06: the procedure as submitted, when the payer changed it
    original_units: Decimal | None = None  # SVC07
    service_from: date | None = None  # DTM*472 or DTM*150
    service_to: date | None = None  # DTM*472 or DTM*151
    line_control_number: str = ""  # REF*6R: the line item control number we sent in the 837P
    adjustments: tuple[Adjustment, ...] = ()
    remarks: tuple[str, ...] = ()  # LQ*HE: RARC
    allowed: Decimal | None = None  # AMT*B6
    references: tuple[tuple[str, str], ...] = ()  # other REF qualifier/value pairs

    @property
    def submitted_procedure(self) -> Procedure:
        """The procedure as we billed it: SVC06 when the payer changed it, else SVC01."""
        return self.original_procedure or self.procedure


class ClaimPayment(NamedTuple):
    """Loop 2100: one claim payment (CLP) with its adjustments and service lines."""

    position: int  # segment position of CLP
    header_number: str  # LX01 of the enclosing 2000 loop
    patient_control_number: str  # CLP01: our CLM01 claim id
    status: str  # CLP02
    charge: Decimal  # CLP03
    paid: Decimal  # CLP04
    patient_responsibility: Decimal | None  # CLP05
    filing_indicator: str  # CLP06 (MC: Medicaid)
    payer_claim_number: str  # CLP07
    facility_code: str = ""  # CLP08
    frequency_code: str = ""  # CLP09
    adjustments: tuple[Adjustment, ...] = ()  # claim-level CAS
    patient: Person | None = None  # NM1*QC
    insured: Person | None = None  # NM1*IL
    corrected_patient: Person | None = None  # NM1*74
    rendering_provider_id: str = ""  # NM1*82 09
    remarks: tuple[str, ...] = ()  # MOA03-07 / MIA05, MIA20-24: claim-level RARC
    references: tuple[tuple[str, str], ...] = ()  # REF qualifier/value pairs (F8 original reference, ...)
    statement_from: date | None = None  # DTM*232
    statement_to: date | None = None  # DTM*233
    received_on: date | None = None  # DTM*050: the payer's receipt date (timely-payment clock)
    amounts: tuple[tuple[str, Decimal], ...] = ()  # AMT qualifier/amount pairs (AU coverage, I interest, ...)
    services: tuple[ServicePayment, ...] = ()

    def amount(self, qualifier: str) -> Decimal | None:
        """The AMT amount with this qualifier (e.g. "I" interest), or None."""
        for code, value in self.amounts:
            if code == qualifier:
                return value
        return None

    def reference(self, qualifier: str) -> str | None:
        """The REF value with this qualifier (e.g. "F8"), or None."""
        for code, value in self.references:
            if code == qualifier:
                return value
        return None


class ProviderAdjustment(NamedTuple):
    """One PLB adjustment: reason (PLB03-1), reference (PLB03-2), amount (positive reduces the payment)."""

    position: int
    provider_id: str  # PLB01
    fiscal_period_date: date  # PLB02
    reason: str
    reference: str
    amount: Decimal


class Party(NamedTuple):
    """Payer (N1*PR) or payee (N1*PE): name, id qualifier and id, and additional REF ids."""

    name: str
    id_qualifier: str = ""
    id: str = ""
    references: tuple[tuple[str, str], ...] = ()


class Remittance(NamedTuple):
    """One 835 transaction set: one payment (BPR) with its trace number (TRN), claims and PLB adjustments."""

    control_number: str  # ST02
    position: int  # segment position of ST
    handling_code: str  # BPR01: C payment + advice, I advice only, H notification, ...
    total_paid: Decimal  # BPR02
    credit_debit: str  # BPR03: C credit, D debit
    payment_method: str  # BPR04: ACH, CHK, NON, BOP, FWT
    payment_date: date  # BPR16: check issue or EFT effective date
    trace_type: str  # TRN01
    trace_number: str  # TRN02: check or EFT trace number, matches the bank deposit
    originator_id: str  # TRN03: payer identifier (1 + EIN, usually)
    payer: Party
    payee: Party
    originator_supplemental: str = ""  # TRN04
    production_date: date | None = None  # DTM*405
    claims: tuple[ClaimPayment, ...] = ()
    provider_adjustments: tuple[ProviderAdjustment, ...] = ()

    @property
    def net_payment(self) -> Decimal:
        """BPR02 signed by BPR03: a debit (D) takes money back from the provider."""
        return -self.total_paid if self.credit_debit == "D" else self.total_paid


class RemittanceFile(NamedTuple):
    """A parsed interchange of 835s: envelope facts and one `Remittance` per transaction set."""

    interchange_control_number: str  # ISA13
    sender_id: str  # ISA06
    receiver_id: str  # ISA08
    usage: str  # ISA15: P production, T test
    group_control_number: str  # GS06
    application_sender: str  # GS02
    application_receiver: str  # GS03
    remittances: tuple[Remittance, ...]

    @property
    def claim_count(self) -> int:
        """Claim payments (CLP) in every transaction set."""
        return sum(len(r.claims) for r in self.remittances)


# ----------------------------------------------------------------------------------------------------------
# Parsing. The loop below runs once per segment of files with hundreds of thousands of segments: it keeps
# state in a few drafts and checks values with string methods rather than regular expressions.

_AMOUNT_CHARACTERS: Final = "0123456789.-"


def _fail(message: str, position: int, segment_id: str, element: str | None = None) -> X835Error:
    return X835Error(message, position=position, segment_id=segment_id, element=element)


def _amount(value: str, position: int, segment_id: str, element: str) -> Decimal:
    # X12 "R" type: optional minus, digits, optional decimal point; never exponents, spaces, "_", NaN or
    # Infinity (all of which Decimal would accept). strip() leaves something iff a character is outside the set.
    if not value or value.strip(_AMOUNT_CHARACTERS):
        raise _fail(f"{element} must be a decimal amount", position, segment_id, element)
    try:
        return Decimal(value)
    except InvalidOperation:  # "1.2.3", "--1", "-", "."
        raise _fail(f"{element} must be a decimal amount", position, segment_id, element) from None


def _date(value: str, position: int, segment_id: str, element: str) -> date:
    # D8 format CCYYMMDD.
    if len(value) != 8 or not value.isdigit():
        raise _fail(f"{element} must be a date CCYYMMDD", position, segment_id, element)
    try:
        return date(int(value[:4]), int(value[4:6]), int(value[6:]))
    except ValueError:
        raise _fail(f"{element} is not a calendar date", position, segment_id, element) from None


def _required(elements: list[str], index: int, position: int) -> str:
    value = elements[index] if index < len(elements) else ""
    if not value:
        sid = elements[0]
        raise _fail(f"{sid}{index:02d} is required", position, sid, f"{sid}{index:02d}")
    return value


def _get(elements: list[str], index: int) -> str:
    return elements[index] if index < len(elements) else ""


def _adjustments(e: list[str], position: int, out: list[Adjustment], amounts: dict[str, Decimal]) -> None:
    # CAS01 group, then up to six (reason, amount, quantity) triples in CAS02-CAS19.
    count = len(e)
    if count < 4:
        raise _fail("CAS needs a group, a reason and an amount", position, "CAS", "CAS0" + str(count))
    if count > 20:
        raise _fail("CAS has more than 19 elements", position, "CAS", "CAS20")
    group = e[1]
    if group not in ADJUSTMENT_GROUPS:
        raise _fail("CAS01 must be CO, OA, PI or PR", position, "CAS", "CAS01")
    for start in range(2, count, 3):
        reason = e[start]
        amount_text = e[start + 1] if start + 1 < count else ""
        quantity_text = e[start + 2] if start + 2 < count else ""
        if not reason:
            if amount_text or quantity_text:
                raise _fail(f"CAS{start:02d} is required with an amount", position, "CAS", f"CAS{start:02d}")
            continue
        if not amount_text:
            raise _fail(f"CAS{start + 1:02d} is required with a reason code", position, "CAS", f"CAS{start + 1:02d}")
        amount = amounts.get(amount_text)
        if amount is None:
            amount = amounts[amount_text] = _amount(amount_text, position, "CAS", f"CAS{start + 1:02d}")
        out.append(Adjustment(
            group, reason, amount,
            _amount(quantity_text, position, "CAS", f"CAS{start + 2:02d}") if quantity_text else None,
        ))
    if not e[2]:
        raise _fail("CAS02 is required", position, "CAS", "CAS02")


def _procedure(composite: str, component: str, position: int, element: str) -> Procedure:
    parts = composite.split(component)
    if len(parts) < 2 or not parts[0] or not parts[1]:
        raise _fail(f"{element} needs a qualifier and a code", position, "SVC", element)
    if len(parts) == 2:
        return Procedure(parts[0], parts[1])
    return Procedure(parts[0], parts[1], tuple(m for m in parts[2:6] if m))


def _person(e: list[str]) -> Person:
    return Person(_get(e, 3), _get(e, 4), _get(e, 5), _get(e, 8), _get(e, 9))


class _ServiceDraft:
    __slots__ = ("position", "procedure", "charge", "paid", "revenue_code", "units_paid", "original_procedure",
                 "original_units", "service_from", "service_to", "line_control_number", "adjustments", "remarks",
                 "allowed", "references")

    def __init__(self, position: int, procedure: Procedure, charge: Decimal, paid: Decimal) -> None:
        self.position = position
        self.procedure = procedure
        self.charge = charge
        self.paid = paid
        self.revenue_code = ""
        self.units_paid: Decimal | None = None
        self.original_procedure: Procedure | None = None
        self.original_units: Decimal | None = None
        self.service_from: date | None = None
        self.service_to: date | None = None
        self.line_control_number = ""
        self.adjustments: list[Adjustment] = []
        self.remarks: list[str] = []
        self.allowed: Decimal | None = None
        self.references: list[tuple[str, str]] = []

    def build(self) -> ServicePayment:
        return ServicePayment(
            self.position, self.procedure, self.charge, self.paid, self.revenue_code, self.units_paid,
            self.original_procedure, self.original_units, self.service_from, self.service_to,
            self.line_control_number, tuple(self.adjustments), tuple(self.remarks), self.allowed,
            tuple(self.references),
        )


class _ClaimDraft:
    __slots__ = ("position", "header_number", "elements", "charge", "paid", "patient_responsibility",
                 "adjustments", "patient", "insured", "corrected_patient", "rendering_provider_id", "remarks",
                 "references", "statement_from", "statement_to", "received_on", "amounts", "services")

    def __init__(self, position: int, header_number: str, elements: list[str], charge: Decimal, paid: Decimal,
                 patient_responsibility: Decimal | None) -> None:
        self.position = position
        self.header_number = header_number
        self.elements = elements
        self.charge = charge
        self.paid = paid
        self.patient_responsibility = patient_responsibility
        self.adjustments: list[Adjustment] = []
        self.patient: Person | None = None
        self.insured: Person | None = None
        self.corrected_patient: Person | None = None
        self.rendering_provider_id = ""
        self.remarks: list[str] = []
        self.references: list[tuple[str, str]] = []
        self.statement_from: date | None = None
        self.statement_to: date | None = None
        self.received_on: date | None = None
        self.amounts: list[tuple[str, Decimal]] = []
        self.services: list[ServicePayment] = []

    def build(self) -> ClaimPayment:
        e = self.elements
        return ClaimPayment(
            self.position, self.header_number, e[1], e[2], self.charge, self.paid, self.patient_responsibility,
            e[6], e[7], _get(e, 8), _get(e, 9), tuple(self.adjustments), self.patient, self.insured,
            self.corrected_patient, self.rendering_provider_id, tuple(self.remarks), tuple(self.references),
            self.statement_from, self.statement_to, self.received_on, tuple(self.amounts), tuple(self.services),
        )


class _TransactionParser:
    """State of one ST..SE transaction set while its segments stream by."""

    def __init__(self, control_number: str, position: int, component: str, amounts: dict[str, Decimal],
                 dates: dict[str, date], procedures: dict[str, Procedure]) -> None:
        self.control_number = control_number
        self.position = position
        self.component = component
        # Values repeat heavily in an 835 (fee-schedule amounts, dates of service, procedure codes): each text
        # is checked and converted once per file. Decimal, date and Procedure are immutable, so sharing is safe.
        self.amounts = amounts
        self.dates = dates
        self.procedures = procedures
        self.segment_count = 1  # ST
        self.bpr: list[str] | None = None
        self.bpr_position = 0
        self.trn: list[str] | None = None
        self.production_date: date | None = None
        self.parties: dict[str, Party] = {}
        self.party: str | None = None  # the 1000A/1000B loop we are in ("PR" or "PE")
        self.party_refs: list[tuple[str, str]] = []
        self.header_number: str | None = None
        self.claims: list[ClaimPayment] = []
        self.claim: _ClaimDraft | None = None
        self.service: _ServiceDraft | None = None
        self.adjustments: list[ProviderAdjustment] = []
        self.in_footer = False

    # -- loop closing ---------------------------------------------------------------------------------------
    def close_claim(self) -> None:
        claim = self.claim
        if claim is not None:
            if self.service is not None:
                claim.services.append(self.service.build())
                self.service = None
            self.claims.append(claim.build())
            self.claim = None

    def close_party(self) -> None:
        if self.party is not None:
            current = self.parties[self.party]
            self.parties[self.party] = current._replace(references=tuple(self.party_refs))
            self.party = None
            self.party_refs = []

    # -- one segment ----------------------------------------------------------------------------------------
    def feed(self, e: list[str], position: int) -> None:
        """Take the next segment of the set (ordered by how often each appears in a real 835)."""
        sid = e[0]
        if sid == "CAS":
            if self.service is not None:
                _adjustments(e, position, self.service.adjustments, self.amounts)
            elif self.claim is not None:
                _adjustments(e, position, self.claim.adjustments, self.amounts)
            else:
                raise _fail("CAS outside a claim payment (loop 2100)", position, sid)
        elif sid == "DTM":
            self.date_segment(e, position)
        elif sid == "REF":
            if len(e) < 3 or not e[1] or not e[2]:
                raise _fail("REF01 and REF02 are required", position, sid, "REF02" if len(e) > 1 and e[1]
                            else "REF01")
            service = self.service
            if service is not None:
                if e[1] == "6R":
                    service.line_control_number = e[2]
                else:
                    service.references.append((e[1], e[2]))
            elif self.claim is not None:
                self.claim.references.append((e[1], e[2]))
            elif self.party is not None:
                self.party_refs.append((e[1], e[2]))
            # REF*EV / REF*F2 in the header (receiver id, version): not needed.
        elif sid == "SVC":
            self.start_service(e, position)
        elif sid == "AMT":
            if len(e) < 3 or not e[1]:
                raise _fail("AMT01 and AMT02 are required", position, sid, "AMT01")
            value = self.amounts.get(e[2])
            if value is None:
                value = self.amounts[e[2]] = _amount(e[2], position, sid, "AMT02")
            if self.service is not None:
                if e[1] == "B6":
                    self.service.allowed = value
            elif self.claim is not None:
                self.claim.amounts.append((e[1], value))
            else:
                raise _fail("AMT outside a claim payment (loop 2100)", position, sid)
        elif sid == "CLP":
            self.start_claim(e, position)
        elif sid == "NM1":
            self.name_segment(e, position)
        elif sid == "LQ":
            if self.service is None:
                raise _fail("LQ outside a service line (loop 2110)", position, sid)
            if _required(e, 1, position) == "HE":  # HE: RARC; RX: NCPDP reject codes
                self.service.remarks.append(_required(e, 2, position))
        elif sid == "MOA" or sid == "MIA":
            if self.claim is None or self.service is not None:
                raise _fail(f"{sid} outside a claim payment (loop 2100)", position, sid)
            # MOA03-07 and MIA05, MIA20-24 carry claim-level remark codes (RARC).
            indexes = range(3, 8) if sid == "MOA" else (5, 20, 21, 22, 23, 24)
            self.claim.remarks.extend(e[i] for i in indexes if i < len(e) and e[i])
        elif sid == "LX":
            if self.bpr is None or self.trn is None:
                raise _fail("LX before the BPR and TRN header", position, sid)
            if self.in_footer:
                raise _fail("LX after PLB", position, sid)
            self.close_claim()
            self.close_party()
            self.header_number = _required(e, 1, position)
        elif sid == "PLB":
            self.provider_adjustment(e, position)
        elif sid == "BPR":
            if self.bpr is not None or self.header_number is not None or self.parties:
                raise _fail("BPR must come once, right after ST", position, sid)
            for index in (1, 2, 3, 4, 16):
                _required(e, index, position)
            self.bpr = e
            self.bpr_position = position
        elif sid == "TRN":
            if self.bpr is None or self.trn is not None:
                raise _fail("TRN must come once, after BPR", position, sid)
            for index in (1, 2, 3):
                _required(e, index, position)
            self.trn = e
        elif sid == "N1":
            self.start_party(e, position)
        elif sid not in _KNOWN_SEGMENTS:
            raise _fail(f"{sid} is not an 835 segment", position, sid)
        # CUR, N2-N4, PER, RDM, TS3, TS2, QTY: allowed, not needed for reconciliation.

    def start_party(self, e: list[str], position: int) -> None:
        if self.trn is None or self.header_number is not None:
            raise _fail("N1 outside the header", position, "N1")
        code = _required(e, 1, position)
        if code not in ("PR", "PE"):
            raise _fail("N101 must be PR (payer) or PE (payee)", position, "N1", "N101")
        if code in self.parties:
            raise _fail(f"a second N1*{code}", position, "N1", "N101")
        if code == "PE" and "PR" not in self.parties:
            raise _fail("N1*PE before N1*PR", position, "N1", "N101")
        self.close_party()
        name = _required(e, 2, position)
        if code == "PE":
            _required(e, 3, position)
            _required(e, 4, position)
        self.parties[code] = Party(name, _get(e, 3), _get(e, 4))
        self.party = code

    def start_claim(self, e: list[str], position: int) -> None:
        if self.header_number is None:
            raise _fail("CLP before LX (loop 2000)", position, "CLP")
        if self.in_footer:
            raise _fail("CLP after PLB", position, "CLP")
        self.close_claim()
        if len(e) < 8 or not (e[1] and e[2] and e[3] and e[4] and e[6] and e[7]):
            for index in (1, 2, 3, 4, 6, 7):
                _required(e, index, position)
        if e[2] not in CLAIM_STATUS_CODES:
            raise _fail("CLP02 is not a claim status code", position, "CLP", "CLP02")
        self.claim = _ClaimDraft(
            position, self.header_number, e, self.amount(e[3], position, "CLP", "CLP03"),
            self.amount(e[4], position, "CLP", "CLP04"),
            self.amount(e[5], position, "CLP", "CLP05") if e[5] else None,
        )

    def amount(self, text: str, position: int, segment_id: str, element: str) -> Decimal:
        value = self.amounts.get(text)
        if value is None:
            value = self.amounts[text] = _amount(text, position, segment_id, element)
        return value

    def procedure(self, text: str, position: int, element: str) -> Procedure:
        value = self.procedures.get(text)
        if value is None:
            value = self.procedures[text] = _procedure(text, self.component, position, element)
        return value

    def start_service(self, e: list[str], position: int) -> None:
        claim = self.claim
        if claim is None:
            raise _fail("SVC outside a claim payment (loop 2100)", position, "SVC")
        if self.service is not None:
            claim.services.append(self.service.build())
        if len(e) < 4 or not (e[1] and e[2] and e[3]):
            for index in (1, 2, 3):
                _required(e, index, position)
        amounts = self.amounts
        charge = amounts.get(e[2])
        if charge is None:
            charge = self.amount(e[2], position, "SVC", "SVC02")
        paid = amounts.get(e[3])
        if paid is None:
            paid = self.amount(e[3], position, "SVC", "SVC03")
        procedure = self.procedures.get(e[1])
        if procedure is None:
            procedure = self.procedure(e[1], position, "SVC01")
        draft = _ServiceDraft(position, procedure, charge, paid)
        count = len(e)
        if count > 4:
            draft.revenue_code = e[4]
            if count > 5 and e[5]:
                draft.units_paid = self.amount(e[5], position, "SVC", "SVC05")
            if count > 6 and e[6]:
                draft.original_procedure = self.procedure(e[6], position, "SVC06")
            if count > 7 and e[7]:
                draft.original_units = self.amount(e[7], position, "SVC", "SVC07")
        self.service = draft

    def date_segment(self, e: list[str], position: int) -> None:
        qualifier = _required(e, 1, position)
        text = _get(e, 2)
        day = self.dates.get(text)
        if day is None:
            day = self.dates[text] = _date(text, position, "DTM", "DTM02")
        service = self.service
        if service is not None:
            if qualifier == "472":
                service.service_from = service.service_to = day
            elif qualifier == "150":
                service.service_from = day
            elif qualifier == "151":
                service.service_to = day
            else:
                raise _fail("DTM01 in loop 2110 must be 150, 151 or 472", position, "DTM", "DTM01")
        elif self.claim is not None:
            if qualifier == "232":
                self.claim.statement_from = day
            elif qualifier == "233":
                self.claim.statement_to = day
            elif qualifier == "050":
                self.claim.received_on = day
            elif qualifier != "036":  # 036: coverage expiration, informational
                raise _fail("DTM01 in loop 2100 must be 232, 233, 036 or 050", position, "DTM", "DTM01")
        elif qualifier == "405" and self.header_number is None and self.party is None:
            self.production_date = day
        else:
            raise _fail("DTM outside the header, a claim or a service line", position, "DTM", "DTM01")

    def name_segment(self, e: list[str], position: int) -> None:
        claim = self.claim
        if claim is None or self.service is not None:
            raise _fail("NM1 outside a claim payment (loop 2100)", position, "NM1")
        code = _required(e, 1, position)
        if code == "QC":
            claim.patient = _person(e)
        elif code == "IL":
            claim.insured = _person(e)
        elif code == "74":
            claim.corrected_patient = _person(e)
        elif code == "82":
            claim.rendering_provider_id = _get(e, 9)

    def provider_adjustment(self, e: list[str], position: int) -> None:
        if self.bpr is None or self.trn is None:
            raise _fail("PLB before the BPR and TRN header", position, "PLB")
        self.close_claim()
        self.close_party()
        self.in_footer = True
        if len(e) > 15:
            raise _fail("PLB has more than 14 elements", position, "PLB", "PLB15")
        provider = _required(e, 1, position)
        period = _date(_required(e, 2, position), position, "PLB", "PLB02")
        _required(e, 3, position)
        for start in range(3, len(e), 2):
            composite = e[start]
            amount_text = e[start + 1] if start + 1 < len(e) else ""
            if not composite:
                if amount_text:
                    raise _fail(f"PLB{start:02d} is required with an amount", position, "PLB", f"PLB{start:02d}")
                continue
            if not amount_text:
                raise _fail(f"PLB{start + 1:02d} is required with an adjustment", position, "PLB",
                            f"PLB{start + 1:02d}")
            reason, _, rest = composite.partition(self.component)
            if not reason:
                raise _fail(f"PLB{start:02d}-1 adjustment reason is required", position, "PLB", f"PLB{start:02d}")
            self.adjustments.append(ProviderAdjustment(
                position, provider, period, reason, rest.split(self.component, 1)[0],
                _amount(amount_text, position, "PLB", f"PLB{start + 1:02d}"),
            ))

    def finish(self, se: list[str], position: int, segment_count: int) -> Remittance:
        self.close_claim()
        self.close_party()
        if _get(se, 2) != self.control_number:
            raise _fail("SE02 does not match ST02", position, "SE", "SE02")
        if _get(se, 1) != str(segment_count):
            raise _fail(f"SE01 does not match the {segment_count} segments of the set", position, "SE", "SE01")
        if self.bpr is None or self.trn is None:
            raise _fail("the transaction set has no BPR or TRN", position, "SE")
        if "PR" not in self.parties or "PE" not in self.parties:
            raise _fail("the transaction set needs N1*PR (payer) and N1*PE (payee)", position, "SE")
        bpr, trn, bp = self.bpr, self.trn, self.bpr_position
        total = _amount(bpr[2], bp, "BPR", "BPR02")
        if total < _ZERO:
            raise _fail("BPR02 must not be negative (a debit is BPR03 = D)", bp, "BPR", "BPR02")
        if bpr[3] not in ("C", "D"):
            raise _fail("BPR03 must be C or D", bp, "BPR", "BPR03")
        return Remittance(
            control_number=self.control_number, position=self.position, handling_code=bpr[1], total_paid=total,
            credit_debit=bpr[3], payment_method=bpr[4], payment_date=_date(bpr[16], bp, "BPR", "BPR16"),
            trace_type=trn[1], trace_number=trn[2], originator_id=trn[3], originator_supplemental=_get(trn, 4),
            payer=self.parties["PR"], payee=self.parties["PE"], production_date=self.production_date,
            claims=tuple(self.claims), provider_adjustments=tuple(self.adjustments),
        )


def parse_835(text: str) -> RemittanceFile:
    """Parse an interchange of 005010X221A1 835 transaction sets.

    Raises X835Error (an X12SyntaxError) on the first envelope, structure or value error, naming the segment
    position, element and rule; element values are never quoted.
    """
    # The parse allocates hundreds of thousands of small immutable tuples and no reference cycles; the cyclic
    # collector would repeatedly rescan them all for nothing (about a third of the time on a 50,000-claim file,
    # see docs/decisions/0070). It is paused for the parse only and restored as it was.
    with collector_paused():
        return _parse(text)


def _parse(text: str) -> RemittanceFile:
    d = detect_delimiters(text)
    element = d.element
    body = text.lstrip("\ufeff \r\n\t")
    if d.segment not in "\r\n" and ("\n" in body or "\r" in body):
        # Line breaks after terminators are tolerated (and only there: X12 data never holds CR or LF).
        body = body.replace("\r", "").replace("\n", "")
    isa: list[str] | None = None
    gs: list[str] | None = None
    group_sets = 0
    groups = 0
    transaction: _TransactionParser | None = None
    feed = None
    set_start = 0
    remittances: list[Remittance] = []
    closed = False
    last_group: list[str] = []
    amounts: dict[str, Decimal] = {}
    dates: dict[str, date] = {}
    procedures: dict[str, Procedure] = {}
    position = 0
    for raw in body.split(d.segment):
        if not raw:
            continue
        position += 1
        e = raw.split(element)
        if feed is not None:
            sid = e[0]
            if sid == "SE":
                assert transaction is not None
                remittances.append(transaction.finish(e, position, position - set_start + 1))
                transaction = feed = None
                group_sets += 1
            elif sid in _ENVELOPE_SEGMENTS:
                raise _fail(f"{sid} inside a transaction set (missing SE)", position, sid)
            else:
                feed(e, position)
            continue
        sid = e[0]
        if closed:
            raise _fail("segment after IEA", position, sid)
        if sid == "ISA":
            if isa is not None:
                raise _fail("a second ISA inside the interchange", position, sid)
            if len(e) != 17:
                raise _fail("ISA must have 16 elements", position, sid)
            if e[12] != "00501":
                raise _fail("ISA12 must be 00501", position, sid, "ISA12")
            isa = e
        elif isa is None:
            raise _fail("segment before ISA", position, sid)
        elif sid == "GS":
            if gs is not None:
                raise _fail("GS inside a group (missing GE)", position, sid)
            if _get(e, 1) != FUNCTIONAL_CODE:
                raise _fail("GS01 must be HP (835)", position, sid, "GS01")
            if _get(e, 8) != IMPLEMENTATION:
                raise _fail(f"GS08 must be {IMPLEMENTATION}", position, sid, "GS08")
            _required(e, 6, position)
            gs = e
            group_sets = 0
        elif sid == "ST":
            if gs is None:
                raise _fail("ST outside a functional group", position, sid)
            if _get(e, 1) != "835":
                raise _fail("ST01 must be 835", position, sid, "ST01")
            if _get(e, 3) not in ("", IMPLEMENTATION):
                raise _fail(f"ST03 must be {IMPLEMENTATION} when present", position, sid, "ST03")
            transaction = _TransactionParser(_required(e, 2, position), position, d.component, amounts, dates,
                                             procedures)
            feed = transaction.feed
            set_start = position
        elif sid == "GE":
            if gs is None:
                raise _fail("GE without GS", position, sid)
            if _get(e, 2) != gs[6]:
                raise _fail("GE02 does not match GS06", position, sid, "GE02")
            if _get(e, 1) != str(group_sets):
                raise _fail("GE01 does not match the number of transaction sets", position, sid, "GE01")
            groups += 1
            last_group = gs
            gs = None
        elif sid == "IEA":
            if gs is not None:
                raise _fail("IEA before GE", position, sid)
            if _get(e, 2) != isa[13]:
                raise _fail("IEA02 does not match ISA13", position, sid, "IEA02")
            if _get(e, 1) != str(groups):
                raise _fail("IEA01 does not match the number of groups", position, sid, "IEA01")
            closed = True
        else:
            raise _fail("segment outside a transaction set", position, sid)
    if transaction is not None:
        raise _fail("transaction set without SE", position, "ST")
    if isa is None:
        raise _fail("no ISA segment", 0, "ISA")
    if not closed:
        raise _fail("interchange without IEA", position, "IEA")
    if groups == 0:
        raise _fail("no functional group", position, "GS")
    return RemittanceFile(
        interchange_control_number=isa[13], sender_id=isa[6].strip(), receiver_id=isa[8].strip(), usage=isa[15],
        group_control_number=last_group[6], application_sender=last_group[2],
        application_receiver=last_group[3], remittances=tuple(remittances),
    )
