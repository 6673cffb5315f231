"""Discovery: walking inputs, grouping page images, identity precedence, conflicts and part warnings."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from PIL import Image

from pipelines.identity import PatientId, read_manifest
from pipelines.ingest.discover import Discovery, InputDoc, discover

TODAY = date(2026, 6, 1)
JANE = "9990000018"
JANE_FOLDER = f"{JANE} Jane Anne Smith 03-05-1950"
JO = "9434765919"


def ndr(part: int, parts: int, nhs: str = JO, ext: str = "pdf") -> str:
    return f"{part}of{parts}_Lloyd_George_Record_[Jo Bloggs]_[{nhs}]_[01-02-1960].{ext}"


def image(path: Path, frames: int = 1) -> Path:
    """A real tiny image; TIFFs with `frames` > 1 are multi-page."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pages = [Image.new("L", (16, 12), color=40 * i) for i in range(frames)]
    if frames > 1:
        pages[0].save(path, save_all=True, append_images=pages[1:])
    else:
        pages[0].save(path)
    return path


def pdf(path: Path) -> Path:
    """A real one-page PDF (format checks happen downstream; discovery only needs a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("L", (16, 12), color=255).save(path, format="PDF")
    return path


def run(*paths: Path, manifest: Path | None = None) -> Discovery:
    return discover(list(paths), read_manifest(manifest, today=TODAY) if manifest else None, today=TODAY)


def test_page_images_in_a_patient_folder_are_one_document_in_natural_order(tmp_path: Path) -> None:
    folder = tmp_path / JANE_FOLDER
    for i in (10, 2, 1, 12, 11, 3, 4, 5, 6, 7, 8, 9):
        image(folder / f"page{i}.png")
    (folder / "Thumbs.db").write_bytes(b"litter")
    (folder / ".DS_Store").write_bytes(b"litter")
    (folder / "._page1.png").write_bytes(b"AppleDouble")

    found = run(tmp_path)

    assert found.rejected == () and found.warnings == ()
    (doc,) = found.documents
    assert doc == InputDoc(
        source=JANE_FOLDER,
        files=tuple(folder / f"page{i}.png" for i in range(1, 13)),
        patient=PatientId(JANE, "Jane Anne Smith", date(1950, 5, 3)),
        part=None,
        parts=None,
        origin="folder",
        identified_by="folder",
    )


def test_multi_page_tiff_and_pdf_in_a_patient_folder_are_their_own_documents(tmp_path: Path) -> None:
    folder = tmp_path / JANE_FOLDER
    image(folder / "page1.jpg")
    image(folder / "page2.tif")  # single-page TIFF: one of the folder's pages
    image(folder / "envelope.tiff", frames=3)
    pdf(folder / "letters.pdf")
    (folder / "broken.tif").write_bytes(b"not a tiff at all")  # counts as a page; fails later
    (folder / "notes.docx").write_bytes(b"PK")  # identified, so returned; rejected by content later

    found = run(folder)

    assert found.rejected == ()
    by_source = {d.source: d for d in found.documents}
    assert sorted(by_source) == sorted([JANE_FOLDER, "envelope.tiff", "letters.pdf", "notes.docx"])
    assert [p.name for p in by_source[JANE_FOLDER].files] == ["broken.tif", "page1.jpg", "page2.tif"]
    assert by_source[JANE_FOLDER].origin == "folder"
    for name in ("envelope.tiff", "letters.pdf", "notes.docx"):
        doc = by_source[name]
        assert doc.files == (folder / name,) and doc.origin == "file"
        assert doc.patient.nhs_number == JANE and doc.identified_by == "folder"


def test_images_in_a_subfolder_take_the_nearest_patient_folder(tmp_path: Path) -> None:
    image(tmp_path / JANE_FOLDER / "visit 2" / "p2.png")
    image(tmp_path / JANE_FOLDER / "visit 2" / "p1.png")
    image(tmp_path / JANE_FOLDER / "p1.png")
    found = run(tmp_path)
    assert [(d.source, [f.name for f in d.files]) for d in found.documents] == [
        (JANE_FOLDER, ["p1.png"]),
        ("visit 2", ["p1.png", "p2.png"]),
    ]
    assert {d.patient.nhs_number for d in found.documents} == {JANE}


def test_explicitly_named_image_is_its_own_document(tmp_path: Path) -> None:
    page = image(tmp_path / JANE_FOLDER / "page1.png")
    found = run(page)
    (doc,) = found.documents
    assert (doc.source, doc.origin, doc.patient.nhs_number) == ("page1.png", "file", JANE)


def test_ndr_named_files_carry_their_own_identity_and_parts(tmp_path: Path) -> None:
    one = pdf(tmp_path / "batch" / ndr(1, 2))
    two = pdf(tmp_path / "batch" / ndr(2, 2).replace(".pdf", ".PDF"))
    found = run(tmp_path / "batch")
    assert found.rejected == () and found.warnings == ()
    assert [(d.source, d.part, d.parts, d.identified_by) for d in found.documents] == [
        (one.name, 1, 2, "ndr_name"),
        (two.name, 2, 2, "ndr_name"),
    ]
    assert found.documents[0].patient == PatientId(JO, "Jo Bloggs", date(1960, 2, 1))


def test_unidentified_file_is_rejected_with_what_to_do(tmp_path: Path) -> None:
    stray = pdf(tmp_path / "scans" / "scan001.pdf")
    found = run(tmp_path / "scans")
    assert found.documents == ()
    (rejected,) = found.rejected
    assert rejected.path == stray and rejected.code == "no_identity"
    assert "scan001.pdf" in rejected.reason and "metadata.csv" in rejected.reason
    assert "Lloyd_George_Record" in rejected.reason


def test_invalid_ndr_name_is_rejected_with_its_code(tmp_path: Path) -> None:
    bad = pdf(tmp_path / ndr(1, 1, nhs="9434765918"))
    found = run(bad)
    (rejected,) = found.rejected
    assert (rejected.path, rejected.code) == (bad, "nhs_number_invalid")
    assert "add a metadata.csv row" in rejected.reason


def test_manifest_identifies_a_plain_file(tmp_path: Path) -> None:
    pdf(tmp_path / "scans" / "scan001.pdf")
    manifest = tmp_path / "metadata.csv"
    manifest.write_text(f"FILEPATH,NHS-NO,NAME,DOB\nscans/scan001.pdf,{JO},Jo Bloggs,01/02/1960\n")
    found = run(tmp_path, manifest=manifest)  # the manifest itself is skipped by the walk
    (doc,) = found.documents
    assert doc.identified_by == "manifest" and doc.patient == PatientId(JO, "Jo Bloggs", date(1960, 2, 1))
    assert found.rejected == () and found.warnings == ()


def test_manifest_overrides_a_broken_file_name_with_a_warning(tmp_path: Path) -> None:
    bad = pdf(tmp_path / ndr(1, 1, nhs="9434765918"))
    manifest = tmp_path / "metadata.csv"
    manifest.write_text(f"FILEPATH,NHS-NO\n{bad.name},{JO}\n")
    found = run(bad, manifest=manifest)
    (doc,) = found.documents
    assert doc.patient.nhs_number == JO and doc.identified_by == "manifest"
    assert doc.part is None  # the broken name's parts are not trusted either
    (warning,) = found.warnings
    assert "ignored its file name" in warning and "metadata.csv row 2" in warning


def test_manifest_and_ndr_name_disagree(tmp_path: Path) -> None:
    named = pdf(tmp_path / ndr(1, 1))
    manifest = tmp_path / "metadata.csv"
    manifest.write_text(f"FILEPATH,NHS-NO\n{named.name},{JANE}\n")
    found = run(named, manifest=manifest)
    assert found.documents == ()
    (rejected,) = found.rejected
    assert rejected.code == "identity_conflict"
    assert JO in rejected.reason and JANE in rejected.reason and "metadata.csv row 2" in rejected.reason


def test_ndr_name_and_patient_folder_disagree(tmp_path: Path) -> None:
    named = pdf(tmp_path / JANE_FOLDER / ndr(1, 1))
    found = run(tmp_path)
    (rejected,) = found.rejected
    assert (rejected.path, rejected.code) == (named, "identity_conflict")
    assert JANE_FOLDER in rejected.reason


def test_agreeing_sources_fill_in_name_and_birth_date(tmp_path: Path) -> None:
    folder = tmp_path / f"{JO} Jo Bloggs 01-02-1960"
    named = pdf(folder / ndr(1, 1))
    manifest = tmp_path / "metadata.csv"
    manifest.write_text(f"FILEPATH,NHS-NO\n{folder.name}/{named.name},{JO}\n")
    found = run(tmp_path, manifest=manifest)
    (doc,) = found.documents
    assert doc.identified_by == "manifest" and (doc.part, doc.parts) == (1, 1)
    assert doc.patient == PatientId(JO, "Jo Bloggs", date(1960, 2, 1))


def test_invalid_patient_folder_rejects_unnamed_files_but_not_ndr_named_ones(tmp_path: Path) -> None:
    folder = tmp_path / "9990000017 Jane Smith 03-05-1950"  # fails Modulus 11
    image(folder / "page1.png")
    pdf(folder / ndr(1, 1))
    found = run(tmp_path)
    assert [d.source for d in found.documents] == [ndr(1, 1)]
    (rejected,) = found.rejected
    assert (rejected.path.name, rejected.code) == ("page1.png", "nhs_number_invalid")
    assert "rename the folder" in rejected.reason
    (warning,) = found.warnings
    assert "ignored a folder name" in warning


def test_missing_part_warning(tmp_path: Path) -> None:
    pdf(tmp_path / ndr(1, 3))
    pdf(tmp_path / ndr(3, 3))
    found = run(tmp_path)
    assert len(found.documents) == 2 and found.rejected == ()
    assert found.warnings == (f"patient {JO}: part 2 of 3 is missing (have 1of3, 3of3)",)


def test_a_part_stored_by_an_earlier_run_is_not_missing(tmp_path: Path) -> None:
    pdf(tmp_path / ndr(1, 3))
    pdf(tmp_path / ndr(3, 3))
    found = discover([tmp_path], None, stored_parts={JO: {(2, 3)}})
    assert found.warnings == ()
    other_count = discover([tmp_path], None, stored_parts={JO: {(2, 4)}})  # a different split: still missing
    assert other_count.warnings == (f"patient {JO}: part 2 of 3 is missing (have 1of3, 3of3)",)


def test_several_missing_parts_and_inconsistent_counts(tmp_path: Path) -> None:
    pdf(tmp_path / "a" / ndr(1, 5))
    pdf(tmp_path / "a" / ndr(3, 5))
    pdf(tmp_path / "b" / ndr(1, 2, nhs=JANE))
    pdf(tmp_path / "b" / ndr(2, 3, nhs=JANE))
    found = run(tmp_path)
    assert f"patient {JO}: parts 2, 4-5 of 5 are missing (have 1of5, 3of5)" in found.warnings
    assert any(w.startswith(f"patient {JANE}: the file names disagree") for w in found.warnings)


def test_duplicate_part_warning(tmp_path: Path) -> None:
    first = pdf(tmp_path / "monday" / ndr(1, 1))
    second = pdf(tmp_path / "tuesday" / ndr(1, 1))
    found = run(tmp_path)
    assert len(found.documents) == 2
    (warning,) = found.warnings
    assert "part 1 of 1 was given 2 times" in warning and str(first) in warning and str(second) in warning


def test_same_file_given_twice_is_one_document(tmp_path: Path) -> None:
    named = pdf(tmp_path / ndr(1, 1))
    found = run(named, tmp_path, named)
    assert len(found.documents) == 1 and found.warnings == ()


def test_missing_path_empty_folder_litter_and_manifest_given_directly(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    litter = tmp_path / "Thumbs.db"
    litter.write_bytes(b"x")
    manifest = tmp_path / "metadata.csv"
    manifest.write_text("FILEPATH,NHS-NO\n")
    found = run(tmp_path / "gone.pdf", tmp_path / "empty", litter, manifest)
    (rejected,) = found.rejected
    assert (rejected.path.name, rejected.code) == ("gone.pdf", "not_found")
    assert len(found.warnings) == 3
    assert "holds no files" in found.warnings[0]
    assert "litter" in found.warnings[1]
    assert "--manifest" in found.warnings[2]


def test_manifest_row_for_a_file_that_is_nowhere(tmp_path: Path) -> None:
    manifest = tmp_path / "metadata.csv"
    manifest.write_text(f"FILEPATH,NHS-NO\nlost.pdf,{JO}\n")
    pdf(tmp_path / ndr(1, 1))
    found = run(tmp_path, manifest=manifest)
    assert found.warnings == (
        "metadata.csv row 2: 'lost.pdf' was not found among the inputs; check its FILEPATH",
    )


@pytest.mark.parametrize("hidden", [".cache", ".git"])
def test_hidden_folders_are_not_walked(tmp_path: Path, hidden: str) -> None:
    pdf(tmp_path / hidden / ndr(1, 1))
    found = run(tmp_path)
    assert found.documents == () and found.rejected == ()


def test_birth_dates_that_disagree_are_kept_from_the_winner_with_a_warning(tmp_path: Path) -> None:
    named = pdf(tmp_path / f"{JO} Jo Bloggs 02-01-1960" / ndr(1, 1))
    found = run(tmp_path)
    (doc,) = found.documents
    assert doc.files == (named,) and doc.patient.born == date(1960, 2, 1)  # the file name outranks
    (warning,) = found.warnings
    assert "dates of birth differ" in warning and "1960-01-02" in warning


def test_a_link_back_to_a_walked_folder_is_not_walked_twice(tmp_path: Path) -> None:
    image(tmp_path / JANE_FOLDER / "page1.png")
    (tmp_path / JANE_FOLDER / "loop").symlink_to(tmp_path, target_is_directory=True)
    found = run(tmp_path)
    assert [d.source for d in found.documents] == [JANE_FOLDER] and found.rejected == ()


def test_links_out_of_the_named_folder_are_not_followed(tmp_path):  # issue 11
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    secret = outside / "1of1_Lloyd_George_Record_[Jo Bloggs]_[9434765919]_[01-02-1960].pdf"
    secret.write_bytes(b"%PDF-1.4 not for this batch")
    batch = tmp_path / "batch"
    batch.mkdir()
    (batch / secret.name).symlink_to(secret)
    (batch / "sub").symlink_to(outside, target_is_directory=True)
    inside = batch / "real"
    inside.mkdir()
    (batch / "alias").symlink_to(inside, target_is_directory=True)  # a link within the batch is fine
    found = discover([batch], None)
    assert found.documents == () and found.rejected == ()
    assert sum("a link to outside" in w for w in found.warnings) == 2
