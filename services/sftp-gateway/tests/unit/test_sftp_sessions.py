"""Real SFTP sessions against the gateway: asyncssh's client and Debian's OpenSSH `sftp` (batch mode)."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import asyncssh
import gnupg
import pytest
from gateway_testing import Gateway, hn_mif, hn_mif_row, openssh_sftp, wait_for
from sftp_gateway import sftp_server

MIF_TOPIC = "sftp-gateway.member_information.v1"
FILE_TOPIC = "sftp-gateway.file.v1"


async def test_upload_with_asyncssh_publishes_file_and_row_events(gateway: Gateway) -> None:
    await gateway.upload("healthnet", "HN_ECM_MIF_202610.csv", hn_mif(3))
    [received] = gateway.events(FILE_TOPIC, "file.received")
    assert received.data.kind == "mif" and received.data.rows == 3 and received.data.rows_rejected == 0
    rows = gateway.events(MIF_TOPIC)
    assert sorted(e.data.member.cin for e in rows) == ["90000001A", "90000002A", "90000003A"]
    first = next(e for e in rows if e.data.row_number == 2)
    assert first.data.member.address is not None and first.data.member.address.line1 == "100 Main St, Apt 4"
    assert first.data.ecm_status == "authorized" and first.data.pof_codes == ("1a", "3")
    assert first.correlation_id == received.correlation_id and first.causation_id == received.id
    assert first.subject.startswith("mbr_") and "9000000" not in first.subject  # keyed by member id, not CIN
    # The upload left inbound/ once archived; its bytes are in the file store.
    assert list(gateway.ports.jail.inbound("healthnet").iterdir()) == []
    assert gateway.ports.files.get(received.data.file) == hn_mif(3)


async def test_openssh_sftp_upload_reaches_the_events(gateway: Gateway) -> None:
    source = gateway.tmp / "HN_ECM_MIF_202610.csv"
    source.write_bytes(hn_mif(2))
    result = await asyncio.to_thread(openssh_sftp, gateway, "healthnet", f"put {source} /inbound/\n")
    assert result.returncode == 0, result.stderr
    await wait_for(lambda: _has(gateway, MIF_TOPIC, 2))
    await gateway.settle()
    assert len(gateway.events(FILE_TOPIC, "file.received")) == 1


async def _has(gateway: Gateway, topic: str, count: int) -> bool:
    await gateway.sftp.drain()
    return len(gateway.events(topic)) >= count


async def test_wrong_key_and_unknown_account_are_refused(gateway: Gateway) -> None:
    stranger = asyncssh.generate_private_key("ssh-ed25519")
    with pytest.raises(asyncssh.PermissionDenied):
        async with gateway.session("healthnet", key=stranger):
            pass
    with pytest.raises(asyncssh.PermissionDenied):  # lacare's key does not open healthnet's account
        async with gateway.session("healthnet", key=gateway.accounts["lacare"].key):
            pass
    with pytest.raises(asyncssh.PermissionDenied):
        async with gateway.session("nobody", key=gateway.accounts["lacare"].key):
            pass
    with pytest.raises(asyncssh.PermissionDenied):  # passwords are off
        async with asyncssh.connect("127.0.0.1", gateway.port, username="healthnet", password="secret",  # noqa: S106
                                    client_keys=None, known_hosts=None, agent_path=None):
            pass
    wrong = gateway.tmp / "wrong_key"
    wrong.write_bytes(stranger.export_private_key("openssh"))
    wrong.chmod(0o600)
    result = await asyncio.to_thread(openssh_sftp, gateway, "healthnet", "ls\n", key_path=wrong)
    assert result.returncode != 0 and "Permission denied" in result.stderr


async def test_escape_attempts_are_refused(gateway: Gateway, tmp_path_factory: pytest.TempPathFactory) -> None:
    outside = gateway.tmp / "outside.txt"
    outside.write_text("not for MCPs")
    async with gateway.session("healthnet") as sftp:
        for path in ("../outside.txt", "/../../outside.txt", "/inbound/../../outside.txt", "../lacare/inbound/x"):
            with pytest.raises(asyncssh.SFTPPermissionDenied):
                async with sftp.open(path, "wb") as handle:
                    await handle.write(b"x")
            with pytest.raises(asyncssh.SFTPPermissionDenied):
                await sftp.stat(path)
        # "/.." is the root itself (as in a chroot); nothing above it can be named.
        assert sorted(await sftp.listdir("/..")) == sorted(await sftp.listdir("/"))
        # An absolute host path is inside the jail, where it does not exist; writing outside inbound/ is refused.
        with pytest.raises(asyncssh.SFTPNoSuchFile):
            await sftp.stat("/etc/passwd")
        for path in ("/etc/passwd", "/outbound/x.csv", "/x.csv", "/inbound/sub/x.csv"):
            with pytest.raises(asyncssh.SFTPPermissionDenied):
                async with sftp.open(path, "wb") as handle:
                    await handle.write(b"x")
        with pytest.raises(asyncssh.SFTPPermissionDenied):
            await sftp.symlink(str(outside), "/inbound/link")
        with pytest.raises(asyncssh.SFTPPermissionDenied):
            await sftp.symlink("../../outside.txt", "/inbound/link")
        with pytest.raises(asyncssh.SFTPPermissionDenied):
            await sftp.mkdir("/inbound/sub")
        assert sorted(await sftp.listdir("/")) == [".", "..", "inbound", "outbound"]
        assert await sftp.realpath("..") == "/"
    # A symlink planted in the jail by anything else is not followed.
    os.symlink(outside, gateway.ports.jail.outbound("healthnet") / "planted")
    os.symlink(gateway.tmp, gateway.ports.jail.outbound("healthnet") / "planted_dir")
    async with gateway.session("healthnet") as sftp:
        with pytest.raises(asyncssh.SFTPPermissionDenied):
            async with sftp.open("/outbound/planted", "rb") as handle:
                await handle.read()
        with pytest.raises(asyncssh.SFTPPermissionDenied):
            await sftp.listdir("/outbound/planted_dir")
    assert outside.read_text() == "not for MCPs"
    batch = "get /../outside.txt\n"
    result = await asyncio.to_thread(openssh_sftp, gateway, "healthnet", batch, cwd=tmp_path_factory.mktemp("dl"))
    assert result.returncode != 0


async def test_duplicate_upload_is_recorded_not_processed(gateway: Gateway) -> None:
    await gateway.upload("healthnet", "HN_ECM_MIF_202610.csv", hn_mif(3))
    await gateway.upload("healthnet", "HN_ECM_MIF_202610_again.csv", hn_mif(3))
    assert len(gateway.events(MIF_TOPIC)) == 3
    [duplicate] = gateway.events(FILE_TOPIC, "file.duplicate")
    [original] = gateway.events(FILE_TOPIC, "file.received")
    assert duplicate.data.original_file_id == original.data.file_id
    statuses = sorted(f["status"] for f in await gateway.files(direction="inbound"))
    assert statuses == ["duplicate", "processed"]


async def test_the_same_file_encrypted_twice_is_a_duplicate(gateway: Gateway) -> None:
    gpg = gnupg.GPG(gnupghome=str(gateway.ports.pgp.home))
    key = gpg.gen_key(gpg.gen_key_input(key_type="RSA", key_length=2048, name_email="hub@example.test",
                                        no_protection=True))
    mif = (b"member_cin\tlast_name\tfirst_name\tdate_of_birth\tecm_status\tperiod\n"
           b"90000001A\tTestperson\tAna\t1980-01-15\tActive\t2026-10\n")
    first, second = (bytes(gpg.encrypt(mif, [key.fingerprint], always_trust=True, armor=True).data) for _ in "12")
    assert first != second  # a fresh session key each time
    await gateway.upload("molina", "MOL_ECM_MIF_2026-10.tsv.asc", first)
    await gateway.upload("molina", "MOL_ECM_MIF_2026-10.tsv.asc", second)
    assert len(gateway.events(MIF_TOPIC)) == 1
    [received] = gateway.events(FILE_TOPIC, "file.received")
    [duplicate] = gateway.events(FILE_TOPIC, "file.duplicate")
    assert duplicate.data.original_file_id == received.data.file_id
    files = {f["status"]: f for f in await gateway.files(direction="inbound")}
    assert files["duplicate"]["content_sha256"] == files["processed"]["content_sha256"]
    assert files["duplicate"]["encrypted"]


@pytest.fixture
def held_ingest(monkeypatch: pytest.MonkeyPatch) -> tuple[asyncio.Event, asyncio.Event]:
    """Uploads wait in the pipeline until released: (first one started, release)."""
    started, release = asyncio.Event(), asyncio.Event()
    real = sftp_server.ingest

    async def held(*args: Any, **kwargs: Any) -> Any:
        started.set()
        await release.wait()
        return await real(*args, **kwargs)

    monkeypatch.setattr(sftp_server, "ingest", held)
    return started, release


async def test_a_same_size_correction_uploaded_while_the_first_is_processed_is_processed_after_it(
        gateway: Gateway, held_ingest: tuple[asyncio.Event, asyncio.Event]) -> None:
    started, release = held_ingest
    first = hn_mif(2)
    corrected = first.replace(b"Member1,", b"Member9,")
    assert len(corrected) == len(first)
    async with gateway.session("healthnet") as sftp:
        async with sftp.open("/inbound/HN_ECM_MIF_202610.csv", "wb") as handle:
            await handle.write(first)
        await started.wait()
        async with sftp.open("/inbound/HN_ECM_MIF_202610.csv", "wb") as handle:
            await handle.write(corrected)
    release.set()
    await gateway.settle()
    assert len(gateway.events(FILE_TOPIC, "file.received")) == 2
    names = sorted(e.data.member.first_name for e in gateway.events(MIF_TOPIC))
    assert names == ["Member1", "Member2", "Member2", "Member9"]
    assert list(gateway.ports.jail.inbound("healthnet").iterdir()) == []


async def test_an_upload_still_open_when_the_first_is_done_is_kept_and_handled_at_its_close(
        gateway: Gateway, held_ingest: tuple[asyncio.Event, asyncio.Event]) -> None:
    started, release = held_ingest
    first = hn_mif(2)
    inbound = gateway.ports.jail.inbound("healthnet")
    async with gateway.session("healthnet") as sftp:
        async with sftp.open("/inbound/HN_ECM_MIF_202610.csv", "wb") as handle:
            await handle.write(first)
        await started.wait()
        handle = await sftp.open("/inbound/HN_ECM_MIF_202610.csv", "wb")
        await handle.write(first)  # the same bytes again, not closed yet
        release.set()
        await wait_for(lambda: _processed(gateway, 1))
        assert [p.name for p in inbound.iterdir()] == ["HN_ECM_MIF_202610.csv"]
        await handle.close()
    await gateway.settle()
    # The second upload leaves a trace: recorded as a duplicate of the first, then taken out of inbound/.
    [received] = gateway.events(FILE_TOPIC, "file.received")
    [duplicate] = gateway.events(FILE_TOPIC, "file.duplicate")
    assert duplicate.data.original_file_id == received.data.file_id
    assert len(gateway.events(MIF_TOPIC)) == 2
    assert list(inbound.iterdir()) == []


async def _processed(gateway: Gateway, count: int) -> bool:
    return gateway.sftp.processed >= count


async def test_an_upload_completes_on_rename_from_a_temporary_name(gateway: Gateway) -> None:
    async with gateway.session("healthnet") as sftp:
        async with sftp.open("/inbound/HN_ECM_MIF_202610.csv.part", "wb") as handle:
            await handle.write(hn_mif(2))
        await gateway.settle()
        assert gateway.events(FILE_TOPIC) == []  # a temporary name is never processed
        await sftp.rename("/inbound/HN_ECM_MIF_202610.csv.part", "/inbound/HN_ECM_MIF_202610.csv")
    await gateway.settle()
    assert len(gateway.events(MIF_TOPIC)) == 2


async def test_a_dropped_connection_mid_upload_leaves_nothing(gateway: Gateway) -> None:
    conn = await asyncssh.connect("127.0.0.1", gateway.port, username="healthnet",
                                  client_keys=[gateway.accounts["healthnet"].key], known_hosts=None, agent_path=None)
    sftp = await conn.start_sftp_client()
    handle = await sftp.open("/inbound/HN_ECM_MIF_202610.csv", "wb")
    await handle.write(hn_mif(2)[:200])
    conn.abort()
    await asyncio.sleep(0.3)
    await gateway.settle()
    assert gateway.events(FILE_TOPIC) == []
    assert list(gateway.ports.jail.inbound("healthnet").iterdir()) == []


async def test_file_size_limit_is_enforced(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from gateway_testing import running_gateway

    def small(mcp: str, data: dict) -> None:
        data["limits"] = {"max_file_bytes": 1000, "max_account_bytes": 100000}

    async with running_gateway(tmp_path, monkeypatch, change=small) as gateway:
        async with gateway.session("healthnet") as sftp:
            with pytest.raises(asyncssh.SFTPFailure):
                async with sftp.open("/inbound/HN_ECM_MIF_202610.csv", "wb") as handle:
                    await handle.write(hn_mif(20))
        await gateway.settle()
        assert gateway.events(FILE_TOPIC) == []
        assert list(gateway.ports.jail.inbound("healthnet").iterdir()) == []


async def test_concurrent_uploads_from_three_mcps(gateway: Gateway) -> None:
    lac = ("CIN|LAST_NAME|FIRST_NAME|DOB|GENDER|ADDRESS|CITY|STATE|ZIP|PHONE|HOMELESS_FLAG|POF_CODES|ECM_STATUS|"
           "AUTH_NUMBER|AUTH_START|AUTH_END|PROVIDER_NPI|ACUITY|REPORT_PERIOD\n" + "".join(
               f"{91000000 + i:08d}B|Testperson|L{i}|19800101|F|1 Elm St|Los Angeles|CA|90001|5555550101|N|1a,3|"
               f"authorized|LA{i}|20261001|20270930|1234567893|2|202610\n" for i in range(40))).encode()
    mol = ("member_cin\tlast_name\tfirst_name\tdate_of_birth\tpopulation_of_focus\tecm_status\tperiod\n" + "".join(
        f"{92000000 + i:08d}C\tTestperson\tM{i}\t1970-02-02\tHomeless Adult\tActive\t2026-10\n"
        for i in range(30))).encode()

    def as_plaintext(mcp: str, data: dict) -> None:
        pass

    gpg = gnupg.GPG(gnupghome=str(gateway.ports.pgp.home))
    key = gpg.gen_key(gpg.gen_key_input(key_type="RSA", key_length=2048, name_email="hub@example.test",
                                        no_protection=True))
    encrypted = bytes(gpg.encrypt(mol, [key.fingerprint], always_trust=True, armor=False).data)

    async def one(mcp: str, name: str, content: bytes) -> None:
        async with gateway.session(mcp) as sftp, sftp.open(f"/inbound/{name}", "wb") as handle:
            await handle.write(content)

    await asyncio.gather(*(one("healthnet", f"HN_ECM_MIF_2026{m:02d}.csv",
                               hn_mif(0, extra_rows=tuple(hn_mif_row(m * 100 + i) for i in range(25))))
                           for m in (7, 8, 9)),
                         one("lacare", "LAC_MIF_202610.txt", lac),
                         one("molina", "MOL_ECM_MIF_2026-10.tsv.pgp", encrypted))
    await gateway.settle()
    by_mcp: dict[str, int] = {}
    for event in gateway.events(MIF_TOPIC):
        by_mcp[event.data.mcp_code] = by_mcp.get(event.data.mcp_code, 0) + 1
    assert by_mcp == {"healthnet": 75, "lacare": 40, "molina": 30}
    molina_row = next(e for e in gateway.events(MIF_TOPIC) if e.data.mcp_code == "molina")
    assert molina_row.data.pof_codes == ("1a",) and molina_row.data.ecm_status == "enrolled"


async def test_mcp_downloads_and_removes_its_outbound_files(gateway: Gateway) -> None:
    gateway.ports.jail.write_outbound("lacare", "LAC_RTF_202610.txt", b"hello")
    async with gateway.session("lacare") as sftp:
        assert "LAC_RTF_202610.txt" in await sftp.listdir("/outbound")
        async with sftp.open("/outbound/LAC_RTF_202610.txt", "rb") as handle:
            assert await handle.read() == b"hello"
        await sftp.remove("/outbound/LAC_RTF_202610.txt")
        assert sorted(await sftp.listdir("/outbound")) == [".", ".."]
    result = await asyncio.to_thread(openssh_sftp, gateway, "lacare", "ls /outbound\nls /\n")
    assert result.returncode == 0, result.stderr
