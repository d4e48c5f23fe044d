"""The inbound pipeline end to end over SFTP: quarantine with row numbers and reasons, error reports, row
policies, X12 by reference, order, reprocessing after a profile fix."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
import yaml
from gateway_testing import HN_MIF_HEADER, HUB, Gateway, hn_mif, hn_mif_row, x12

MIF_TOPIC = "sftp-gateway.member_information.v1"
FILE_TOPIC = "sftp-gateway.file.v1"
BAD_DATE = hn_mif_row(7, dob="02/30/1980")
BAD_CIN = hn_mif_row(8, cin="9000000ZZ")


def report(gateway: Gateway, mcp: str) -> list[dict[str, str]]:
    [content] = [c for n, c in gateway.outbound(mcp).items() if n.endswith(".errors.csv")]
    return list(csv.DictReader(io.StringIO(content.decode())))


async def test_row_level_profile_publishes_good_rows_and_quarantines_bad_ones(gateway: Gateway) -> None:
    await gateway.upload("healthnet", "HN_ECM_MIF_202610.csv", hn_mif(2, extra_rows=(BAD_DATE, BAD_CIN)))
    assert sorted(e.data.row_number for e in gateway.events(MIF_TOPIC)) == [2, 3]
    [received] = gateway.events(FILE_TOPIC, "file.received")
    assert (received.data.rows, received.data.rows_rejected) == (2, 2)
    [file] = await gateway.files(direction="inbound")
    assert (file["status"], file["rows_accepted"], file["rows_rejected"], file["reason"]) == (
        "partially_accepted", 2, 2, "row_errors")
    detail = (await gateway.client.get(f"/v1/files/{file['id']}", headers=gateway.headers())).json()
    assert [(p["row"], p["column"], p["rule"]) for p in detail["problems"]] == [
        (4, "Member_DOB", "date_format"), (5, "Member_CIN", "cin")]
    lines = report(gateway, "healthnet")
    assert [(r["row"], r["rule"]) for r in lines] == [("4", "date_format"), ("5", "cin")]
    assert "9000000ZZ" not in str(lines)  # reports name rows and rules, never values
    [delivered] = gateway.events(FILE_TOPIC, "file.delivered")
    assert delivered.data.kind == "error_report" and delivered.data.source_id == file["id"]


# L.A. Care's MIF layout (all-or-nothing): its header and one good row.
LACARE_MIF_HEADER = ("CIN|LAST_NAME|FIRST_NAME|DOB|GENDER|ADDRESS|CITY|STATE|ZIP|PHONE|HOMELESS_FLAG|POF_CODES|"
                     "ECM_STATUS|AUTH_NUMBER|AUTH_START|AUTH_END|PROVIDER_NPI|ACUITY|REPORT_PERIOD")
LACARE_MIF_ROW = ("90000001A|Testperson|Ana|19800101|F|1 Elm St|Los Angeles|CA|90001|5555550101|N|1a|E|A1|20261001|"
                  "20270930|1234567893|2|202610")


async def test_all_or_nothing_profile_quarantines_the_whole_file(gateway: Gateway) -> None:
    header, good = LACARE_MIF_HEADER, LACARE_MIF_ROW
    bad = good.replace("19800101", "19801301").replace("90000001A", "90000002A")
    await gateway.upload("lacare", "LAC_MIF_202610.txt", f"{header}\n{good}\n{bad}\n".encode())
    assert gateway.events(MIF_TOPIC) == []
    [quarantined] = gateway.events(FILE_TOPIC, "file.quarantined")
    assert quarantined.data.reason == "row_errors"
    assert [(r["row"], r["column"], r["rule"]) for r in report(gateway, "lacare")] == [("3", "DOB", "date_format")]


@pytest.mark.parametrize(("name", "content", "reason"), [
    ("missing columns", b"Member_CIN,Member_Last_Name\r\n90000001A,Testperson\r\n", "missing_columns"),
    ("wrong delimiter", (HN_MIF_HEADER.replace(",", "|") + "\n" + hn_mif_row(1).replace(",", "|") + "\n").encode(),
     "wrong_delimiter"),
    ("empty file", b"", "empty_file"),
    ("header only", (HN_MIF_HEADER + "\r\n\r\n").encode(), "empty_file"),
    ("header not UTF-8", HN_MIF_HEADER.encode() + b"\xff\r\n" + hn_mif_row(1).encode() + b"\r\n", "encoding"),
])
async def test_bad_files_are_quarantined_with_the_reason(gateway: Gateway, name: str, content: bytes,
                                                         reason: str) -> None:
    await gateway.upload("healthnet", "HN_ECM_MIF_202610.csv", content)
    [quarantined] = gateway.events(FILE_TOPIC, "file.quarantined")
    assert quarantined.data.reason == reason
    assert gateway.events(MIF_TOPIC) == []
    assert [r["rule"] for r in report(gateway, "healthnet")] == [reason]


async def test_a_row_with_broken_quoting_or_bytes_is_rejected_alone_on_a_row_level_profile(gateway: Gateway) -> None:
    rows = [hn_mif_row(n) for n in range(1, 6)]
    rows[2] = hn_mif_row(3, address='"100 Main St" Apt 4')
    rows[3] = hn_mif_row(4).replace("Testperson", "Peña")
    await gateway.upload("healthnet", "HN_ECM_MIF_202610.csv",
                         ("\r\n".join([HN_MIF_HEADER, *rows]) + "\r\n").encode("cp1252"))
    assert sorted(e.data.row_number for e in gateway.events(MIF_TOPIC)) == [2, 3, 6]
    [file] = await gateway.files(direction="inbound")
    assert (file["status"], file["rows_accepted"], file["rows_rejected"]) == ("partially_accepted", 3, 2)
    lines = report(gateway, "healthnet")
    assert [(r["row"], r["column"], r["field"], r["rule"]) for r in lines] == [
        ("4", "", "", "quoting"), ("5", "Member_Last_Name", "last_name", "encoding")]
    assert "Pe" not in str(lines) and "Main St" not in str(lines)


async def test_a_row_with_bad_bytes_quarantines_an_all_or_nothing_file_naming_the_row(gateway: Gateway) -> None:
    header, good = LACARE_MIF_HEADER, LACARE_MIF_ROW
    bad = good.replace("90000001A", "90000002A").replace("Testperson", "Peña")
    await gateway.upload("lacare", "LAC_MIF_202610.txt", f"{header}\n{good}\n{bad}\n".encode("cp1252"))
    assert gateway.events(MIF_TOPIC) == []
    [quarantined] = gateway.events(FILE_TOPIC, "file.quarantined")
    assert quarantined.data.reason == "row_errors"
    assert [(r["row"], r["column"], r["rule"]) for r in report(gateway, "lacare")] == [("3", "LAST_NAME", "encoding")]


async def test_bom_crlf_quoted_delimiters_and_trailing_blank_lines_are_accepted(gateway: Gateway) -> None:
    content = b"\xef\xbb\xbf" + hn_mif(2) + b"\r\n\r\n"
    await gateway.upload("healthnet", "HN_ECM_MIF_202610.csv", content)
    assert len(gateway.events(MIF_TOPIC)) == 2
    assert gateway.events(FILE_TOPIC, "file.quarantined") == []
    assert not [n for n in gateway.outbound("healthnet") if n.endswith(".errors.csv")]


async def test_unrecognized_names_are_quarantined(gateway: Gateway) -> None:
    await gateway.upload("healthnet", "holiday-party.docx", b"hello")
    [quarantined] = gateway.events(FILE_TOPIC, "file.quarantined")
    assert quarantined.data.reason == "unrecognized_name" and quarantined.data.kind is None


async def test_a_quarantined_file_sent_again_under_a_corrected_name_is_processed(gateway: Gateway) -> None:
    content = hn_mif(2)
    await gateway.upload("healthnet", "HN_ECM_MIF_202610.CSV.txt", content)
    [quarantined] = gateway.events(FILE_TOPIC, "file.quarantined")
    assert quarantined.data.reason == "unrecognized_name"
    await gateway.upload("healthnet", "HN_ECM_MIF_202610.csv", content)
    assert gateway.events(FILE_TOPIC, "file.duplicate") == []
    assert sorted(e.data.row_number for e in gateway.events(MIF_TOPIC)) == [2, 3]
    # Once its rows went out the bytes are a duplicate, and the quarantined twin is not run again either.
    await gateway.upload("healthnet", "HN_ECM_MIF_202610_again.csv", content)
    [duplicate] = gateway.events(FILE_TOPIC, "file.duplicate")
    [received] = gateway.events(FILE_TOPIC, "file.received")
    assert duplicate.data.original_file_id == received.data.file_id
    again = await gateway.client.post(f"/v1/files/{quarantined.data.file_id}/reprocess", headers=gateway.headers())
    assert again.status_code == 409 and again.json()["type"].endswith("file-duplicate")
    await gateway.settle()
    assert len(gateway.events(MIF_TOPIC)) == 2


async def test_x12_files_go_to_their_owners_by_reference(gateway: Gateway) -> None:
    content = x12()
    await gateway.upload("healthnet", "remit_20261120.835", content)
    [received] = gateway.events(FILE_TOPIC, "file.received")
    assert received.data.kind == "835" and received.data.rows is None
    assert gateway.ports.files.get(received.data.file) == content
    # Named as 835 but carrying a 999: quarantined.
    await gateway.upload("healthnet", "ack_20261120.835", x12("FA", "005010X231A1", [["AK1", "HC", "1"]]))
    [quarantined] = gateway.events(FILE_TOPIC, "file.quarantined")
    assert quarantined.data.reason == "x12_kind_mismatch"
    # An unnamed X12 file is recognized by its content.
    await gateway.upload("lacare", "whatever.edi", x12("FA", "005010X231A1", [["AK1", "HC", "1"]]))
    assert sorted(e.data.kind for e in gateway.events(FILE_TOPIC, "file.received")) == ["835", "999"]


async def test_an_older_reporting_period_after_a_newer_one_is_out_of_order(gateway: Gateway) -> None:
    await gateway.upload("healthnet", "HN_ECM_MIF_202610.csv", hn_mif(1))
    await gateway.upload("healthnet", "HN_ECM_MIF_202609.csv", hn_mif(2))
    [late] = gateway.events(FILE_TOPIC, "file.out_of_order")
    assert late.data.reporting_period == "2026-09" and late.data.kind == "mif"


async def test_reprocess_after_a_profile_fix_publishes_only_rows_not_sent_before(gateway: Gateway) -> None:
    odd = hn_mif_row(9).replace(",A,AUTH", ",Z,AUTH")  # an ECM status the strict value map does not know
    await gateway.upload("healthnet", "HN_ECM_MIF_202610.csv", hn_mif(2, extra_rows=(odd,)))
    assert len(gateway.events(MIF_TOPIC)) == 2
    [file] = await gateway.files(direction="inbound")
    profile_path: Path = gateway.ports.profiles.folder / "healthnet.yaml"
    data = yaml.safe_load(profile_path.read_text())  # noqa: ASYNC240 - a test's small file
    data["layouts"]["mif"]["value_maps"]["ecm_status"]["Z"] = "pending"
    profile_path.write_text(yaml.safe_dump(data))  # noqa: ASYNC240
    reload = await gateway.client.post("/v1/profiles/reload", headers=gateway.headers())
    assert reload.status_code == 200, reload.text
    response = await gateway.client.post(f"/v1/files/{file['id']}/reprocess",
                                         headers=gateway.headers(HUB, **{"Idempotency-Key": "fix-1"}))
    assert response.status_code == 200, response.text
    assert (response.json()["status"], response.json()["rows_accepted"]) == ("processed", 3)
    replay = await gateway.client.post(f"/v1/files/{file['id']}/reprocess",
                                       headers=gateway.headers(HUB, **{"Idempotency-Key": "fix-1"}))
    assert replay.headers.get("Idempotent-Replayed") == "true"
    await gateway.settle()
    rows = gateway.events(MIF_TOPIC)
    assert sorted(e.data.row_number for e in rows) == [2, 3, 4]  # row 4 once, rows 2-3 not again
    again = await gateway.client.post(f"/v1/files/{file['id']}/reprocess", headers=gateway.headers())
    assert again.status_code == 409 and again.json()["type"].endswith("file-not-reprocessable")
