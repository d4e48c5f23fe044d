"""The MCP's side of the X12 exchange, as a payer's EDI system would answer CalHub's 837P: a 999 for the
functional group, a 277CA per claim and an 835 paying them. Built from the 837P the MCP picked up, so the
control numbers and claim ids are whatever CalHub really sent."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal


@dataclass(frozen=True)
class SubmittedClaim:
    """One CLM of a picked-up 837P: the claim id (CLM01), the charge and the subscriber id."""

    claim_id: str
    charge: Decimal
    subscriber_id: str
    service_date: str
    procedure: str


@dataclass(frozen=True)
class PickedUp837:
    """What a payer reads off an 837P to acknowledge it."""

    sender_id: str
    receiver_id: str
    group_control_number: str
    set_control_numbers: tuple[str, ...]
    claims: tuple[SubmittedClaim, ...]


def read_837(text: str) -> PickedUp837:
    """Parse the envelope and the claims of an 837P (the segment terminator is declared after ISA16)."""
    terminator = text[105] if len(text) > 105 else "~"
    element = text[3]
    segments = [s.strip() for s in text.split(terminator) if s.strip()]
    isa = segments[0].split(element)
    gs_number = ""
    sets: list[str] = []
    claims: list[SubmittedClaim] = []
    subscriber = ""
    pending: dict[str, str] = {}
    for segment in segments:
        parts = segment.split(element)
        tag = parts[0]
        if tag == "GS":
            gs_number = parts[6]
        elif tag == "ST":
            sets.append(parts[2])
        elif tag == "NM1" and parts[1] == "IL":
            subscriber = parts[9]
        elif tag == "CLM":
            pending = {"claim_id": parts[1], "charge": parts[2], "subscriber": subscriber}
        elif tag == "SV1" and pending:
            pending["procedure"] = parts[1].split(":")[1]
        elif tag == "DTP" and parts[1] == "472" and pending and "service_date" not in pending:
            pending["service_date"] = parts[3].split("-")[0]
            claims.append(SubmittedClaim(claim_id=pending["claim_id"], charge=Decimal(pending["charge"]),
                                         subscriber_id=pending["subscriber"],
                                         service_date=pending["service_date"],
                                         procedure=pending.get("procedure", "G9008")))
            pending = {}
    return PickedUp837(sender_id=isa[6].strip(), receiver_id=isa[8].strip(), group_control_number=gs_number,
                       set_control_numbers=tuple(sets), claims=tuple(claims))


def _isa(sender: str, receiver: str, control: int, now: datetime) -> str:
    return (f"ISA*00*          *00*          *ZZ*{sender:<15}*ZZ*{receiver:<15}*{now:%y%m%d}*{now:%H%M}*^*00501*"
            f"{control:09d}*0*P*:~")


def _wrap(sender: str, receiver: str, functional_id: str, version: str, control: int, body: list[str],
          now: datetime) -> bytes:
    lines = [_isa(sender, receiver, control, now),
             f"GS*{functional_id}*{sender}*{receiver}*{now:%Y%m%d}*{now:%H%M}*{control}*X*{version}~"]
    lines += body
    lines += [f"GE*1*{control}~", f"IEA*1*{control:09d}~"]
    return ("\n".join(lines) + "\n").encode()


def build_999(batch: PickedUp837, *, control: int, code: str = "A", now: datetime) -> bytes:
    """A 999 answering the 837P's functional group: every set `code` (A accepted, R rejected)."""
    body = ["ST*999*0001*005010X231A1~", f"AK1*HC*{batch.group_control_number}*005010X222A1~"]
    for number in batch.set_control_numbers:
        body += [f"AK2*837*{number}*005010X222A1~", f"IK5*{code}~"]
    count = len(batch.set_control_numbers)
    accepted = count if code in ("A", "E") else 0
    body.append(f"AK9*{code}*{count}*{count}*{accepted}~")
    body.append(f"SE*{len(body) + 1}*0001~")
    return _wrap(batch.receiver_id, batch.sender_id, "FA", "005010X231A1", control, body, now)


def build_277ca(batch: PickedUp837, *, control: int, now: datetime, rejected: frozenset[str] = frozenset(),
                ) -> bytes:
    """A 277CA: A2 (accepted into adjudication) per claim, or A7 (rejected) for the claim ids in `rejected`."""
    total = sum((c.charge for c in batch.claims), Decimal(0))
    day = f"{now:%Y%m%d}"
    body = ["ST*277*0001*005010X214~", f"BHT*0085*08*CA{control}*{day}*{now:%H%M}*TH~", "HL*1**20*1~",
            f"NM1*PR*2*PAYER*****PI*{batch.receiver_id}~", f"TRN*1*{control}~", f"DTP*050*D8*{day}~",
            f"DTP*009*D8*{day}~", "HL*2*1*21*1~", f"NM1*41*2*SUBMITTER*****46*{batch.sender_id}~",
            f"TRN*2*B{control}~", f"STC*A1:19*{day}*WQ*{total}~", f"QTY*90*{len(batch.claims)}~",
            f"AMT*YU*{total}~", "HL*3*2*19*1~", "NM1*85*2*BILLING PROVIDER*****XX*1234567893~", "TRN*1*0~",
            f"STC*A1:19**WQ*{total}~", f"QTY*QA*{len(batch.claims)}~", f"AMT*YU*{total}~"]
    for index, claim in enumerate(batch.claims, start=4):
        status = "A7:562:85" if claim.claim_id in rejected else "A2:20"
        body += [f"HL*{index}*3*PT~", f"NM1*QC*1*TESTPERSON*MEMBER****MI*{claim.subscriber_id}~",
                 f"TRN*2*{claim.claim_id}~", f"STC*{status}*{day}*WQ*{claim.charge}~",
                 f"REF*1K*PCN{control}{index:04d}~", f"DTP*472*D8*{claim.service_date}~"]
    body.append(f"SE*{len(body) + 1}*0001~")
    return _wrap(batch.receiver_id, batch.sender_id, "HN", "005010X214", control, body, now)


def build_835(batch: PickedUp837, *, control: int, now: datetime, trace: str) -> bytes:
    """An 835 paying every claim of the batch in full (CLP02 1), balanced: BPR02 = sum of CLP04."""
    total = sum((c.charge for c in batch.claims), Decimal(0))
    day = f"{now:%Y%m%d}"
    body = ["ST*835*0001~",
            f"BPR*I*{total}*C*ACH*CCP*01*999999992*DA*123456*1123456789**01*999988880*DA*98765*{day}~",
            f"TRN*1*{trace}*1123456789~", f"DTM*405*{day}~", "N1*PR*PAYER~", "N3*100 TEST PLAZA~",
            "N4*SACRAMENTO*CA*95814~", "REF*2U*PAYER01~", "PER*BL*PROVIDER SERVICES*TE*9165550100~",
            "N1*PE*BILLING PROVIDER*XX*1234567893~", "REF*TJ*941234567~", "LX*1~"]
    for index, claim in enumerate(batch.claims, start=1):
        body += [f"CLP*{claim.claim_id}*1*{claim.charge}*{claim.charge}**MC*PCN{control}{index:04d}*11*1~",
                 f"NM1*QC*1*TESTPERSON*MEMBER****MI*{claim.subscriber_id}~", f"DTM*050*{day}~",
                 f"SVC*HC:{claim.procedure}:U1*{claim.charge}*{claim.charge}**1~",
                 f"DTM*472*{claim.service_date}~", f"AMT*B6*{claim.charge}~"]
    body.append(f"SE*{len(body) + 1}*0001~")
    return _wrap(batch.receiver_id, batch.sender_id, "HP", "005010X221A1", control, body, now)
