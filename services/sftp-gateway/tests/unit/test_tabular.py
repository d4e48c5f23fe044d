"""Tabular parsing and writing with MCP layouts: the malformed-file matrix, row numbers, rules, round trips."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from sftp_gateway.domain.profile import Layout
from sftp_gateway.domain.records import MIF, RTF
from sftp_gateway.domain.tabular import parse_table, render_table

CSV = Layout(columns={"CIN": "cin", "Last": "last_name", "First": "first_name", "DOB": "birth_date",
                      "Addr": "address_line1", "POF": "pof_codes", "Status": "ecm_status", "Homeless": "homeless"},
             date_formats=("%m/%d/%Y", "%Y%m%d"), value_maps={"ecm_status": {"A": "authorized"},
                                                              "pof_codes": {"Homeless Adult": "1a"}})
HEADER = "CIN,Last,First,DOB,Addr,POF,Status,Homeless"
GOOD = "90000001A,Testperson,Ana,01/15/1980,1 Main St,1a;3,A,N"


def parse(text: str | bytes, layout: Layout = CSV) -> Any:
    return parse_table(text.encode() if isinstance(text, str) else text, layout, MIF)


def rules(result: Any) -> list[tuple[int | None, str | None, str]]:
    return [(p.row, p.column, p.rule) for p in result.problems]


@pytest.mark.parametrize(("name", "content", "expected"), [
    ("missing column", "CIN,Last,First\n90000001A,Testperson,Ana\n", [(None, None, "missing_columns")]),
    ("wrong delimiter", HEADER.replace(",", "|") + "\n" + GOOD.replace(",", "|") + "\n",
     [(None, None, "wrong_delimiter")]),
    ("empty file", "", [(None, None, "empty_file")]),
    ("only blank lines", "\r\n\r\n  \r\n", [(None, None, "empty_file")]),
    ("header only", HEADER + "\r\n", [(None, None, "empty_file")]),
    ("bad date", f"{HEADER}\n{GOOD}\n90000002A,Testperson,Bo,13/45/1980,x,1a,A,N\n", [(3, "DOB", "date_format")]),
    ("bad CIN", f"{HEADER}\n{GOOD}\n9000000ZZ,Testperson,Bo,01/15/1980,x,1a,A,N\n", [(3, "CIN", "cin")]),
    ("missing required value", f"{HEADER}\n{GOOD}\n90000002A,,Bo,01/15/1980,x,1a,A,N\n", [(3, "Last", "required")]),
    ("wrong column count", f"{HEADER}\n{GOOD}\n90000002A,Testperson,Bo\n", [(3, None, "column_count")]),
    ("bad POF", f"{HEADER}\n{GOOD}\n90000002A,Testperson,Bo,01/15/1980,x,12,A,N\n", [(3, "POF", "pof_code")]),
    ("bad flag", f"{HEADER}\n{GOOD}\n90000002A,Testperson,Bo,01/15/1980,x,1a,A,maybe\n", [(3, "Homeless", "flag")]),
    ("unbalanced quotes", f'{HEADER}\n{GOOD}\n90000002A,Testperson,"Bo,01/15/1980,x,1a,A,N\n',
     [(3, None, "quoting")]),
    ("undecodable header", HEADER.encode() + b"\xff\n" + GOOD.encode() + b"\n", [(None, None, "encoding")]),
])
def test_malformed_file_matrix_names_row_column_and_rule(name: str, content: str, expected: list[Any]) -> None:
    assert rules(parse(content)) == expected


def test_problems_never_echo_the_value() -> None:
    result = parse(f"{HEADER}\n9000000ZZ,Testperson,Bo,31/31/1980,x,1a,A,N\n")
    text = " ".join(p.message for p in result.problems)
    assert "9000000ZZ" not in text and "31/31/1980" not in text


def test_utf8_bom_crlf_quoted_delimiter_and_trailing_blank_lines_are_fine() -> None:
    content = ("\ufeff" + HEADER + "\r\n" + '90000001A,"Testperson, Jr.",Ana,01/15/1980,"1 Main St, Apt 4",'
               '"Homeless Adult;3",A,Y\r\n\r\n\r\n').encode()
    result = parse(content)
    assert result.problems == []
    [row] = result.rows
    assert row.number == 2
    assert row.values["last_name"] == "Testperson, Jr."
    assert row.values["address_line1"] == "1 Main St, Apt 4"
    assert row.values["pof_codes"] == ("1a", "3")
    assert row.values["ecm_status"] == "authorized"
    assert row.values["homeless"] is True
    assert row.values["birth_date"] == date(1980, 1, 15)


def test_row_numbers_are_physical_lines_even_across_blank_and_multiline_cells() -> None:
    content = (f'{HEADER}\n\n{GOOD}\n90000002A,Testperson,"Bo\nBo",01/15/1980,x,1a,A,N\n'
               "9000000ZZ,T,C,01/15/1980,x,1a,A,N\n")
    result = parse(content)
    assert [r.number for r in result.rows] == [3, 4]
    assert rules(result) == [(6, "CIN", "cin")]


def test_second_date_format_and_unknown_columns_are_kept_as_extra() -> None:
    result = parse(f"{HEADER},Plan_Note\n90000001A,Testperson,Ana,19800115,x,1a,A,N,keep me\n")
    [row] = result.rows
    assert row.values["birth_date"] == date(1980, 1, 15)
    assert row.extra == {"Plan_Note": "keep me"}


def test_strict_value_map_rejects_unmapped_values() -> None:
    strict = CSV.model_copy(update={"strict_values": ("ecm_status",)})
    result = parse(f"{HEADER}\n90000001A,Testperson,Ana,01/15/1980,x,1a,Q,N\n", strict)
    assert rules(result) == [(2, "Status", "value_map")]


def test_invalid_bytes_reject_their_row_naming_the_column_and_the_other_rows_are_read() -> None:
    content = (HEADER.encode() + b"\n" + GOOD.encode() + b"\n90000002A,Testp\xe9rson,Ana,01/15/1980,x,1a,A,N\n"
               + GOOD.replace("90000001A", "90000003A").encode() + b"\n")
    result = parse(content)
    assert rules(result) == [(3, "Last", "encoding")]
    assert [r.number for r in result.rows] == [2, 4]
    assert "\ufffd" not in result.problems[0].message and "rson" not in result.problems[0].message
    latin = parse(content, CSV.model_copy(update={"encoding": "latin-1"}))
    assert latin.rows[1].values["last_name"] == "Testpérson"


@pytest.mark.parametrize("bad_address", ['"100 Main St" Apt 4', '"100 Main St, Apt 4'])
def test_a_stray_quote_rejects_its_row_and_keeps_the_rows_after_it(bad_address: str) -> None:
    rows = [GOOD.replace("90000001A", f"9000000{n}A") for n in range(1, 6)]
    rows[2] = rows[2].replace("1 Main St", bad_address)
    result = parse("\r\n".join([HEADER, *rows]) + "\r\n")
    assert rules(result) == [(4, None, "quoting")]
    assert [r.number for r in result.rows] == [2, 3, 5, 6]
    assert result.data_rows == 5


def test_two_stray_quotes_do_not_swallow_the_rows_between_them() -> None:
    rows = [GOOD.replace("90000001A", f"9000000{n}A") for n in range(1, 6)]
    rows[1] = rows[1].replace("1 Main St", '"1 Main St')
    rows[3] = rows[3].replace("1 Main St", '"1 Main St, Apt 4')
    result = parse("\n".join([HEADER, *rows]) + "\n")
    assert rules(result) == [(3, None, "quoting"), (5, None, "quoting")]
    assert [r.number for r in result.rows] == [2, 4, 6]


def test_utf16_files_are_decoded_as_a_whole() -> None:
    result = parse(f"{HEADER}\r\n{GOOD}\r\n".encode("utf-16"), CSV.model_copy(update={"encoding": "utf-16"}))
    assert result.problems == [] and result.rows[0].values["cin"] == "90000001A"


def test_headerless_pipe_layout_maps_by_position() -> None:
    layout = Layout(columns={"c": "cin", "l": "last_name", "f": "first_name", "d": "birth_date"}, header=False,
                    delimiter="pipe", quoting="none", date_formats=("%Y%m%d",))
    result = parse("90000001A|Testperson|Ana|19800115\n", layout)
    assert result.rows[0].values["cin"] == "90000001A" and result.problems == []


def test_render_then_parse_round_trips_with_value_maps_dates_and_lists() -> None:
    layout = Layout(columns={"CIN": "cin", "Status": "ecm_status", "Start": "enrollment_start", "POF": "pof_codes",
                             "Homeless": "homeless", "Period": "reporting_period", "InPerson": "in_person_contacts"},
                    date_formats=("%m/%d/%Y",), value_maps={"ecm_status": {"E": "enrolled"}}, line_ending="lf")
    rows = [{"cin": "90000001A", "ecm_status": "enrolled", "enrollment_start": date(2026, 10, 1),
             "pof_codes": ("1a", "3"), "homeless": False, "reporting_period": "2026-10", "in_person_contacts": 2}]
    content = render_table(rows, layout, RTF)
    assert content.decode() == "CIN,Status,Start,POF,Homeless,Period,InPerson\n" \
                               "90000001A,E,10/01/2026,1a;3,N,202610,2\n"
    back = parse_table(content, layout, RTF)
    assert back.problems == []
    assert back.rows[0].values == {**rows[0]}


def test_whitespace_only_lines_are_blank_and_repeated_bad_values_fail_every_time() -> None:
    # Converters for repeating values (NPI, POF lists, periods) are memoized: a bad value must still fail on
    # every row it appears in, and a line of only spaces and delimiters is no row at all.
    layout = CSV.model_copy(update={"columns": {**CSV.columns, "NPI": "assigned_provider_npi"}})
    bad_npi = "1234567890"
    content = (f"{HEADER},NPI\n , ,\t,,,,,, \n{GOOD},{bad_npi}\n{GOOD},{bad_npi}\n"
               f"90000003A,  Testperson  ,Cy,01/15/1980,x,9;1a,A,N,1234567893\n"
               f"90000004A,Testperson,Di,01/15/1980,x,9;1a,A,N,1234567893\n")
    result = parse(content, layout)
    assert rules(result) == [(3, "NPI", "npi"), (4, "NPI", "npi")]
    assert [r.number for r in result.rows] == [5, 6]
    assert result.rows[0].values["last_name"] == "Testperson"
    assert result.rows[0].values["pof_codes"] == result.rows[1].values["pof_codes"] == ("9", "1a")
    assert result.data_rows == 4


def test_unquoted_layouts_write_no_escapes_a_delimiter_or_line_break_becomes_a_space() -> None:
    layout = Layout(columns={"CIN": "cin", "ADDRESS": "address_line1", "CITY": "city"}, delimiter="pipe",
                    quoting="none", line_ending="lf")
    rows = [{"cin": "90000001A", "address_line1": '100 Main St | Apt "4"\r\nrear', "city": "Los Angeles"}]
    content = render_table(rows, layout, RTF)
    assert content.decode() == 'CIN|ADDRESS|CITY\n90000001A|100 Main St Apt "4" rear|Los Angeles\n'
    back = parse_table(content, layout, RTF)
    assert back.problems == [] and back.rows[0].values["address_line1"] == '100 Main St Apt "4" rear'
