"""Patient identity: Modulus 11, NDR file names, patient folders and metadata.csv manifests."""

from __future__ import annotations

import pickle
from datetime import date
from pathlib import Path

import pytest

from pipelines.identity import (
    MAX_PARTS,
    IdentityCode,
    IdentityError,
    Manifest,
    NdrName,
    PatientId,
    nhs_number_valid,
    number_ranges,
    normalise_nhs_number,
    parse_ndr_filename,
    parse_patient_folder,
    read_manifest,
)
from pipelines.identity_match import printed_identity_disagrees, same_person

TODAY = date(2026, 6, 1)
# Hand-checked: 9434765919 is the NHS Digital example; 999 numbers are never issued to patients.
VALID = ("9434765919", "9990000018", "9990000026", "9990000050")  # 9990000050: 11 -> check digit 0
JO = "1of1_Lloyd_George_Record_[Jo Bloggs]_[9434765919]_[01-02-1960].pdf"


# --- NHS numbers -----------------------------------------------------------------------------


@pytest.mark.parametrize("number", VALID)
def test_valid_numbers_pass_modulus_11(number: str) -> None:
    assert nhs_number_valid(number)


def test_weighted_sum_by_hand() -> None:
    # 9*10+4*9+3*8+4*7+7*6+6*5+5*4+9*3+1*2 = 299; 299 mod 11 = 2; 11 - 2 = 9.
    assert nhs_number_valid("9434765919")
    assert not nhs_number_valid("9434765918")


@pytest.mark.parametrize("last", "0123456789")
def test_nine_digits_whose_check_would_be_10_never_validate(last: str) -> None:
    # 9*10+9*9+9*8 = 243; 243 mod 11 = 1; 11 - 1 = 10: no valid check digit exists.
    assert not nhs_number_valid("999000000" + last)


@pytest.mark.parametrize(
    "text",
    [
        "943476591",
        "94347659190",
        "943 476 5919",
        "943476591a",
        "",
        "\uff19\uff14\uff13\uff14\uff17\uff16\uff15\uff19\uff11\uff19",  # full-width digits
        "0000000000",
        "1111111111",
    ],
)
def test_malformed_or_placeholder_numbers_are_invalid(text: str) -> None:
    assert not nhs_number_valid(text)


def test_normalise_strips_spaces_and_hyphens() -> None:
    assert normalise_nhs_number("943 476 5919") == "9434765919"
    assert normalise_nhs_number(" 943-476-5919 ") == "9434765919"
    assert normalise_nhs_number("943\u00a0476\u00a05919") == "9434765919"


# --- NDR file names --------------------------------------------------------------------------


def test_ndr_name_parses() -> None:
    parsed = parse_ndr_filename(JO, today=TODAY)
    assert parsed == NdrName(1, 1, PatientId("9434765919", "Jo Bloggs", date(1960, 2, 1)))


def test_ndr_name_lenient_on_case_spaces_and_extension() -> None:
    name = "2OF3_lloyd_george_record_[Jo Bloggs]_[943 476 5919]_[01-02-1960].TIFF"
    parsed = parse_ndr_filename(name, today=TODAY)
    assert parsed is not None
    assert (parsed.part, parsed.parts, parsed.patient.nhs_number) == (2, 3, "9434765919")
    assert parse_ndr_filename(JO.replace(".pdf", ".Pdf"), today=TODAY) is not None
    assert parse_ndr_filename(JO.replace(".pdf", ".tif"), today=TODAY) is not None


def test_ndr_name_given_as_a_path_uses_the_base_name() -> None:
    parsed = parse_ndr_filename(f"scans\\batch 1\\{JO}", today=TODAY)
    assert parsed is not None and parsed.patient.nhs_number == "9434765919"


@pytest.mark.parametrize("name", ["scan001.pdf", "Lloyd George envelope.pdf", "page1.png", "2of3.pdf", ""])
def test_names_that_are_not_ndr_like_return_none(name: str) -> None:
    assert parse_ndr_filename(name, today=TODAY) is None


def test_bad_nhs_number_names_the_file_and_the_fix() -> None:
    name = JO.replace("9434765919", "9434765918")
    with pytest.raises(IdentityError) as caught:
        parse_ndr_filename(name, today=TODAY)
    assert caught.value.code == "nhs_number_invalid"
    assert str(caught.value) == (
        f"NHS number 9434765918 in {name!r} fails the Modulus 11 check; "
        "correct the file name or add a metadata.csv row for it"
    )


def test_short_nhs_number_is_reported_as_not_ten_digits() -> None:
    with pytest.raises(IdentityError, match="not a 10-digit") as caught:
        parse_ndr_filename(JO.replace("9434765919", "943476591"), today=TODAY)
    assert caught.value.code == "nhs_number_invalid"


@pytest.mark.parametrize(
    ("dob", "why"),
    [("31-02-1960", "not a real date"), ("01-13-1960", "not a real date"), ("1960-02-01", "not a DD-MM-YYYY"),
     ("02-06-2026", "in the future")],
)
def test_bad_dates_of_birth(dob: str, why: str) -> None:
    with pytest.raises(IdentityError, match=why) as caught:
        parse_ndr_filename(JO.replace("01-02-1960", dob), today=TODAY)
    assert caught.value.code == "dob_invalid"


def test_today_is_allowed_as_a_date_of_birth() -> None:
    assert parse_ndr_filename(JO.replace("01-02-1960", "01-06-2026"), today=TODAY) is not None


def test_future_date_with_the_system_clock() -> None:
    with pytest.raises(IdentityError) as caught:
        parse_ndr_filename(JO.replace("01-02-1960", "01-01-2999"))
    assert caught.value.code == "dob_invalid"


@pytest.mark.parametrize("parts", ["3of2", "0of2", "1of0"])
def test_impossible_part_numbers(parts: str) -> None:
    with pytest.raises(IdentityError) as caught:
        parse_ndr_filename(JO.replace("1of1", parts), today=TODAY)
    assert caught.value.code == "part_invalid"


@pytest.mark.parametrize(
    "name",
    [
        "1of1_Lloyd_George_Record_[Jo Bloggs]_[9434765919].pdf",  # no date field
        "Lloyd_George_Record_[Jo Bloggs]_[9434765919]_[01-02-1960].pdf",  # no part prefix
        "1of1_Lloyd_George_Record_Jo_Bloggs_9434765919_01-02-1960.pdf",  # no brackets
        "1of1_Lloyd_George_Record_[Jo Bloggs]_[9434765919]_[01-02-1960].png",  # not pdf/tif/tiff
    ],
)
def test_ndr_like_but_malformed(name: str) -> None:
    with pytest.raises(IdentityError) as caught:
        parse_ndr_filename(name, today=TODAY)
    assert caught.value.code == "name_not_ndr"
    assert name in str(caught.value)


# --- patient folders -------------------------------------------------------------------------


def test_patient_folder_parses() -> None:
    assert parse_patient_folder("9990000018 Jane Anne Smith 03-05-1950", today=TODAY) == PatientId(
        "9990000018", "Jane Anne Smith", date(1950, 5, 3)
    )


def test_patient_folder_with_spaced_nhs_number() -> None:
    patient = parse_patient_folder("999 000 0018 Jane Anne Smith 03-05-1950", today=TODAY)
    assert patient is not None and patient.nhs_number == "9990000018" and patient.name == "Jane Anne Smith"


def test_patient_folder_without_a_name_is_accepted() -> None:
    assert parse_patient_folder("9990000018 03-05-1950", today=TODAY) == PatientId(
        "9990000018", None, date(1950, 5, 3)
    )


@pytest.mark.parametrize("name", ["scans", "batch 2024-01-01", "9990000018", "123 Jane Smith 03-05-1950", ""])
def test_other_folder_names_return_none(name: str) -> None:
    assert parse_patient_folder(name, today=TODAY) is None


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("9990000017 Jane Smith 03-05-1950", "nhs_number_invalid"),
        ("9990000018 Jane Smith 31-04-1950", "dob_invalid"),
        ("9990000018 Jane Smith", "dob_invalid"),
        ("9990000018 Jane Smith 03-05-2027", "dob_invalid"),
    ],
)
def test_patient_shaped_but_invalid_folders(name: str, code: str) -> None:
    with pytest.raises(IdentityError) as caught:
        parse_patient_folder(name, today=TODAY)
    assert caught.value.code == code
    assert f"folder {name!r}" in str(caught.value)
    assert "rename the folder" in str(caught.value)


# --- manifests -------------------------------------------------------------------------------

NDR_HEADER = (
    "FILEPATH,PAGE COUNT,GP-PRACTICE-CODE,NHS-NO,SECTION,SUB-SECTION,SCAN-DATE,SCAN-ID,USER-ID,UPLOAD"
)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_ndr_bulk_manifest_with_relative_absolute_and_backslash_paths(tmp_path: Path) -> None:
    absolute = tmp_path / "elsewhere" / "b.pdf"
    manifest_path = write(
        tmp_path / "batch" / "metadata.csv",
        f"{NDR_HEADER}\n"
        "sub/a.pdf,3,A12345,9434765919,LG,,01/02/2024,1,u,\n"
        f"{absolute},2,A12345,999 000 0018,LG,,01/02/2024,2,u,\n"
        "sub\\deeper\\c.pdf,1,A12345,9990000026,LG,,01/02/2024,3,u,\n",
    )
    manifest = read_manifest(manifest_path, today=TODAY)
    assert isinstance(manifest, Manifest)
    assert [r.row for r in manifest.rows] == [2, 3, 4]

    a = manifest.lookup(tmp_path / "batch" / "sub" / "a.pdf")
    assert a is not None and a.patient == PatientId("9434765919", None, None)
    assert a.get("gp-practice-code") == "A12345" and a.get("PAGE COUNT") == "3"
    # The same file reached by another spelling of its path.
    assert manifest.lookup(tmp_path / "batch" / "sub" / ".." / "sub" / "a.pdf") == a

    b = manifest.lookup(absolute)
    assert b is not None and b.patient.nhs_number == "9990000018"

    c = manifest.lookup(tmp_path / "batch" / "sub" / "deeper" / "c.pdf")
    assert c is not None and c.patient.nhs_number == "9990000026"

    assert manifest.lookup(tmp_path / "batch" / "sub" / "unlisted.pdf") is None


def test_ndr_style_leading_slash_means_under_the_manifest_folder(tmp_path: Path) -> None:
    manifest_path = write(tmp_path / "metadata.csv", f"FILEPATH,NHS-NO\n/9434765919/{JO},9434765919\n")
    manifest = read_manifest(manifest_path, today=TODAY)
    row = manifest.lookup(tmp_path / "9434765919" / JO)
    assert row is not None and row.patient.nhs_number == "9434765919"


def test_base_name_fallback_only_when_unique_and_the_listed_file_is_absent(tmp_path: Path) -> None:
    write(tmp_path / "real" / "exists.pdf", "x")
    manifest_path = write(
        tmp_path / "metadata.csv",
        "FILEPATH,NHS-NO\n"
        "C:\\Scans\\moved.pdf,9434765919\n"  # Windows path: only the base name can match
        "old/twice.pdf,9990000018\n"
        "older/twice.pdf,9990000026\n"
        "real/exists.pdf,9990000034\n",
    )
    manifest = read_manifest(manifest_path, today=TODAY)
    moved = manifest.lookup(tmp_path / "anywhere" / "moved.pdf")
    assert moved is not None and moved.row == 2
    assert manifest.lookup(tmp_path / "anywhere" / "twice.pdf") is None  # ambiguous base name
    # real/exists.pdf is on disk, so another file called exists.pdf is a different file.
    assert manifest.lookup(tmp_path / "other" / "exists.pdf") is None


def test_name_and_dob_columns_in_three_formats(tmp_path: Path) -> None:
    manifest_path = write(
        tmp_path / "metadata.csv",
        "filepath , nhs_no,NAME,DOB\n"
        "a.pdf,9434765919,Jo  Bloggs,01/02/1960\n"
        "b.pdf,9990000018,Jane Smith,03-05-1950\n"
        "c.pdf,9990000026,,1970-12-31\n"
        "d.pdf,9990000034,,\n",
    )
    manifest = read_manifest(manifest_path, today=TODAY)
    patients = [r.patient for r in manifest.rows]
    assert patients == [
        PatientId("9434765919", "Jo Bloggs", date(1960, 2, 1)),
        PatientId("9990000018", "Jane Smith", date(1950, 5, 3)),
        PatientId("9990000026", None, date(1970, 12, 31)),
        PatientId("9990000034", None, None),
    ]


def test_utf8_bom_and_blank_lines_are_tolerated(tmp_path: Path) -> None:
    path = tmp_path / "metadata.csv"
    path.write_bytes("\ufeffFILEPATH,NHS-NO\r\n\r\na.pdf,9434765919\r\n".encode())
    manifest = read_manifest(path, today=TODAY)
    assert [(r.row, r.filepath) for r in manifest.rows] == [(3, "a.pdf")]


def test_missing_required_column(tmp_path: Path) -> None:
    path = write(tmp_path / "metadata.csv", "FILEPATH,PAGE COUNT\na.pdf,3\n")
    with pytest.raises(IdentityError) as caught:
        read_manifest(path, today=TODAY)
    assert caught.value.code == "manifest_invalid"
    assert "NHS-NO" in str(caught.value) and "FILEPATH, PAGE COUNT" in str(caught.value)


def test_bad_row_names_its_row_number(tmp_path: Path) -> None:
    path = write(tmp_path / "metadata.csv", "FILEPATH,NHS-NO\na.pdf,9434765919\nb.pdf,9434765918\n")
    with pytest.raises(IdentityError) as caught:
        read_manifest(path, today=TODAY)
    assert caught.value.code == "nhs_number_invalid"
    assert "row 3" in str(caught.value) and "'b.pdf'" in str(caught.value)
    assert "Modulus 11" in str(caught.value)


def test_every_bad_row_is_listed_at_once(tmp_path: Path) -> None:
    path = write(
        tmp_path / "metadata.csv",
        "FILEPATH,NHS-NO,DOB\na.pdf,9434765918,\nb.pdf,9990000018,31/02/1950\n,9990000026,\nd.pdf,,\n",
    )
    with pytest.raises(IdentityError) as caught:
        read_manifest(path, today=TODAY)
    message = str(caught.value)
    assert caught.value.code == "manifest_invalid"  # mixed problems
    for row in ("row 2", "row 3", "row 4", "row 5"):
        assert row in message
    assert "no FILEPATH" in message and "(empty)" in message


def test_one_file_with_two_nhs_numbers(tmp_path: Path) -> None:
    path = write(
        tmp_path / "metadata.csv",
        "FILEPATH,NHS-NO\na.pdf,9434765919\n./a.pdf,9990000018\nb.pdf,9990000018\nb.pdf,9990000018\n",
    )
    with pytest.raises(IdentityError, match="rows 2 and 3") as caught:
        read_manifest(path, today=TODAY)
    assert caught.value.code == "manifest_invalid"


def test_identical_repeated_row_is_kept_once(tmp_path: Path) -> None:
    path = write(tmp_path / "metadata.csv", "FILEPATH,NHS-NO\nb.pdf,9990000018\nb.pdf,999 000 0018\n")
    assert [r.row for r in read_manifest(path, today=TODAY).rows] == [2]


def test_missing_or_non_utf8_manifest(tmp_path: Path) -> None:
    with pytest.raises(IdentityError, match="does not exist") as caught:
        read_manifest(tmp_path / "nope.csv")
    assert caught.value.code == "manifest_invalid"
    latin = tmp_path / "metadata.csv"
    latin.write_bytes("FILEPATH,NHS-NO,NAME\na.pdf,9434765919,Zo\xeb\n".encode("latin-1"))
    with pytest.raises(IdentityError, match="UTF-8") as caught:
        read_manifest(latin)
    assert caught.value.code == "manifest_invalid"
    empty = write(tmp_path / "empty" / "metadata.csv", "")
    with pytest.raises(IdentityError, match="empty"):
        read_manifest(empty)


def test_identity_error_survives_pickling() -> None:
    error = IdentityError("dob_invalid", "date of birth '31-02-1960' in 'x' is not a real date; fix it")
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.code, str(copy)) == ("dob_invalid", str(error))


# -- the same person, and bounded part counts (issue 11) ----------------------------------------

WILSON = PatientId("9434765919", "Janet Wilson", date(1935, 6, 15))


@pytest.mark.parametrize("name", ["JANET WILSON", "janet  wilson", "Janet Mary Wilson", "Janét Wilson",
                                  "Janet Wilson-", "Janet  M. Wilson"])
def test_case_spacing_accents_and_a_middle_name_are_the_same_person(name):
    assert same_person(WILSON, PatientId(WILSON.nhs_number, name, WILSON.born)) is None


@pytest.mark.parametrize("name, born, why", [
    ("Janet Smith", date(1935, 6, 15), "name"),
    ("Mary Wilson", date(1935, 6, 15), "name"),
    ("Janet Wilson", date(1935, 6, 16), "date of birth"),
    ("Wilson Janet", date(1935, 6, 15), "name"),
])
def test_another_surname_first_name_or_birth_date_is_a_conflict(name, born, why):
    assert why in same_person(WILSON, PatientId(WILSON.nhs_number, name, born))


def test_unknown_details_cannot_conflict():
    assert same_person(None, WILSON) is None
    assert same_person(PatientId(WILSON.nhs_number, None, None), WILSON) is None


def test_part_counts_are_bounded_and_missing_parts_named_as_ranges():
    with pytest.raises(IdentityError) as e:
        parse_ndr_filename("1of99999999999999999999_Lloyd_George_Record_[Jo Bloggs]_[9434765919]_[01-02-1960].pdf")
    assert e.value.code == IdentityCode.part_invalid and str(MAX_PARTS) in e.value.message
    assert parse_ndr_filename(f"1of{MAX_PARTS}_Lloyd_George_Record_[Jo Bloggs]_[9434765919]_[01-02-1960].pdf").parts == MAX_PARTS
    assert number_ranges([7, 1, 2, 3, 5, 8]) == "1-3, 5, 7-8"


@pytest.mark.parametrize("name", ["Janet\nWilson", "Janet \u202eNOSLIW", "Janet\x1bWilson"])
def test_names_with_control_or_bidi_characters_are_refused(name):
    with pytest.raises(IdentityError) as e:
        parse_ndr_filename(f"1of1_Lloyd_George_Record_[{name}]_[9434765919]_[01-02-1960].pdf")
    assert "control" in e.value.message


def test_an_envelope_that_reads_another_identity_is_flagged_never_used():
    patient = PatientId("9434765919", "Jo Bloggs", date(1960, 2, 1))
    same = "LLOYD GEORGE Jo Bloggs NHS No 943 476 5919 DOB 01/02/1960"
    assert printed_identity_disagrees(same, patient) == []
    other = "LLOYD GEORGE Jo Bloggs NHS No 999 000 0018 D.O.B. 02.03.1961 registered 04/05/1999"
    found = printed_identity_disagrees(other, patient)
    assert found == ["the envelope reads NHS number 999 000 0018", "the envelope reads date of birth 02-03-1961"]
    assert printed_identity_disagrees("tel 0163 296 0123", patient) == []  # not a valid NHS number
