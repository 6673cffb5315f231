"""A record with parts never digitised: named as ranges, on the cover and in --json; packing it needs consent."""

from __future__ import annotations

from index.rows import DocumentRow
from pipelines.transfer.plan import missing_parts


def doc(source: str, part: int | None, parts: int | None, status: str = "ok") -> DocumentRow:
    return DocumentRow(source, "0" * 64 if status == "ok" else None, "9990000018", 1, status,
                       "pdf/x.pdf" if status == "ok" else None, status == "ok", part, parts,
                       None if status == "ok" else "bad", None if status == "ok" else "not_a_scan", 10)


def test_missing_parts_are_named_as_ranges_per_record():
    name = "Lloyd_George_Record_[Janet Wilson]_[9990000018]_[15-06-1935].pdf"
    docs = [doc(f"1of6_{name}", 1, 6), doc(f"3of6_{name}", 3, 6), doc(f"4of6_{name}", 4, 6, status="failed")]
    assert missing_parts(docs) == (f"parts 2, 4-6 of 6 of {name}",)


def test_a_whole_record_or_a_single_part_has_nothing_missing():
    name = "Lloyd_George_Record_[Janet Wilson]_[9990000018]_[15-06-1935].pdf"
    assert missing_parts([doc(f"1of2_{name}", 1, 2), doc(f"2of2_{name}", 2, 2)]) == ()
    assert missing_parts([doc("9990000018 Janet Wilson 15-06-1935", None, None)]) == ()
