"""Use cases of the gateway, shared by the SFTP server, client mode, the API, handlers and timers.

Inbound: SHA-256 → never the same bytes twice → PGP decrypt → recognize → archive → parse with row-level
validation → file.received + one event per good row (X12 by reference) → quarantine and an error report.
Outbound: write atomically into the MCP's outbound/ (PGP where the profile says) → file.delivered.
The heavy, pure part of an inbound file (decrypt, parse) runs in a worker thread with no transaction open;
the bookkeeping and the events then commit in one transaction, the row events encoded chunk by chunk in a
worker thread (without a second validation pass: see row_encoding) while the outbox COPYs the chunks before.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError

from sftp_gateway.domain.calendar import is_out_of_order, period_bounds
from sftp_gateway.domain.profile import Profile, is_encrypted_name, strip_encryption_suffix
from sftp_gateway.domain.records import RECORDS, REFERRAL
from sftp_gateway.domain.returns import ReturnOptions, build_otf_rows, build_referral_rows, build_rtf_rows
from sftp_gateway.domain.tabular import ParsedTable, Problem, Row, parse_table, render_table, unmapped_codes
from sftp_gateway.pgp import PgpError, looks_encrypted
from sftp_gateway.ports import GatewayPorts, gateway_ports
from sftp_gateway.repository import USED_STATUSES, SftpGatewayUnitOfWork
from sftp_gateway.row_encoding import encode_rows
from shared.contracts.gateway import (
    FileDelivered,
    FileDuplicate,
    FileKind,
    FileOutOfOrder,
    FileQuarantined,
    FileReceived,
)
from shared.contracts.values import FileReference
from shared.envelope import Envelope, caused_by, new_event
from shared.filestore import SCHEME
from shared.ids import uuid7
from shared.reference.calendar import PACIFIC
from shared.uow import OutboxRow, insert_outbox_rows
from shared.x12.envelope import parse_interchange
from shared.x12.segments import X12SyntaxError

log = logging.getLogger("calhub.sftp_gateway")

SOURCE = "sftp-gateway"
X12_KINDS: dict[FileKind, str] = {FileKind.X12_835: "835", FileKind.X12_999: "999", FileKind.X12_277CA: "277",
                                  FileKind.X12_271: "271"}
_X12_BY_CODE = {code: kind for kind, code in X12_KINDS.items()}
TABULAR_KINDS = frozenset(RECORDS)
ROW_CHUNK = 2000  # rows encoded per worker-thread step
UowFactory = Callable[[], SftpGatewayUnitOfWork]


class GatewayError(Exception):
    """A use case cannot go on; `slug` names the rule for problem+json (no PHI in the message)."""

    def __init__(self, status: int, slug: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.slug = slug
        self.message = message


def new_file_id() -> str:
    """A time-ordered file id: `fil_` + UUIDv7 hex."""
    return f"fil_{uuid7().hex}"


@dataclass(frozen=True)
class Arrival:
    """Bytes that came in for an MCP: over our SFTP server, from its server (client mode), or again."""

    mcp_code: str
    name: str
    content: bytes
    source: str = "sftp"


@dataclass
class IngestOutcome:
    """What happened to an inbound file."""

    file_id: str
    status: str  # processed | partially_accepted | quarantined | duplicate
    kind: str | None = None
    rows_accepted: int = 0
    rows_rejected: int = 0
    reason: str | None = None
    duplicate_of: str | None = None
    events: int = 0


@dataclass
class _Prepared:
    """The pure outcome of an inbound file, before anything is written to the database."""

    status: str
    kind: FileKind | None
    encrypted: bool
    raw: FileReference
    content: FileReference | None
    reason: str | None = None
    period: str | None = None
    problems: list[Problem] = field(default_factory=list)
    rows_total: int | None = None
    rows: list[Row] = field(default_factory=list)


# ------------------------------------------------------------------------------------------------ inbound

def _x12_kind(text: str) -> FileKind | None:
    """The kind of an X12 interchange by its transaction set code, or None if it is not X12."""
    if not text.lstrip().startswith("ISA"):
        return None
    try:
        interchange = parse_interchange(text)
    except X12SyntaxError:
        return None
    codes = {t.code for g in interchange.groups for t in g.transactions}
    if len(codes) != 1:
        return None
    return _X12_BY_CODE.get(codes.pop())


def prepare(ports: GatewayPorts, profile: Profile, arrival: Arrival) -> _Prepared:
    """Decrypt, recognize, archive and parse one inbound file (blocking: run in a worker thread)."""
    raw = ports.files.put(arrival.content)
    encrypted = is_encrypted_name(arrival.name) or looks_encrypted(arrival.content)
    plain = arrival.content
    if encrypted:
        try:
            plain = ports.pgp.decrypt(arrival.content)
        except PgpError:
            return _Prepared("quarantined", None, True, raw, None, reason="decrypt_failed",
                             problems=[Problem("decrypt_failed", "the file could not be decrypted with the hub's "
                                                                 "key")])
    elif profile.pgp.inbound_required:
        return _Prepared("quarantined", None, False, raw, None, reason="encryption_required",
                         problems=[Problem("encryption_required", "this MCP's files must be PGP-encrypted")])
    content = ports.files.put(plain) if encrypted else raw
    recognition = profile.recognize(arrival.name)
    kind = recognition.kind if recognition else None
    period = recognition.period if recognition else None
    if kind is None:
        kind = _x12_kind(plain.decode("latin-1"))
    if kind is None:
        return _Prepared("quarantined", None, encrypted, raw, content, reason="unrecognized_name",
                         problems=[Problem("unrecognized_name", "the file name matches none of the profile's "
                                                                "patterns and the content is not X12")])
    if kind in X12_KINDS:
        return _prepare_x12(kind, plain, encrypted, raw, content, period)
    if kind in TABULAR_KINDS:
        layout = profile.layouts.get(kind)
        if layout is None:
            return _Prepared("quarantined", kind, encrypted, raw, content, reason="no_layout", period=period,
                             problems=[Problem("no_layout", f"the profile has no layout for {kind.value} files")])
        parsed = parse_table(plain, layout, RECORDS[kind])
        return _judge(profile, kind, parsed, encrypted, raw, content, period)
    return _Prepared("processed", kind, encrypted, raw, content, period=period)


def _prepare_x12(kind: FileKind, plain: bytes, encrypted: bool, raw: FileReference, content: FileReference,
                 period: str | None) -> _Prepared:
    try:
        interchange = parse_interchange(plain.decode("ascii"))
    except UnicodeDecodeError:
        return _Prepared("quarantined", kind, encrypted, raw, content, reason="x12_syntax", period=period,
                         problems=[Problem("x12_syntax", "X12 files are ASCII; the file has other bytes")])
    except X12SyntaxError as exc:
        return _Prepared("quarantined", kind, encrypted, raw, content, reason="x12_syntax", period=period,
                         problems=[Problem("x12_syntax", f"X12 envelope: {exc.__class__.__name__}: "
                                                         f"{str(exc)[:200]}")])
    codes = {t.code for g in interchange.groups for t in g.transactions}
    if codes != {X12_KINDS[kind]}:
        return _Prepared("quarantined", kind, encrypted, raw, content, reason="x12_kind_mismatch", period=period,
                         problems=[Problem("x12_kind_mismatch", f"named as {kind.value} but carries transaction "
                                                                f"sets {', '.join(sorted(codes)) or 'none'}")])
    return _Prepared("processed", kind, encrypted, raw, content, period=period)


def _judge(profile: Profile, kind: FileKind, parsed: ParsedTable, encrypted: bool, raw: FileReference,
           content: FileReference, period: str | None) -> _Prepared:
    """Apply the row policy: file problems quarantine the file; row problems per all-or-nothing/row-level."""
    if period is None:
        periods = {r.values.get("reporting_period") for r in parsed.rows[:1000]} - {None}
        period = max(periods) if periods else None  # type: ignore[type-var]
    prepared = _Prepared("processed", kind, encrypted, raw, content, period=period, problems=parsed.problems,
                         rows_total=parsed.data_rows, rows=parsed.rows)
    if parsed.file_problems:
        prepared.status, prepared.reason, prepared.rows = "quarantined", parsed.file_problems[0].rule, []
    elif parsed.row_problems:
        if profile.row_policy.value == "all_or_nothing" or not parsed.rows:
            prepared.status, prepared.reason, prepared.rows = "quarantined", "row_errors", []
        else:
            prepared.status, prepared.reason = "partially_accepted", "row_errors"
    return prepared


def row_outbox_chunks(parent: Envelope[Any], kind: FileKind, file_id: str, mcp_code: str,
                      rows: Sequence[Row]) -> Iterator[tuple[list[OutboxRow], list[Problem]]]:
    """Outbox rows for one event per good MIF or referral row (none for other kinds), ROW_CHUNK rows at a
    time with the rows the contract refused as problems, for a caller that writes while the rest encodes."""
    for start in range(0, len(rows), ROW_CHUNK):
        yield encode_rows(parent, kind, file_id, mcp_code, rows[start:start + ROW_CHUNK])


async def _write_row_events(uow: SftpGatewayUnitOfWork, parent: Envelope[Any], kind: FileKind, file_id: str,
                            mcp_code: str, rows: Sequence[Row]) -> tuple[int, list[Problem]]:
    """Encode the row events in a worker thread and COPY each chunk into the outbox as soon as it is ready,
    so the database takes one chunk while the thread encodes the next; returns (events written, refusals)."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[list[OutboxRow], list[Problem]] | BaseException | None] = asyncio.Queue()
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in row_outbox_chunks(parent, kind, file_id, mcp_code, rows):
                if stop.is_set():  # the transaction failed: no one will write the rest
                    return
                loop.call_soon_threadsafe(queue.put_nowait, item)
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting coroutine, which raises it
            loop.call_soon_threadsafe(queue.put_nowait, exc)
        else:
            loop.call_soon_threadsafe(queue.put_nowait, None)

    producer = asyncio.ensure_future(asyncio.to_thread(produce))
    written = 0
    problems: list[Problem] = []
    try:
        while (item := await queue.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            chunk, refused = item
            await insert_outbox_rows(uow.session, uow.tables, chunk)
            written += len(chunk)
            problems.extend(refused)
    finally:
        stop.set()
        await producer
    return written, problems


async def _keep_homelessness(uow: SftpGatewayUnitOfWork, mcp_code: str, kind: FileKind, file_id: str,
                             period: str | None, rows: Sequence[Row], now: datetime) -> None:
    """Keep the members' homelessness flags of a MIF or referral file for the RTF (the MCP's newest word wins;
    a file without a reporting period counts for the month it was processed)."""
    if kind not in (FileKind.MIF, FileKind.REFERRAL):
        return
    flags = {r.values["cin"]: r.values["homeless"] for r in rows
             if r.values.get("cin") and isinstance(r.values.get("homeless"), bool)}
    if flags:
        await uow.projections.save_homelessness(
            mcp_code, flags, period=period or now.astimezone(PACIFIC).strftime("%Y-%m"), file_id=file_id, at=now)


def error_report(file_name: str, problems: Sequence[Problem], limit: int) -> bytes:
    """The CSV an MCP finds in outbound/: one line per problem, row numbers and rules, never values."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(["file", "row", "column", "field", "rule", "message"])
    for problem in problems[:limit]:
        writer.writerow([file_name, problem.row or "", problem.column or "", problem.field or "", problem.rule,
                         problem.message])
    if len(problems) > limit:
        writer.writerow([file_name, "", "", "", "truncated", f"{len(problems) - limit} more problems not listed"])
    return buffer.getvalue().encode()


async def ingest(uow_factory: UowFactory, ports: GatewayPorts, arrival: Arrival) -> IngestOutcome:
    """Run an inbound file through the pipeline; returns what happened. Raises GatewayError for an unknown
    MCP. Safe to call twice with the same bytes (once the first's rows went out, the second is a duplicate)."""
    profile = ports.profiles.get(arrival.mcp_code)
    if profile is None:
        raise GatewayError(404, "profile-not-found", "no profile for this MCP")
    sha = hashlib.sha256(arrival.content).hexdigest()
    async with uow_factory() as uow:
        original = await uow.files.seen(arrival.mcp_code, sha)
        if original is not None:
            outcome = await _record_duplicate(uow, ports, arrival, sha, original)
            await uow.commit()
            return outcome
    file_id = new_file_id()
    prepared = await asyncio.to_thread(prepare, ports, profile, arrival)
    # PGP encrypts the same file to different bytes every time: an encrypted file is also known by its content.
    content_sha = _content_sha(prepared)
    try:
        async with uow_factory() as uow:
            original = await uow.files.seen(arrival.mcp_code, content_sha) if content_sha else None
            if original is not None:
                outcome = await _record_duplicate(uow, ports, arrival, sha, original, content_sha=content_sha)
            else:
                outcome = await _record_inbound(uow, ports, profile, arrival, file_id, sha, prepared)
            await uow.commit()
    except IntegrityError:
        # The same bytes (or content) arrived twice at once and the other upload committed first.
        async with uow_factory() as uow:
            original = await uow.files.seen(arrival.mcp_code, sha)
            if original is None and content_sha:
                original = await uow.files.seen(arrival.mcp_code, content_sha)
            if original is None:
                raise
            outcome = await _record_duplicate(uow, ports, arrival, sha, original, content_sha=content_sha)
            await uow.commit()
    log.info("inbound file handled", extra={"file_id": file_id, "mcp_code": arrival.mcp_code,
                                             "kind": outcome.kind, "status": outcome.status,
                                             "rows": outcome.rows_accepted, "reason": outcome.reason})
    return outcome


def _content_sha(prepared: _Prepared) -> str | None:
    """The SHA-256 of an encrypted file's decrypted content (None for plaintext: its bytes are its content)."""
    return prepared.content.sha256 if prepared.encrypted and prepared.content is not None else None


async def _record_duplicate(uow: SftpGatewayUnitOfWork, ports: GatewayPorts, arrival: Arrival, sha: str,
                            original: str, *, content_sha: str | None = None) -> IngestOutcome:
    now = ports.clock.now()
    file_id = new_file_id()
    first = await uow.files.get(original)
    await uow.files.add({
        "id": file_id, "mcp_code": arrival.mcp_code, "direction": "inbound", "kind": first.kind if first else None,
        "status": "duplicate", "name": arrival.name, "source": arrival.source, "size": len(arrival.content),
        "sha256": sha, "content_sha256": content_sha,
        "encrypted": is_encrypted_name(arrival.name) or looks_encrypted(arrival.content), "duplicate_of": original,
        "received_at": now, "processed_at": now, "reason": "duplicate_content"})
    uow.record(new_event(FileDuplicate(file_id=file_id, mcp_code=arrival.mcp_code, original_file_id=original),
                         subject=file_id, source=SOURCE))
    return IngestOutcome(file_id=file_id, status="duplicate", kind=first.kind if first else None,
                         duplicate_of=original, reason="duplicate_content", events=1)


async def _record_inbound(uow: SftpGatewayUnitOfWork, ports: GatewayPorts, profile: Profile, arrival: Arrival,
                          file_id: str, sha: str, prepared: _Prepared, *,
                          only_rows: set[int] | None = None, accepted_before: int = 0) -> IngestOutcome:
    """Write the file row, its problems and events; `only_rows` limits row events to those rows (reprocess)."""
    now = ports.clock.now()
    kind = prepared.kind
    rows = prepared.rows if only_rows is None else [r for r in prepared.rows if r.number in only_rows]
    problems = list(prepared.problems)
    events: list[Envelope[Any]] = []
    status = prepared.status
    reference = prepared.content or prepared.raw
    accepted = accepted_before
    received: Envelope[Any] | None = None  # recorded (and flushed) ahead of the row events
    if status in ("processed", "partially_accepted") and kind is not None:
        received = new_event(FileReceived(
            file_id=file_id, mcp_code=arrival.mcp_code, kind=kind, file=reference, received_at=now,
            rows=(len(rows) + accepted_before) if prepared.rows_total is not None else None,
            rows_rejected=(prepared.rows_total - len(prepared.rows)) if prepared.rows_total is not None else None),
            subject=file_id, source=SOURCE)
        # The file's own event first in the outbox, then its rows, all in this transaction. Encoding 100,000
        # rows takes seconds: a worker thread does it while the database takes the chunks already encoded.
        uow.record(received)
        await uow.flush()
        row_events, refused = await _write_row_events(uow, received, kind, file_id, arrival.mcp_code, rows)
        if refused:
            problems.extend(refused)
            status = "partially_accepted" if row_events else "quarantined"
        accepted += row_events if kind in (FileKind.MIF, FileKind.REFERRAL) else len(rows)
        events = [received]
        await _keep_homelessness(uow, arrival.mcp_code, kind, file_id, prepared.period, rows, now)
    else:
        row_events = 0
        events = [new_event(FileQuarantined(file_id=file_id, mcp_code=arrival.mcp_code, kind=kind,
                                            reason=prepared.reason or "quarantined", quarantined_at=now),
                            subject=file_id, source=SOURCE)]
    rejected_rows = len({p.row for p in problems if p.row is not None})
    reason = prepared.reason if status != "processed" else None
    values = {
        "mcp_code": arrival.mcp_code, "direction": "inbound", "kind": kind.value if kind else None,
        "status": status, "name": arrival.name, "source": arrival.source, "size": len(arrival.content),
        "sha256": sha, "content_sha256": _content_sha(prepared),
        "encrypted": prepared.encrypted, "reporting_period": prepared.period, "rows_total": prepared.rows_total,
        "rows_accepted": accepted if prepared.rows_total is not None else None,
        "rows_rejected": rejected_rows if prepared.rows_total is not None else None,
        "reason": reason, "processed_at": now,
        "retain_until": now + timedelta(days=ports.settings.archive_retention_days),
    }
    if status in USED_STATUSES:
        # The content counts as seen once its rows went out, in whole or in part; a file quarantined for its name,
        # its encryption or its rows may come again, corrected, with the same bytes. Both the bytes and, for an
        # encrypted file, the decrypted content are remembered. Two uploads of the same at once: the second
        # insert fails (primary key) and the caller records a duplicate.
        for digest in dict.fromkeys(d for d in (sha, _content_sha(prepared)) if d):
            if await uow.files.seen(arrival.mcp_code, digest) != file_id:
                await uow.files.mark_seen(arrival.mcp_code, digest, file_id, now)
    if await uow.files.get(file_id) is None:
        await uow.files.add({"id": file_id, "received_at": now, **values})
    else:
        await uow.files.update(file_id, **values)
        await uow.files.clear_problems(file_id)
    await uow.files.add_problems(file_id, problems)
    if status != "quarantined" and kind is not None:
        latest = await uow.files.latest_period(arrival.mcp_code, kind.value, excluding=file_id)
        if is_out_of_order(prepared.period, latest):
            events.append(caused_by(events[0], FileOutOfOrder(file_id=file_id, mcp_code=arrival.mcp_code, kind=kind,
                                                              reporting_period=prepared.period),
                                    subject=file_id, source=SOURCE))
    uow.record(*(e for e in events if e is not received))
    if problems:
        report = error_report(arrival.name, problems, ports.settings.error_report_limit)
        await deliver(uow, ports, profile, FileKind.ERROR_REPORT, report, source="generated", source_id=file_id,
                      parent=events[0], name_fields={"source_id": strip_encryption_suffix(arrival.name)})
    return IngestOutcome(file_id=file_id, status=status, kind=kind.value if kind else None,
                         rows_accepted=accepted, rows_rejected=rejected_rows, reason=reason,
                         events=len(events) + row_events)


INCOMPLETE_UPLOAD = "incomplete_upload"


async def quarantine_incomplete(uow_factory: UowFactory, ports: GatewayPorts, arrival: Arrival) -> IngestOutcome:
    """Set aside an upload cut off by the gateway dying mid-write: archive the partial bytes, record a
    quarantined file (`incomplete_upload`, no row events) and ask the MCP for the whole file again.

    The bytes are NOT entered into the duplicate check: a partial file may even hold every byte (the client had
    not closed it yet), and the MCP's re-upload of the same content must be processed, not called a duplicate.
    """
    profile = require_profile(ports, arrival.mcp_code)
    sha = hashlib.sha256(arrival.content).hexdigest()
    await asyncio.to_thread(ports.files.put, arrival.content)  # archived: ops can look at what arrived
    recognition = profile.recognize(arrival.name)
    kind = recognition.kind if recognition else None
    file_id = new_file_id()
    problem = Problem(INCOMPLETE_UPLOAD, "the upload was cut off before the file was closed (the hub's gateway "
                                         "stopped); nothing of it was processed: send the whole file again")
    async with uow_factory() as uow:
        now = ports.clock.now()
        await uow.files.add({
            "id": file_id, "mcp_code": arrival.mcp_code, "direction": "inbound", "kind": kind.value if kind else None,
            "status": "quarantined", "name": arrival.name, "source": arrival.source, "size": len(arrival.content),
            "sha256": sha, "encrypted": is_encrypted_name(arrival.name) or looks_encrypted(arrival.content),
            "reporting_period": recognition.period if recognition else None, "reason": INCOMPLETE_UPLOAD,
            "received_at": now, "processed_at": now,
            "retain_until": now + timedelta(days=ports.settings.archive_retention_days)})
        await uow.files.add_problems(file_id, [problem])
        event = new_event(FileQuarantined(file_id=file_id, mcp_code=arrival.mcp_code, kind=kind,
                                          reason=INCOMPLETE_UPLOAD, quarantined_at=now),
                          subject=file_id, source=SOURCE)
        uow.record(event)
        report = error_report(arrival.name, [problem], ports.settings.error_report_limit)
        await deliver(uow, ports, profile, FileKind.ERROR_REPORT, report, source="generated", source_id=file_id,
                      parent=event, name_fields={"source_id": strip_encryption_suffix(arrival.name)})
        await uow.commit()
    return IngestOutcome(file_id=file_id, status="quarantined", kind=kind.value if kind else None,
                         reason=INCOMPLETE_UPLOAD, events=1)


async def reprocess(uow: SftpGatewayUnitOfWork, ports: GatewayPorts, file_id: str) -> IngestOutcome:
    """Run a quarantined or partly accepted inbound file again with the current profile, in the caller's
    transaction (the caller commits); only rows not accepted before are published. Raises GatewayError
    (404 unknown, 409 not reprocessable)."""
    row = await uow.files.get(file_id)
    if row is None or row.direction != "inbound":
        raise GatewayError(404, "file-not-found", "no such inbound file")
    if row.status not in ("quarantined", "partially_accepted"):
        raise GatewayError(409, "file-not-reprocessable",
                           "only quarantined or partly accepted files are reprocessed; their rows went out")
    if row.reason == INCOMPLETE_UPLOAD:
        raise GatewayError(409, "file-incomplete", "the archived bytes are a partial upload; the MCP sends the "
                                                   "whole file again")
    for digest in (row.sha256, row.content_sha256):
        original = await uow.files.seen(row.mcp_code, digest) if digest else None
        if original not in (None, file_id):
            raise GatewayError(409, "file-duplicate", f"the same content was processed since as file {original}")
    rejected = await uow.files.rejected_rows(file_id)
    profile = ports.profiles.get(row.mcp_code)
    if profile is None:
        raise GatewayError(409, "profile-not-found", "the file's MCP has no profile any more")
    content = await asyncio.to_thread(ports.files.get, SCHEME + row.sha256)
    arrival = Arrival(mcp_code=row.mcp_code, name=row.name, content=content, source=row.source)
    prepared = await asyncio.to_thread(prepare, ports, profile, arrival)
    partial = row.status == "partially_accepted"
    return await _record_inbound(uow, ports, profile, arrival, file_id, row.sha256, prepared,
                                 only_rows=rejected if partial else None,
                                 accepted_before=(row.rows_accepted or 0) if partial else 0)


# ----------------------------------------------------------------------------------------------- outbound

async def deliver(uow: SftpGatewayUnitOfWork, ports: GatewayPorts, profile: Profile, kind: FileKind,
                  content: bytes, *, source: str, source_id: str | None, parent: Envelope[Any] | None = None,
                  name_fields: dict[str, str] | None = None, period: str | None = None) -> str:
    """Write an outbound file into the MCP's outbound/ (atomically, PGP-encrypted when the profile says),
    archive it, record it and its file.delivered event; returns the file id. The file lands before the
    transaction commits: a retry rewrites the same name, so a failed commit never loses a delivery."""
    now = ports.clock.now()
    local = now.astimezone(PACIFIC)
    file_id = new_file_id()
    seq = await uow.files.count_outbound(profile.mcp_code, kind.value,
                                         datetime.combine(local.date(), datetime.min.time(), PACIFIC))
    fields = {"mcp": profile.mcp_code.upper(), "kind": kind.value.upper(), "date": local.strftime("%Y%m%d"),
              "time": local.strftime("%H%M%S"), "period": (period or "").replace("-", ""),
              "source_id": source_id or file_id, "seq": f"{seq + 1:03d}", **(name_fields or {})}
    name = profile.outbound.name_for(kind, fields)
    payload = content
    encrypted = profile.pgp.outbound_encrypt
    if encrypted:
        assert profile.pgp.recipient is not None
        if profile.pgp.public_key:
            await asyncio.to_thread(ports.pgp.import_public_key, profile.pgp.public_key)
        try:
            payload = await asyncio.to_thread(ports.pgp.encrypt, content, profile.pgp.recipient)
        except PgpError as exc:
            raise GatewayError(503, "encryption-failed", "the MCP's key refused the file") from exc
        name += ".pgp"
    plain_ref = await asyncio.to_thread(ports.files.put, content)
    sent_ref = await asyncio.to_thread(ports.files.put, payload) if encrypted else plain_ref
    path = await asyncio.to_thread(ports.jail.write_outbound, profile.account.username, name, payload)
    push = profile.remote is not None and profile.remote.push and ports.settings.client_mode
    await uow.files.add({
        "id": file_id, "mcp_code": profile.mcp_code, "direction": "outbound", "kind": kind.value,
        "status": "delivered", "name": name, "source": source, "source_id": source_id, "size": len(payload),
        "sha256": sent_ref.sha256, "content_sha256": plain_ref.sha256 if encrypted else None,
        "encrypted": encrypted, "reporting_period": period, "path": path,
        "push_status": "pending" if push else None, "received_at": now, "processed_at": now,
        "retain_until": now + timedelta(days=ports.settings.archive_retention_days)})
    data = FileDelivered(file_id=file_id, mcp_code=profile.mcp_code, kind=kind, source_id=source_id,
                         delivered_at=now)
    uow.record(caused_by(parent, data, subject=file_id, source=SOURCE) if parent is not None
               else new_event(data, subject=file_id, source=SOURCE))
    log.info("outbound file delivered", extra={"file_id": file_id, "mcp_code": profile.mcp_code,
                                                "kind": kind.value, "size": len(payload)})
    return file_id


def require_profile(ports: GatewayPorts, mcp_code: str) -> Profile:
    """The MCP's profile; raises GatewayError 404 when there is none."""
    profile = ports.profiles.get(mcp_code)
    if profile is None:
        raise GatewayError(404, "profile-not-found", "no profile for this MCP")
    return profile


@dataclass
class Generated:
    """A generated RTF/OTF/referral file."""

    file_id: str
    kind: str
    rows: int
    reporting_period: str | None = None
    skipped: int = 0
    rejected: int = 0  # rows held back (a code the profile does not map): listed in the file's problems


async def generate_return_file(uow: SftpGatewayUnitOfWork, kind: FileKind, mcp_code: str, period: str, *,
                               source: str, parent: Envelope[Any] | None = None) -> Generated:
    """Write the RTF or OTF of an MCP for a reporting period from the gateway's projections."""
    ports = gateway_ports(uow)
    profile = require_profile(ports, mcp_code)
    layout = profile.layouts.get(kind)
    if layout is None:
        raise GatewayError(409, "no-layout", f"the MCP's profile has no {kind.value} layout")
    try:
        _, end = period_bounds(period)
    except ValueError:
        raise GatewayError(422, "reporting-period", "reporting_period must be YYYY-MM") from None
    produced_on = ports.clock.now().astimezone(PACIFIC).date()
    authorizations = await uow.projections.authorizations(mcp_code)
    encounters = await uow.projections.encounters(mcp_code, end + timedelta(days=366) if kind is FileKind.OTF
                                                  else end)
    skipped = 0
    if kind is FileKind.RTF:
        loops = await uow.projections.referral_loops(a.referral_id or "" for a in authorizations)
        by_auth: dict[str, list[Any]] = {}
        for encounter in encounters:
            if encounter.authorization_id:
                by_auth.setdefault(encounter.authorization_id, []).append(encounter)
        options = ReturnOptions(closed_loop_exempt=frozenset(ports.settings.closed_loop_exempt))
        homelessness = await uow.projections.homelessness(mcp_code)
        rows = build_rtf_rows(period, profile, authorizations, loops, by_auth, produced_on, options, homelessness)
    elif kind is FileKind.OTF:
        result = build_otf_rows(period, profile, layout.minutes_per_unit,
                                {a.authorization_id: a for a in authorizations}, encounters, produced_on)
        rows, skipped = result.rows, result.unattributed
    else:
        raise GatewayError(422, "kind", "only rtf and otf are generated")
    # A coded value the profile cannot translate is never written as CalHub's own word: the row is held back
    # and named (row number and column, no member data) in the file's problems, like an inbound row problem.
    problems = unmapped_codes(rows, layout)
    held = {p.row for p in problems}
    written = [row for number, row in enumerate(rows, start=1) if number not in held]
    content = render_table(written, layout, RECORDS[kind])
    file_id = await deliver(uow, ports, profile, kind, content, source=source, source_id=f"{kind.value}:{period}",
                            parent=parent, period=period)
    await uow.files.update(file_id, rows_total=len(rows), rows_accepted=len(written), rows_rejected=len(held))
    if problems:
        await uow.files.add_problems(file_id, problems)
        log.warning("generated file rows held back for codes the profile does not map",
                    extra={"mcp_code": mcp_code, "kind": kind.value, "rows": len(held)})
    return Generated(file_id=file_id, kind=kind.value, rows=len(written), reporting_period=period, skipped=skipped,
                     rejected=len(held))


async def flush_referral_file(uow: SftpGatewayUnitOfWork, mcp_code: str) -> Generated | None:
    """Write one referral file with every open request not yet sent to the MCP (None when there is none)."""
    ports = gateway_ports(uow)
    profile = require_profile(ports, mcp_code)
    if profile.outbound.referral_channel != "sftp":
        return None
    requests = await uow.projections.unsent_requests(mcp_code)
    if not requests:
        return None
    layout = profile.layouts[FileKind.REFERRAL]
    content = render_table(build_referral_rows(profile, requests), layout, REFERRAL)
    file_id = await deliver(uow, ports, profile, FileKind.REFERRAL, content, source="generated", source_id=None)
    await uow.projections.mark_sent([r.authorization_id for r in requests], file_id)
    await uow.files.update(file_id, rows_total=len(requests), rows_accepted=len(requests), rows_rejected=0)
    return Generated(file_id=file_id, kind=FileKind.REFERRAL.value, rows=len(requests))


def today(ports: GatewayPorts) -> date:
    """Today in Pacific time."""
    return ports.clock.now().astimezone(PACIFIC).date()


def utcnow() -> datetime:
    """The wall clock, UTC."""
    return datetime.now(UTC)

