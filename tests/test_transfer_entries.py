"""`lgd pack --granularity entry` (issue 5): cards cut down to their uncovered entries, everything else whole.

On the digitised synthetic sample, each patient is reconciled against a CSV coded record holding
the facts of every other entry of each card only, so most cards hold covered entries and
entries that are not. The packs are built by the real command, read back with pikepdf,
pdftotext and Tesseract, and checked against the run's own evidence.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pikepdf
import pypdfium2 as pdfium
import pytesseract
import pytest
from PIL import Image, ImageDraw, ImageFont
from pikepdf.pdfa import validate_written

from index import Catalogue
from index.decisions import latest_reconciliation, packs
from index.rows import OverrideRow
from index.store import ArchiveStore, sha256_file
from pipelines.transfer.crops import PAD_MM, RENDER_DPI, stray_mark
from pipelines.transfer.document import build_pack_pdf
from pipelines.transfer.excerpts import choose_excerpts, select_excerpts
from pipelines.transfer.plan import plan_pack
from tests.conftest import run_lgd

_KIND_TYPE = {"diagnosis": "problem", "symptom": "problem", "medication": "medication", "allergy": "allergy",
              "immunisation": "immunisation", "procedure": "procedure", "observation": "observation"}
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"
WHEN = dt.date(2026, 5, 1)


def half_coded_csv(truth: dict, path: Path) -> Path:
    """A coded record with the facts of the 1st, 3rd, 5th... entry of every page: the others are paper-only."""
    with path.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["date", "system", "code", "display", "type", "nhs_number"])
        for doc in truth["documents"]:
            for page in doc["pages"]:
                for i, e in enumerate(page["entries"]):
                    if i % 2:
                        continue
                    for fact in e["facts"]:
                        display = fact["term"] + (" allergy" if fact["kind"] == "allergy" else "")
                        out.writerow([e["date"], "http://snomed.info/sct", "1", display, _KIND_TYPE[fact["kind"]],
                                      truth["nhs_number"]])
    return path


def pages_text(pdf: Path, layout: bool = False) -> list[str]:
    """Each page's text as pdftotext reads it (in reading order, or as laid out), whitespace collapsed."""
    args = ["pdftotext", *(["-layout"] if layout else []), str(pdf), "-"]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    return [" ".join(page.split()) for page in out.split("\f")[:-1]]


@dataclass(frozen=True)
class Packed:
    archive: Path
    patients: tuple[str, ...]
    entry: dict[str, dict]  # --json of the print pack with --granularity entry, by patient
    page: dict[str, dict]  # --json of the print pack with page granularity, by patient


@pytest.fixture(scope="module")
def packed(digitised, tmp_path_factory) -> Packed:
    root = tmp_path_factory.mktemp("entries")
    archive = root / "archive"
    shutil.copytree(digitised.archive, archive)
    patients = tuple(p["nhs_number"] for p in json.loads(digitised.batch.index.read_text())["patients"])
    entry, page = {}, {}
    for nhs in patients:
        truth = json.loads((digitised.batch.truth / f"{nhs}.json").read_text())
        coded = half_coded_csv(truth, root / f"{nhs}.csv")
        done = run_lgd("reconcile", "--patient", nhs, "--coded", coded, "--archive", archive, "--json")
        assert done.returncode == 0, done.stderr
        for granularity, into in (("entry", entry), ("page", page)):
            # --keep-minimal: these tests compare the packs themselves; a short record would otherwise print
            # whole when that takes no more sheets (test_transfer_print_choice.py)
            built = run_lgd("pack", "--patient", nhs, "--format", "print", "--out", root / f"{granularity}-{nhs}",
                            "--granularity", granularity, "--archive", archive, "--json", "--keep-minimal")
            assert built.returncode == 0, built.stderr
            into[nhs] = built.json
    return Packed(archive, patients, entry, page)


def _run_pages(archive: Path, nhs: str) -> dict[tuple[str, int], object]:
    with Catalogue.open(archive, readonly=True) as cat:
        run = latest_reconciliation(cat, nhs)
        plan = plan_pack(cat, nhs, run)
    return {(p.source, p.page): p for p in plan.pages}


def test_only_the_uncovered_entries_of_cut_down_cards_are_sent_as_crops(packed):
    crops = paper_only = 0
    for nhs in packed.patients:
        doc = packed.entry[nhs]
        assert doc["granularity"] == "entry" and doc["pack"]["validation"] == "PDF/A-2b: pass"
        x = doc["excerpts"]
        planned = _run_pages(packed.archive, nhs)
        for reduced in x["reduced"]:
            page = planned[(reduced["source"], reduced["page"])]
            assert page.included and page.kind == "card" and page.override is None
            statuses = [e["status"] for e in page.entries]
            expected = [(i, s) for i, s in enumerate(statuses, start=1) if s != "covered"]
            assert [(e["entry"], e["status"]) for e in reduced["excerpts"]] == expected
            assert reduced["left_out"] == statuses.count("covered") and reduced["entries"] == len(statuses)
            assert all(e["date"] for e in page.entries), "a card with an undated entry is never cut down"
            paper_only += statuses.count("paper-only")
        assert x["crops"] == sum(len(r["excerpts"]) for r in x["reduced"])
        # every included page is in the pack: whole, or as the crops of its uncovered entries
        included = {k for k, p in planned.items() if p.included}
        whole = {(w["source"], w["page"]) for w in x["whole"]}
        cut = {(r["source"], r["page"]) for r in x["reduced"]}
        assert whole | cut == included and not whole & cut
        assert doc["pages_included"] == len(included)
        crops += x["crops"]
    assert crops > 0 and paper_only > 0, "the sample must exercise cutting down, with paper-only entries"


def _excerpt_images(pdf_path: Path) -> list[Image.Image]:
    """The images of the excerpt pages, in the order they were drawn."""
    on = [i for i, t in enumerate(pages_text(pdf_path)) if "Paper-only entries (excerpts), page" in t]
    images = []
    with pikepdf.open(pdf_path) as pdf:
        for i in on:
            xobjects = pdf.pages[i].Resources.get("/XObject", {})
            found = {str(k): v for k, v in xobjects.items() if v.get("/Subtype") == "/Image"}
            for name in sorted(found, key=lambda n: int(re.sub(r"\D", "", n) or 0)):
                images.append(pikepdf.PdfImage(found[name]).as_pil_image())
    return images


def test_each_crop_is_the_region_of_its_entry(packed):
    store = ArchiveStore(packed.archive)
    read = total = 0
    for nhs in packed.patients:
        x = packed.entry[nhs]["excerpts"]
        if not x["crops"]:
            continue
        images = _excerpt_images(Path(packed.entry[nhs]["outputs"][0]))
        assert len(images) == x["crops"]
        with Catalogue.open(packed.archive, readonly=True) as cat:
            docs = {d.source: d for d in cat.documents(nhs)}
            wanted = []
            for reduced in x["reduced"]:
                d = docs[reduced["source"]]
                row = next(r for r in cat.pages(d.id) if r.number == reduced["page"])
                entries = [e for e in cat.entries(document_id=d.id) if e.page == reduced["page"]]
                for e in reduced["excerpts"]:
                    wanted.append((d, row, entries[e["entry"] - 1]))
        for image, (d, row, entry) in zip(images, wanted):
            pdf = pdfium.PdfDocument(str(store.path(d.pdfa_path)))
            page = pdf[row.number - 1].render(scale=RENDER_DPI / 72).to_pil().convert("L")
            pdf.close()
            s, pad = RENDER_DPI / row.dpi, round(PAD_MM / 25.4 * RENDER_DPI)
            x0, y0, x1, y1 = entry.box
            box = (max(0, int(x0 * s) - pad), max(0, int(y0 * s) - pad),
                   min(page.width, int(np.ceil(x1 * s)) + pad), min(page.height, int(np.ceil(y1 * s)) + pad))
            assert abs(image.width - (box[2] - box[0])) <= 1 and abs(image.height - (box[3] - box[1])) <= 1
            expected = np.asarray(page.crop(box).resize(image.size), dtype=float)
            got = np.asarray(image.convert("L"), dtype=float)
            assert np.abs(expected - got).mean() < 6, "the crop is the entry's padded box of the archived page"
            # and Tesseract finds the entry in it: its date as written, or a word of its text
            ocr = pytesseract.image_to_string(image, config="--psm 6").casefold()
            words = [w.strip(".,;:()").casefold() for w in entry.text.split()]
            digits = re.sub(r"\D", "", entry.date_text)
            total += 1
            read += (digits and digits in re.sub(r"\D", "", ocr)) or any(len(w) >= 4 and w in ocr for w in words)
    assert total and read >= 0.8 * total, f"only {read} of {total} crops read back as their entry"


def test_letters_envelopes_and_cards_with_undated_entries_go_whole(packed):
    checked = set()
    for nhs in packed.patients:
        x = packed.entry[nhs]["excerpts"]
        cut = {(r["source"], r["page"]) for r in x["reduced"]}
        why = {(w["source"], w["page"]): w["reason"] for w in x["whole"]}
        for key, page in _run_pages(packed.archive, nhs).items():
            if not page.included:
                continue
            if page.kind != "card":
                assert key not in cut and why[key].startswith("not a continuation card"), (key, why.get(key))
                checked.add(page.kind)
            elif any(not e.get("date") for e in page.entries):
                assert key not in cut and key in why
                checked.add("undated")
        record = [t for t in pages_text(Path(packed.entry[nhs]["outputs"][0])) if "source: " in t]
        assert len(record) == len(why), "each page sent whole carries its record stamp"
        assert all(f"page {i} of {len(why)}" in t for i, t in enumerate(record, start=1))
    assert {"envelope", "letter"} <= checked


def test_the_pack_is_pdfa_and_the_cover_names_the_granularity(packed):
    nhs = max(packed.patients, key=lambda n: packed.entry[n]["excerpts"]["crops"])
    doc = packed.entry[nhs]
    path = Path(doc["outputs"][0])
    assert validate_written(path, "2b").passed
    text = pages_text(path)
    cover = " ".join(t for t in pages_text(path, layout=True) if "Cover sheet, page" in t)
    x = doc["excerpts"]
    assert "Granularity entry: see 'Entry granularity' below" in cover and "This pack uses entry granularity" in cover
    assert f"{doc['pages_included']} ({doc['pages_included'] - x['pages_reduced']} whole, {x['pages_reduced']} as excerpts" in cover
    for r in x["reduced"]:
        assert f"{r['source']}, page {r['page']}: excerpted entry {r['excerpts'][0]['entry']}," in cover
    excerpts = " ".join(t for t in text if "Paper-only entries (excerpts), page" in t)
    assert "no searchable text layer" in excerpts
    for r in x["reduced"]:
        assert excerpts.count(f"Full page available on request (source p.{r['page']})") >= len(r["excerpts"])
    assert sum("Paper-only entries (excerpts), page" in t for t in text) == x["excerpt_pages"]
    # The list of left-out entries appears exactly when a cut-down card had covered entries.
    left_out = any(r["left_out"] for r in x["reduced"])
    assert ("Entries of these cards not sent" in excerpts and "covered by" in excerpts) == left_out
    page = packed.page[nhs]
    assert page["granularity"] == "page" and "excerpts" not in page
    assert page["pages_included"] == doc["pages_included"]
    with Catalogue.open(packed.archive, readonly=True) as cat:
        record = [p for p in packs(cat, nhs) if p.sha256 == doc["pack"]["sha256"]]
        assert record and record[0].detail["granularity"] == "entry"
        assert record[0].detail["excerpts"]["crops"] == x["crops"]


def test_cards_are_cut_down_only_when_that_shortens_the_pack(packed):
    shorter = 0
    for nhs in packed.patients:
        entry, page = packed.entry[nhs], packed.page[nhs]
        cover = " ".join(t for t in pages_text(Path(entry["outputs"][0]), layout=True) if "Cover sheet, page" in t)
        if entry["excerpts"]["pages_reduced"]:
            assert entry["pack"]["pages"] < page["pack"]["pages"] and entry["sheets"]["pack"] <= page["sheets"]["pack"]
            shorter += 1
        else:
            assert "Granularity entry, not applied: " in cover and "Entry granularity" not in cover
            assert not any("Paper-only entries (excerpts)" in t for t in pages_text(Path(entry["outputs"][0])))
            assert entry["pack"]["pages"] <= page["pack"]["pages"] + 1  # the cover's one extra line at most
    assert shorter, "on the sample, entry granularity shortens at least one pack"


# --- the allow-list, rule by rule -----------------------------------------------------------


@pytest.fixture(scope="module")
def candidate(packed):
    """A plan with a card that may be cut down (one with covered entries if any), and the rows it was judged on."""
    found = None
    for nhs in packed.patients:
        with Catalogue.open(packed.archive, readonly=True) as cat:
            plan = plan_pack(cat, nhs, latest_reconciliation(cat, nhs))
            selection = select_excerpts(cat, plan)
            if not selection.candidates:
                continue
            rows, entries = {}, {}
            for d in plan.documents:
                rows |= {(d.document_id, r.number): r for r in cat.pages(d.document_id)}
                for e in cat.entries(document_id=d.document_id):
                    entries.setdefault((d.document_id, e.page), []).append(e)
            best = max(selection.candidates, key=lambda c: len(c.left_out))
            if found is None or len(best.left_out) > len(found[3].left_out):
                found = plan, rows, entries, best
    if found is None:
        pytest.fail("no card of the sample may be cut down")
    return found


def _replace_page(plan, key, **changes):
    return dataclasses.replace(plan, pages=tuple(dataclasses.replace(p, **changes) if (p.document_id, p.page) == key
                                                 else p for p in plan.pages))


def _why(plan, rows, entries, key) -> str | None:
    """None when the page at `key` stays a candidate, else the reason it goes whole."""
    selection = choose_excerpts(plan, rows, entries)
    if key in {c.key for c in selection.candidates}:
        return None
    page = next(p for p in plan.pages if (p.document_id, p.page) == key)
    (reason,) = [w.reason for w in selection.whole if (w.source, w.page) == (page.source, page.page)]
    return reason


def test_any_doubt_sends_the_card_whole(candidate):
    plan, rows, entries, card = candidate
    key = card.key
    assert _why(plan, rows, entries, key) is None
    override = OverrideRow(1, plan.nhs_number, key[0], key[1], "include", "keep it", "dr.test", plan.run_created)
    assert "override" in _why(_replace_page(plan, key, override=override), rows, entries, key)
    assert "not in the reconciliation run" in _why(_replace_page(plan, key, machine=None), rows, entries, key)
    assert "another reason" in _why(_replace_page(plan, key, reason="writing outside any dated entry: xyz",
                                                  reason_code="writing_outside_entries", reason_detail={"words": ["xyz"]}),
                                    rows, entries, key)
    # A run stored before reasons were data: its sentence is not parsed, the card goes whole.
    assert "another reason" in _why(_replace_page(plan, key, reason_code="", reason_detail={}), rows, entries, key)
    page = next(p for p in plan.pages if (p.document_id, p.page) == key)
    undated = (dict(page.entries[0], date=None), *page.entries[1:])
    assert "no date" in _why(_replace_page(plan, key, entries=undated), rows, entries, key)
    assert "does not match" in _why(_replace_page(plan, key, entries=page.entries[:-1]), rows, entries, key)
    assert "continuation card" in _why(_replace_page(plan, key, kind="letter"), rows, entries, key)
    boxless = {**entries, key: [dataclasses.replace(entries[key][0], box=(0, 0, 0, 0)), *entries[key][1:]]}
    assert "no box" in _why(plan, rows, boxless, key)
    row = rows[key]
    stray = ("Warfarin", row.width - 60, row.height - 60, row.width - 5, row.height - 30, 90.0, 99, 99)
    assert "writing outside" in _why(plan, {**rows, key: dataclasses.replace(row, words=(*row.words, stray))},
                                     entries, key)
    heading = ("Clinica]", row.width - 60, 5, row.width - 5, 30, 90.0, 99, 99)  # card print, misread
    assert _why(plan, {**rows, key: dataclasses.replace(row, words=(*row.words, heading))}, entries, key) is None
    tick = ("X", row.width - 40, row.height // 2, row.width - 10, row.height // 2 + 30, 40.0, 99, 99)
    ticked = choose_excerpts(plan, {**rows, key: dataclasses.replace(row, words=(*row.words, tick))}, entries)
    (still,) = [c for c in ticked.candidates if c.key == key]
    assert tuple(tick[1:5]) not in still.words, "a one-letter mark outside the entries is left to the ink check"


def _entries_of(packed, card):
    with Catalogue.open(packed.archive, readonly=True) as cat:
        return [e for e in cat.entries(document_id=card.document_id) if e.page == card.page]


def test_ink_that_ocr_did_not_read_sends_the_card_whole(candidate, packed):
    *_, card = candidate
    pdf = pdfium.PdfDocument(str(ArchiveStore(packed.archive).path(card.pdfa_path)))
    image = pdf[card.page - 1].render(scale=100 / 72).to_pil()
    pdf.close()
    assert stray_mark(image, card, 100) is None, "the card's rules, headings and entries are not stray ink"
    note = Image.new("L", (220, 24), 255)
    ImageDraw.Draw(note).text((0, 0), "PEN ALLERGY", fill=20, font=ImageFont.truetype(FONT, 16))
    sideways = image.copy()
    sideways.paste(note.rotate(90, expand=True).convert("RGB"), (image.width - 26, image.height // 3))
    assert stray_mark(sideways, card, 100) is not None
    # a tick inside the box of a covered entry (not sent), away from every word read there
    s = 100 / card.dpi
    covered = [e.box for e in _entries_of(packed, card) if e.box not in {x.box for x in card.excerpts}]
    away = 3 / 25.4 * card.dpi
    spot = next(((x, y) for b in covered for y in range(b[1], b[3], 10) for x in range(b[0], b[2], 10)
                 if all(x < w[0] - away or x > w[2] + away or y < w[1] - away or y > w[3] + away
                        for w in card.words)), None)
    assert spot is not None, "a covered entry's box with room, 3 mm from any word, for a tick"
    ticked = image.copy()
    x, y = spot[0] * s, spot[1] * s
    ImageDraw.Draw(ticked).line((x - 4, y, x, y + 5, x + 8, y - 6), fill=20, width=2)
    assert stray_mark(ticked, card, 100) is not None, "unread ink in a covered entry's box"
    speck = image.copy()
    ImageDraw.Draw(speck).rectangle((image.width - 10, image.height - 10, image.width - 9, image.height - 9), fill=0)
    assert stray_mark(speck, card, 100) is None, "a speck of dust is not writing"


def test_entry_granularity_is_refused_for_ndr_and_works_on_encrypted_media(packed, tmp_path):
    nhs = max(packed.patients, key=lambda n: packed.entry[n]["excerpts"]["crops"])
    refused = run_lgd("pack", "--patient", nhs, "--format", "ndr", "--granularity", "entry", "--out", tmp_path / "n",
                      "--archive", packed.archive)
    assert refused.returncode == 2 and "--granularity entry" in refused.stderr and not (tmp_path / "n").exists()
    secret = tmp_path / "pass.txt"
    secret.write_text("correct horse battery staple orbit lantern\n")
    built = run_lgd("pack", "--patient", nhs, "--format", "7z", "--granularity", "entry", "--out", tmp_path / "m",
                    "--passphrase-file", secret, "--archive", packed.archive, "--json")
    assert built.returncode == 0, built.stderr
    assert built.json["excerpts"]["crops"] == packed.entry[nhs]["excerpts"]["crops"]
    verified = run_lgd("verify", built.json["outputs"][0], "--passphrase-file", secret, "--archive", packed.archive,
                       "--json")
    assert verified.returncode == 0 and verified.json["ok"], verified.stdout


def test_an_entry_pack_rebuilds_byte_for_byte_and_leaves_the_archive_alone(candidate, packed, tmp_path):
    plan, *_ = candidate
    store = ArchiveStore(packed.archive)
    before = {d.pdfa_path: sha256_file(store.path(d.pdfa_path)) for d in plan.documents}
    with Catalogue.open(packed.archive, readonly=True) as cat:
        selection = select_excerpts(cat, plan)
    built = [build_pack_pdf(plan, packed.archive, tmp_path / f"{i}.pdf", coded=None, with_electronic=False,
                            practice=None, when=WHEN, duplex=True, excerpts=selection) for i in range(2)]
    assert built[0].sha256 == built[1].sha256 and built[0].excerpts == built[1].excerpts
    assert before == {path: sha256_file(store.path(path)) for path in before}
