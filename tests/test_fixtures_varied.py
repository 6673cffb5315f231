"""The varied generator style (fixtures.varied): letters, results and rescans that vary, with a truth that stays honest.

One four-patient batch (about 40 pages, no OCR) serves every test; the determinism test writes
patient 0 again through the command line and compares bytes.
"""
from __future__ import annotations

import csv
import datetime as dt
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pikepdf
import pytest
from PIL import Image

from fixtures import dates, letter_text, results, vocab_extra
from fixtures.codes import concept, is_synthetic, verhoeff_ok
from fixtures.evaluate_reconcile import KINDS, evaluate, page_kind
from fixtures.generate import BatchTruth, generate_batch, main as generate_main
from pipelines.clinical.vocabulary import DEFAULT_FOLDER
from pipelines.records import read_record

ROOT = Path(__file__).resolve().parents[1]
SEED = 3  # chosen so that patient 0's rescan lands in the other part of its two-part PDF
VARIED_KINDS = {"envelope", "card", "blank", "letter", "result"}
RENDERINGS = ("csv", "stu3.json", "r4.json", "xml")


@pytest.fixture(scope="module")
def batch(tmp_path_factory) -> BatchTruth:
    return generate_batch(tmp_path_factory.mktemp("varied"), patients=4, seed=SEED, style="varied")


def truths(batch: BatchTruth) -> list[dict]:
    return [json.loads(p.read_text()) for p in batch.patients]


def pages(batch: BatchTruth):
    for t in truths(batch):
        for doc in t["documents"]:
            for page in doc["pages"]:
                yield t, doc, page


def originals(batch: BatchTruth):
    """Every page that is not a rescan."""
    return [(t, doc, p) for t, doc, p in pages(batch) if p["duplicate_of"] is None]


def test_same_seed_same_files_through_the_command_line(batch, tmp_path):
    assert generate_main(["--out", str(tmp_path), "--patients", "1", "--seed", str(SEED), "--style", "varied"]) == 0
    index = json.loads((tmp_path / "truth" / "index.json").read_text())
    assert index["style"] == "varied"
    first = index["patients"][0]
    for rel in [first["truth"], *first["sources"], *first["coded"].values()]:
        assert (tmp_path / rel).read_bytes() == (batch.out / rel).read_bytes(), rel
    other = json.loads((batch.out / "truth" / "index.json").read_text())["patients"][0]
    assert other["nhs_number"] == first["nhs_number"]


def test_every_template_and_result_layout_appears(batch):
    details = [p.get("detail", {}) for _, _, p in originals(batch)]
    assert {d["template"] for d in details if "template" in d} == set(letter_text.TEMPLATES)
    assert {d["layout"] for d in details if "layout" in d} == set(results.LAYOUTS)
    letterheads = {d["letterhead"] for d in details if "letterhead" in d}
    sides = {d["address_side"] for d in details if "address_side" in d}
    assert len(letterheads) >= 3 and sides == {"left", "right"}


def test_every_page_says_its_kind_and_whether_it_may_be_left_out(batch):
    kinds = Counter()
    for _, _, page in pages(batch):
        kinds[page["kind"]] += 1
        assert page["kind"] in VARIED_KINDS
        assert page["paper_only"] is (not page["excludable"])
        if page["kind"] == "blank":
            assert page["blank"] and not page["entries"] and page["excludable"]
        if page["kind"] == "envelope" and page["duplicate_of"] is None:
            assert page["paper_only"]
    assert set(kinds) == VARIED_KINDS


def test_letters_name_a_visit_weeks_before_they_were_written(batch):
    dated_at = Counter()
    for _, _, page in originals(batch):
        if page["kind"] != "letter":
            continue
        (entry,) = page["entries"]
        visit, written = dt.date.fromisoformat(entry["visit_date"]), dt.date.fromisoformat(entry["date"])
        assert 7 <= (written - visit).days <= 56 and written == dt.date.fromisoformat(page["letter_date"])
        assert entry["visit_text"] in entry["text"]
        assert entry["visit_text"] in {dates.format_date(visit, f) for f in dates.VISIT_FORMATS}
        assert entry["visit_text"] != entry["date_text"]
        assert len(entry["text"].split()) >= 25  # prose beyond the coded terms, even in a short letter
        for row in entry["coded"]:
            assert row["dated_at"] == (None if not row["coded"] else row["dated_at"])
            if row["coded"]:
                dated_at[row["dated_at"]] += 1
                anchor = visit if row["dated_at"] == "visit" else written
                assert row["coded_date"] <= anchor.isoformat() and row["coded_date"][:4] == str(anchor.year)
    assert set(dated_at) == {"visit", "letter"}  # both habits happen in one modest batch


def _events(batch: BatchTruth, nhs: str):
    return {suffix: read_record(batch.coded / f"{nhs}.{suffix}").events for suffix in RENDERINGS}


def test_result_rows_agree_with_the_coded_observations(batch):
    states = Counter()
    for truth, _, page in originals(batch):
        if page["kind"] != "result":
            continue
        (entry,) = page["entries"]
        rows = page["detail"]["rows"]
        assert [r["value"] for r in rows] == [f["value"] for f in entry["facts"]]
        assert [r["term"] for r in rows] == [f["term"] for f in entry["facts"]]
        with open(batch.coded / f"{truth['nhs_number']}.csv", newline="") as f:
            coded = [r for r in csv.DictReader(f) if r["date"] == entry["date"]]
        events = _events(batch, truth["nhs_number"])
        for fact, row in zip(entry["facts"], entry["coded"], strict=True):
            c = concept(fact["term"])
            values = [r["text"] for r in coded if r["code"] == c.snomed]
            assert (f"value: {fact['value']} {c.unit}" in values) is row["coded"]
            states[row["stand_in"] or "coded"] += 1
            if row["stand_in"] == "other_value":
                assert values and row["coded_value"] != fact["value"]
            if row["stand_in"] == "missing":
                assert not values
            for suffix, read in events.items():  # every rendering carries the value, as the reader shows it
                got = [e for e in read if e.code == c.snomed and e.date == dt.date.fromisoformat(entry["date"])]
                assert any(f"value: {fact['value']}" in e.text for e in got) is row["coded"], (suffix, fact)
        assert page["paper_only"] is (not all(r["coded"] for r in entry["coded"]))
    assert states["coded"] and states["other_value"] and states["missing"]


def _images(batch: BatchTruth, source: str, container: str) -> list[Image.Image]:
    path = batch.scans / source
    if container == "folder":
        return [Image.open(p).convert("L") for p in sorted(path.iterdir(), key=lambda p: int(p.stem[4:]))]
    if container == "tiff":
        out = []
        with Image.open(path) as tif:
            for n in range(tif.n_frames):
                tif.seek(n)
                out.append(tif.convert("L"))
        return out
    with pikepdf.open(path) as pdf:
        return [pikepdf.PdfImage(next(iter(p.Resources.XObject.values()))).as_pil_image().convert("L") for p in pdf.pages]


def test_rescans_are_scanned_unlike_their_original(batch):
    crossed = 0
    for truth in truths(batch):
        docs = {d["source"]: d for d in truth["documents"]}
        images = {s: _images(batch, s, d["container"]) for s, d in docs.items()}
        for doc in truth["documents"]:
            for page in doc["pages"]:
                if page["duplicate_of"] is None:
                    continue
                home = page.get("duplicate_source") or doc["source"]
                crossed += home != doc["source"]
                original = docs[home]["pages"][page["duplicate_of"] - 1]
                unboxed = lambda entries: [{k: v for k, v in e.items() if k != "box"} for e in entries]  # noqa: E731
                assert original["kind"] == page["kind"] and unboxed(original["entries"]) == unboxed(page["entries"])
                assert abs(page["skew_deg"]) <= 3 and abs(page["skew_deg"] - original["skew_deg"]) >= 0.5
                a = page["artefacts"]
                assert a["brightness"] != 0 and a["contrast"] != 1 and len(a["crop_px"]) == 4
                assert (page["width"], page["height"]) == (original["width"] - a["crop_px"][0] - a["crop_px"][2],
                                                           original["height"] - a["crop_px"][1] - a["crop_px"][3])
                new = np.asarray(images[doc["source"]][page["page"] - 1], dtype=np.float32)
                old = np.asarray(images[home][page["duplicate_of"] - 1], dtype=np.float32)
                assert new.shape != old.shape or abs(new.mean() - old.mean()) > 2 or \
                    abs(new.std() / old.std() - 1) > 0.05
    assert crossed >= 1  # a rescan filed in the other part of the record


def test_terms_outside_the_search_vocabulary_are_coded_or_not_as_the_record_says(batch):
    vocabulary = " ".join((DEFAULT_FOLDER / n).read_text().lower()
                          for n in ("synonyms.tsv", "drugs.tsv", "ambiguous.tsv"))
    for u in vocab_extra.UNCOMMON:
        assert u.term.lower() not in vocabulary, f"{u.term} is in the search vocabulary now: pick another term"
        c = concept(u.term)
        assert verhoeff_ok(c.snomed) and c.kind == "observation" and (is_synthetic(c.snomed) or len(c.snomed) <= 18)
    seen = Counter()
    for _, _, page in originals(batch):
        for entry in page["entries"]:
            for fact, row in zip(entry["facts"], entry["coded"], strict=True):
                assert row.get("outside_vocabulary", False) is (fact["term"] in vocab_extra.TERMS)
                if fact["term"] in vocab_extra.TERMS:
                    seen[row["coded"]] += 1
    assert seen[True] >= 1 and sum(seen.values()) >= 2


def test_figures_per_page_kind(batch, tmp_path):
    omit_all = [{"patient": t["nhs_number"], "pages": [{"source": d["source"], "page": p["page"], "decision": "omit"}
                                                        for d in t["documents"] for p in d["pages"]]}
                for t in truths(batch)]
    path = tmp_path / "omit.json"
    path.write_text(json.dumps(omit_all))
    report = evaluate(batch.truth, [path])
    overall = report["overall"]
    assert {"missed_count", "compaction", "compaction_legible", "excludable", "paper_only", "pages"} <= set(overall)
    by_kind = overall["by_kind"]
    assert set(by_kind) == set(KINDS)
    expected = Counter(page_kind(p) for _, _, p in pages(batch))
    for kind, figures in by_kind.items():
        assert figures["pages"] == expected[kind]
        assert figures["missed"] == figures["paper_only"]  # omitting everything misses every paper-only page
        assert figures["compaction"] == (1.0 if figures["excludable"] else None)
    assert sum(f["missed"] for f in by_kind.values()) == overall["missed_count"]
    assert by_kind["result"]["pages"] and by_kind["rescan"]["pages"] and by_kind["blank"]["missed"] == 0
    assert page_kind({"kind": "card_back", "blank": True, "duplicate_of": None}) == "blank"  # classic truth
