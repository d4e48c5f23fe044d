"""An upload under its final name cut off by the gateway dying (kill -9) is never processed (ADR 0081)."""

from __future__ import annotations

from pathlib import Path

import pytest
from gateway_testing import Gateway, hn_mif, running_gateway
from sftp_gateway.jail import Jail

MIF_TOPIC = "sftp-gateway.member_information.v1"
FILE_TOPIC = "sftp-gateway.file.v1"
NAME = "HN_ECM_MIF_202610.csv"


def _crashed_upload(root: Path, name: str, content: bytes) -> None:
    """The disk as a gateway process killed mid-upload leaves it: its marker, then the partial file."""
    jail = Jail(root)
    jail.mark_upload("healthnet", name, "token-of-a-dead-process")
    (jail.inbound("healthnet") / name).write_bytes(content)


async def test_a_partial_upload_left_by_a_dead_process_is_quarantined_not_processed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "data" / "sftp-gateway" / "accounts"  # the default
    whole = hn_mif(3)
    partial = whole[: len(whole) // 2]
    _crashed_upload(root, NAME, partial)
    # A complete upload the dead process had closed but not processed yet: the sweep still processes it.
    (Jail(root).inbound("healthnet") / "HN_ECM_MIF_202611.csv").write_bytes(hn_mif(2))
    async with running_gateway(tmp_path, monkeypatch) as gateway:
        await gateway.settle()
        assert gateway.sftp.incomplete == 1
        files = {f["name"]: f for f in await gateway.files(mcp_code="healthnet", direction="inbound")}
        cut = files[NAME]
        assert (cut["status"], cut["reason"]) == ("quarantined", "incomplete_upload")
        assert cut["rows_accepted"] is None and cut["size"] == len(partial)
        assert files["HN_ECM_MIF_202611.csv"]["status"] == "processed"
        # Only the complete file's rows went out; the partial file has its quarantine event and nothing else.
        assert len(gateway.events(MIF_TOPIC)) == 2
        quarantined = gateway.events(FILE_TOPIC, "file.quarantined")
        assert [e.data.reason for e in quarantined] == ["incomplete_upload"]
        received = gateway.events(FILE_TOPIC, "file.received")
        assert [e.subject for e in received] == [files["HN_ECM_MIF_202611.csv"]["id"]]
        # Moved aside: gone from inbound/, marker removed, error report asking for the whole file again.
        assert list(gateway.ports.jail.inbound("healthnet").iterdir()) == []
        assert gateway.ports.jail.upload_owner("healthnet", NAME) is None
        reports = {n: c for n, c in gateway.outbound("healthnet").items() if "HN_ECM_MIF_202610" in n}
        assert len(reports) == 1
        report = next(iter(reports.values())).decode()
        assert "incomplete_upload" in report and "send the whole file again" in report
        detail = await gateway.client.get(f"/v1/files/{cut['id']}", headers=gateway.headers())
        assert detail.status_code == 200
        # The partial bytes are never run through the pipeline, not even on request.
        again = await gateway.client.post(f"/v1/files/{cut['id']}/reprocess",
                                          headers=gateway.headers(**{"Idempotency-Key": "reprocess-cut-1"}))
        assert again.status_code == 409, again.text
        assert "file-incomplete" in again.text

        # The MCP's re-upload is processed normally (the partial bytes were kept out of the duplicate check).
        await gateway.upload("healthnet", NAME, whole)
        files = [f for f in await gateway.files(mcp_code="healthnet", direction="inbound") if f["name"] == NAME]
        assert sorted(f["status"] for f in files) == ["processed", "quarantined"]
        assert len(gateway.events(MIF_TOPIC)) == 5


async def test_partial_upload_holding_every_byte_does_not_make_the_resend_a_duplicate(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "data" / "sftp-gateway" / "accounts"  # the default
    whole = hn_mif(2)
    _crashed_upload(root, NAME, whole)  # all bytes written, but the client never closed the file
    async with running_gateway(tmp_path, monkeypatch) as gateway:
        await gateway.settle()
        assert gateway.events(MIF_TOPIC) == []
        await gateway.upload("healthnet", NAME, whole)
        statuses = sorted(f["status"] for f in await gateway.files(mcp_code="healthnet", direction="inbound"))
        assert statuses == ["processed", "quarantined"]
        assert len(gateway.events(MIF_TOPIC)) == 2


async def test_an_upload_in_progress_in_this_process_is_left_alone_by_the_sweep(gateway: Gateway) -> None:
    jail = gateway.ports.jail
    async with gateway.session("healthnet") as sftp:
        handle = await sftp.open(f"/inbound/{NAME}", "wb")
        await handle.write(hn_mif(2)[:100])
        assert jail.upload_owner("healthnet", NAME) == gateway.sftp.token
        assert gateway.sftp.sweep() == 0
        await handle.write(hn_mif(2)[100:], 100)
        await handle.close()
    await gateway.settle()
    # Closed explicitly: complete, processed, marker gone.
    assert jail.upload_owner("healthnet", NAME) is None
    assert len(gateway.events(MIF_TOPIC)) == 2
    assert gateway.sftp.incomplete == 0


async def test_a_marker_without_its_file_is_dropped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "data" / "sftp-gateway" / "accounts"  # the default
    Jail(root).mark_upload("healthnet", NAME, "token-of-a-dead-process")  # died before creating the file
    async with running_gateway(tmp_path, monkeypatch) as gateway:
        await gateway.settle()
        assert gateway.ports.jail.upload_owner("healthnet", NAME) is None
        assert await gateway.files(mcp_code="healthnet") == []
