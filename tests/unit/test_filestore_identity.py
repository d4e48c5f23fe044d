"""The content-addressed file store and the internal member id."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.filestore import FileCorrupted, FileNotStored, FileStore
from shared.identity import member_id_for


def test_same_bytes_same_address_and_verified_on_read(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    first = store.put(b"ISA*00*...~")
    again = store.put(b"ISA*00*...~")
    assert first == again and first.uri.startswith("store://sha256/") and first.size == 11
    assert store.get(first) == b"ISA*00*...~"
    assert store.get(first.uri) == b"ISA*00*...~"


def test_missing_and_tampered_files_are_reported(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    ref = store.put(b"content")
    with pytest.raises(FileNotStored):
        store.get("store://sha256/" + "0" * 64)
    (tmp_path / ref.sha256[:2] / ref.sha256).write_bytes(b"tampered")
    with pytest.raises(FileCorrupted):
        store.get(ref)


def test_member_id_is_stable_keyed_and_hides_the_cin() -> None:
    a = member_id_for("12345678A", b"k1")
    assert a == member_id_for(" 12345678a ", b"k1")
    assert a != member_id_for("12345678A", b"k2")
    assert a.startswith("mbr_") and "12345678" not in a and len(a) == 28
