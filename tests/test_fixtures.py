"""Tests for the synthetic Lloyd George fixture generator (fixtures/)."""
from __future__ import annotations

import json
import random
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pikepdf
import pytest
from PIL import Image

from fixtures import artefacts, nhs
from fixtures.artefacts import Damage
from fixtures.bad_inputs import ACCEPTABLE, CASES, write_bad_inputs
from fixtures.generate import BatchTruth, generate_batch, generate_pages

ROOT = Path(__file__).resolve().parents[1]
NDR = re.compile(r"^(\d+)of(\d+)_Lloyd_George_Record_\[([^\]]+)\]_\[(\d{10})\]_\[(\d\d-\d\d-\d{4})\]\.(\w+)$")
FOLDER = re.compile(r"^(\d{10}) (.+) (\d\d-\d\d-\d{4})$")
KINDS = {"envelope", "card", "card_back", "letter"}
FACT_KINDS = {"symptom", "diagnosis", "medication", "procedure", "allergy", "immunisation", "observation"}


@pytest.fixture(scope="module")
def batch(tmp_path_factory) -> BatchTruth:
    return generate_batch(tmp_path_factory.mktemp("batch"), patients=3, seed=11)


def truths(batch: BatchTruth) -> list[dict]:
    return [json.loads(p.read_text()) for p in batch.patients]


def all_pages(batch: BatchTruth):
    for t in truths(batch):
        for doc in t["documents"]:
            for page in doc["pages"]:
                yield doc, page


def stored_images(batch: BatchTruth, doc: dict):
    """(page truth, stored image) for every page of one document."""
    src = batch.scans / doc["source"]
    if doc["container"] == "folder":
        for page in doc["pages"]:
            yield page, Image.open(next(src.glob(f"page{page['page']}.*")))
    elif doc["container"] == "tiff":
        with Image.open(src) as tif:
            for n, page in enumerate(doc["pages"]):
                tif.seek(n)
                yield page, tif.convert("L")
    else:
        with pikepdf.open(src) as pdf:
            for page, pdf_page in zip(doc["pages"], pdf.pages, strict=True):
                (xobj,) = pdf_page.Resources.XObject.values()
                assert xobj.Filter == "/DCTDecode"  # scans go in as JPEG, not re-encoded
                yield page, pikepdf.PdfImage(xobj).as_pil_image()


def test_nhs_modulus_11():
    assert nhs.is_valid("9434765919")  # the NHS's published example number
    assert not nhs.is_valid("9434765918")
    assert not nhs.is_valid("943476591")
    rng = random.Random(1)
    for _ in range(300):
        number = nhs.make(rng)
        assert number.startswith("999") and nhs.is_valid(number)
        assert not nhs.is_valid(nhs.make_invalid(rng))
    assert nhs.spaced("9990001234") == "999 000 1234"


def test_batch_identities_valid_and_named(batch):
    index = json.loads(batch.index.read_text())
    assert len(index["patients"]) == 3 == len(batch.patients)
    for t in truths(batch):
        assert nhs.is_valid(t["nhs_number"]) and t["nhs_number"].startswith("999")
        dob = "-".join(reversed(t["dob"].split("-")))
        for doc in t["documents"]:
            m = (NDR if doc["container"] != "folder" else FOLDER).match(doc["source"])
            assert m, doc["source"]
            if doc["container"] == "folder":
                assert m.groups() == (t["nhs_number"], t["name"], dob)
            else:
                assert m.groups()[:5] == (str(doc["part"]), str(doc["parts"]), t["name"], t["nhs_number"], dob)
                assert m.group(6) == {"pdf": "pdf", "tiff": "tif"}[doc["container"]]
    # truth lives apart from the scans so that ingesting scans/ never sees it
    assert not list(batch.scans.rglob("*.json"))


def test_every_container_kind_and_page_count(batch):
    kinds = {doc["container"] for t in truths(batch) for doc in t["documents"]}
    assert kinds == {"pdf", "tiff", "folder"}
    assert any(doc["parts"] == 2 for t in truths(batch) for doc in t["documents"])
    for t in truths(batch):
        for doc in t["documents"]:
            src = batch.scans / doc["source"]
            if doc["container"] == "pdf":
                with pikepdf.open(src) as pdf:
                    assert len(pdf.pages) == len(doc["pages"])
            elif doc["container"] == "tiff":
                with Image.open(src) as tif:
                    assert tif.n_frames == len(doc["pages"])
                    assert tif.info["compression"] == "group4"
            else:
                assert len(list(src.iterdir())) == len(doc["pages"])


def test_folder_pages_need_natural_ordering(batch):
    (folder,) = [p for p in batch.sources if p.is_dir()]
    names = [p.name for p in folder.iterdir()]
    assert all(re.fullmatch(r"page\d+\.(png|jpg)", n) for n in names)
    stems = {n.split(".")[0] for n in names}
    assert {"page2", "page10"} <= stems  # lexical order would put page10 before page2
    assert {n.split(".")[1] for n in names} == {"png", "jpg"}


def test_truth_schema(batch):
    saw_duplicate = False
    for doc, page in all_pages(batch):
        assert page["kind"] in KINDS
        assert page["scan_rotation"] in (0, 90, 180, 270)
        assert -3.6 <= page["skew_deg"] <= 3.6
        assert page["dpi"] == (200 if page["kind"] == "letter" else 300)
        if page["kind"] in ("envelope", "card_back"):
            assert page["entries"] == []
        if page["blank"]:
            assert page["kind"] == "card_back" and page["font"] is None
        if page["kind"] == "letter":
            assert page["letter_date"] and len(page["entries"]) == 1
            assert page["entries"][0]["date"] == page["letter_date"]
        else:
            assert page["letter_date"] is None
        if page["duplicate_of"] is not None:
            saw_duplicate = True
            original = doc["pages"][page["duplicate_of"] - 1]
            assert original["page"] < page["page"] and original["kind"] == page["kind"]
            assert [e["text"] for e in original["entries"]] == [e["text"] for e in page["entries"]]
            assert page["artefacts"]["jpeg_quality"] != original["artefacts"]["jpeg_quality"]
        dates = [e["date"] for e in page["entries"]]
        assert dates == sorted(dates)
        for e in page["entries"]:
            assert e["date_text"] and e["text"] and e["facts"]
            assert {f["kind"] for f in e["facts"]} <= FACT_KINDS
    assert saw_duplicate


def test_boxes_inside_page(batch):
    for _, page in all_pages(batch):
        boxes = [e["box"] for e in page["entries"]] + [f["box"] for f in page["fields"].values()]
        for x0, y0, x1, y1 in boxes:
            assert 0 <= x0 < x1 <= page["width"] and 0 <= y0 < y1 <= page["height"]


def upright(image: Image.Image, page: dict) -> np.ndarray:
    """Undo the recorded damage: turn back counter-clockwise, then rotate the skew away."""
    image = image.convert("L").rotate(page["scan_rotation"], expand=True)
    assert image.size == (page["width"], page["height"])
    paper = int(np.median(np.asarray(image)))
    return np.asarray(image.rotate(-page["skew_deg"], resample=Image.BILINEAR, fillcolor=paper))


def test_recorded_geometry_puts_ink_in_boxes(batch):
    """After undoing scan_rotation and skew_deg, a card's writing falls inside its truth boxes."""
    checked = 0
    for t in truths(batch):
        for doc in t["documents"]:
            for page, image in stored_images(batch, doc):
                if page["kind"] != "card" or not page["entries"]:
                    continue
                a = upright(image, page)
                if doc["container"] == "tiff":
                    dark = a < 128
                    # bilevel scans keep the printed rules black; drop full-width rows and the column rule
                    dark[dark.mean(axis=1) > 0.3, :] = False
                    dark[:, 280:320] = False
                else:
                    dark = a < np.median(a) - 120  # pen and typewriter ink, not the printed form
                dark[:140, :] = False  # printed header
                inside = np.zeros_like(dark)
                for x0, y0, x1, y1 in (e["box"] for e in page["entries"]):
                    inside[y0:y1, x0:x1] = True
                assert (dark & inside).sum() / dark.sum() > 0.97, (doc["source"], page["page"])
                checked += 1
    assert checked >= 5


@pytest.mark.parametrize("rotation", [0, 90, 180, 270])
def test_damage_conventions(rotation):
    page = Image.new("L", (600, 800), 235)
    page.paste(0, (100, 200, 300, 260))
    damage = Damage(skew_deg=2.5, scan_rotation=rotation, shift=(7, -11))
    scanned, jpeg = artefacts.apply(page, damage, 235, np.random.default_rng(0), 300)
    assert jpeg is None
    assert scanned.size == ((800, 600) if rotation in (90, 270) else (600, 800))
    a = upright(scanned, {"scan_rotation": rotation, "skew_deg": 2.5, "width": 600, "height": 800})
    ys, xs = np.nonzero(a < 100)
    box = artefacts.shift_box((100, 200, 300, 260), damage, 600, 800)
    assert abs(xs.min() - box[0]) <= 2 and abs(xs.max() + 1 - box[2]) <= 2
    assert abs(ys.min() - box[1]) <= 2 and abs(ys.max() + 1 - box[3]) <= 2


def test_stored_resolution(batch):
    for t in truths(batch):
        for doc in t["documents"]:
            if doc["container"] == "pdf":
                with pikepdf.open(batch.scans / doc["source"]) as pdf:
                    for page, pdf_page in zip(doc["pages"], pdf.pages):
                        w_in = float(pdf_page.mediabox[2]) / 72
                        width = page["height"] if page["scan_rotation"] in (90, 270) else page["width"]
                        assert abs(w_in - width / page["dpi"]) < 0.02
            else:
                for page, image in stored_images(batch, doc):
                    assert round(image.info["dpi"][0]) == page["dpi"]


def test_same_seed_same_bytes(tmp_path):
    a = generate_batch(tmp_path / "a", patients=1, seed=5)
    b = generate_batch(tmp_path / "b", patients=1, seed=5)
    assert a.index.read_text() == b.index.read_text()
    assert [p.read_bytes() for p in a.patients] == [p.read_bytes() for p in b.patients]
    assert [p.read_bytes() for p in a.sources] == [p.read_bytes() for p in b.sources]
    c = generate_batch(tmp_path / "c", patients=1, seed=6)
    assert c.patients[0].read_bytes() != a.patients[0].read_bytes()


def test_generate_pages_is_mostly_cards(tmp_path):
    flat = generate_pages(tmp_path, pages=14, seed=2)
    assert flat.pages == 14
    pages = [p for t in truths(flat) for d in t["documents"] for p in d["pages"]]
    assert len(pages) == 14
    assert sum(p["kind"] in ("card", "card_back") for p in pages) >= 12


def test_bad_inputs(tmp_path):
    paths = write_bad_inputs(tmp_path)
    assert set(paths) == set(CASES) and ACCEPTABLE <= set(CASES)
    assert all(p.exists() and p.parent == tmp_path for p in paths.values())
    assert paths["zero_byte"].stat().st_size == 0
    assert paths["bad_name"].name == "scan_0001.pdf"
    for case, path in paths.items():
        m = NDR.match(path.name)
        if case == "bad_name":
            assert m is None
        else:
            assert m and nhs.is_valid(m.group(4)) == (case != "bad_nhs_number"), case
    with pytest.raises(pikepdf.PasswordError):
        pikepdf.open(paths["encrypted_pdf"])
    with pytest.raises(Image.DecompressionBombError):
        Image.open(paths["decompression_bomb"])
    assert paths["decompression_bomb"].stat().st_size < 1_000_000
    truncated = paths["truncated_pdf"].read_bytes()
    assert truncated.startswith(b"%PDF") and b"%%EOF" not in truncated
    with pikepdf.open(paths["bad_name"]) as pdf:
        assert len(pdf.pages) == 1
    with pikepdf.open(paths["text_pdf"]) as pdf:
        (page,) = pdf.pages
        assert "/XObject" not in page.Resources
        assert b"Dear Dr" in page.Contents.read_bytes()
    assert not paths["not_a_scan"].read_bytes().startswith(b"%PDF")


def test_cli_help_explains_layout():
    done = subprocess.run([sys.executable, "-m", "fixtures.generate", "--help"], cwd=ROOT,
                          capture_output=True, text=True, check=True)
    assert "truth/" in done.stdout and "scans/" in done.stdout and "--patients" in done.stdout
