"""Benchmark: Tesseract against PP-OCRv6 (and `auto` routing) on generated pages, in one run.

    .venv/bin/python tests/benchmarks/bench_ocr_engines.py --patients 28 --extra 34 --out /tmp/bench-ocr

Generates a batch (fixtures.generate, the varied style: cards in four hands, typed letters,
result slips, envelope fronts, blank backs), then for each engine runs `lgd digitise --jobs 1
--engine E` in a child process and scores the archive against the truth
(fixtures.evaluate): word recall and CER per page kind and per hand (legible, first scans
only; a card's truth is its entries' dates and text, a letter's and a slip's their entries,
an envelope's its written fields), entry-date recall and precision, unreadable pages
flagged, CPU seconds per page and peak RSS of the child. On the same page images (the
batch's folders of PNG/JPEG pages) it times bare `tesseract` (one process per page, as most
tools run it), and Tesseract (tesserocr) and rapidocr each in one process with the model
loaded once, and `ocrmypdf --output-type pdfa` (its default -O1) on the batch's PDFs. `auto`
is priced against the engines' own cost on the pages it gives them: Tesseract (loaded once)
on every page plus rapidocr on each page it read a second time (counted from lgd's log).
Ratios are against figures measured in the same run. A patient's record holds one envelope
front and about two result slips, so `--extra N` generates N more patients (another seed) and
adds only their pages of `--kinds` (default result slips and envelope fronts; rescans left out)
to the batch, each patient's as a folder of page images with its truth: every kind then
reaches the issue's 60 pages without digitising hundreds more cards and letters. CER is computed on the page's tokens
sorted (reading order differs between engines: PP-OCR reads the date column and the notes
as separate lines), so it counts misread characters, not order. Writes OUT/result.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pikepdf
from rapidfuzz.distance import Levenshtein

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from collections import Counter  # noqa: E402

from fixtures.canvas import HANDS  # noqa: E402
from fixtures.evaluate import _tokens, score_archive  # noqa: E402
from index import Catalogue  # noqa: E402

PY = str(ROOT / ".venv/bin/python")
LGD = str(ROOT / ".venv/bin/lgd")
ENGINES = ("tesseract", "ppocr", "auto")


def child(cmd: list[str], stderr=subprocess.DEVNULL, **kw) -> tuple[float, int]:
    """CPU seconds (user+sys) and peak RSS (MB) of one child process run to the end."""
    started = time.monotonic()
    # One OpenMP thread for Tesseract everywhere, as lgd runs it: with more, its threads spin
    # on a shared machine and bill CPU that does no work (bare tesserocr measured 0.83 CPU-s/page
    # without the limit, against lgd's whole pipeline at 0.44 with it).
    env = {**os.environ, "OMP_THREAD_LIMIT": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=stderr, env=env, **kw)
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) not in (0, 1, 2):  # lgd exits 1 when some inputs failed
        raise SystemExit(f"{cmd[:3]} failed ({status}) after {time.monotonic() - started:.0f}s")
    return usage.ru_utime + usage.ru_stime, usage.ru_maxrss // 1024


def _truth_text(want: dict) -> list[str]:
    if want["kind"] == "envelope":
        return [f["text"] for f in want.get("fields", {}).values()]
    return [f"{e['date_text']} {e['text']}" for e in want["entries"]]


def words_by_page(archive: Path, truth: Path) -> dict:
    """Per page kind and hand or font: truth words, word recall and CER on legible first scans."""
    docs = {}
    for path in truth.glob("*.json"):
        if path.name != "index.json":
            for doc in json.loads(path.read_text())["documents"]:
                docs[doc["source"]] = doc
    per: dict[str, list[int]] = {}
    with Catalogue.open(archive, create=False, readonly=True) as catalogue:
        for row in catalogue.documents(status="ok"):
            want_doc = docs.get(row.source)
            if want_doc is None:
                continue
            for page, want in zip(catalogue.pages(row.id), want_doc["pages"], strict=False):
                if want["blank"] or not want.get("legible", True) or want["duplicate_of"] is not None:
                    continue
                written = _tokens(_truth_text(want))
                if not written:
                    continue
                read = _tokens(w[0] for w in page.words)
                truth_text = " ".join(sorted(written.elements()))
                # only the read tokens that could be written ones: printed headings and letterheads are not in the truth
                read_text = " ".join(sorted(_nearest(read, written).elements()))
                row_ = per.setdefault(f"{want['kind']}/{want['font']}", [0, 0, 0, 0, 0])
                row_[0] += sum(written.values())
                row_[1] += sum((written & read).values())
                row_[2] += len(truth_text)
                row_[3] += Levenshtein.distance(truth_text, read_text)
                row_[4] += 1
    return {key: {"pages": n, "words": w, "word_recall": round(r / w, 3) if w else None,
                  "cer": round(e / c, 3) if c else None} for key, (w, r, c, e, n) in sorted(per.items())}


def _nearest(read: Counter, written: Counter) -> Counter:
    """The read tokens that stand for written ones: exact ones, then for each written token not
    read exactly the closest read token left over (a misreading), if it is at least half alike."""
    exact = read & written
    spare = list((read - exact).elements())
    out = Counter(exact)
    for token in (written - exact).elements():
        if not spare:
            break
        best = min(spare, key=lambda t: Levenshtein.distance(t, token))
        if Levenshtein.distance(best, token) <= len(token) / 2:
            out[best] += 1
            spare.remove(best)
    return out


def kind_totals(per: dict) -> dict:
    """Word recall per page kind (all hands or fonts of that kind together), and of hand-written cards."""
    out: dict[str, dict] = {}
    groups: dict[str, list[str]] = {}
    for key in per:
        kind, font = key.split("/", 1)
        groups.setdefault(kind, []).append(key)
        if kind == "card":
            groups.setdefault("card, hand-written" if font in HANDS else "card, typed", []).append(key)
    for name, keys in sorted(groups.items()):
        words = sum(per[k]["words"] for k in keys)
        read = sum(round(per[k]["word_recall"] * per[k]["words"]) for k in keys if per[k]["word_recall"] is not None)
        out[name] = {"pages": sum(per[k]["pages"] for k in keys), "words": words,
                     "word_recall": round(read / words, 3) if words else None}
    return out


def add_extra(batch: Path, work: Path, patients: int, seed: int, kinds: set[str]) -> int:
    """Generate `patients` more records into `work` and copy their pages of `kinds` into `batch`
    (a folder per patient, named as lgd reads a folder's identity, and its truth). Returns the
    pages added."""

    subprocess.run([PY, "-m", "fixtures.generate", "--out", str(work), "--patients", str(patients),
                    "--seed", str(seed), "--style", "varied"], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    added = 0
    for path in sorted((work / "truth").glob("*.json")):
        if path.name == "index.json" or (batch / "truth" / path.name).exists():
            continue  # the same NHS number in both batches: keep the main batch's
        record = json.loads(path.read_text())
        year, month, day = record["dob"].split("-")
        folder = f"{record['nhs_number']} {record['name']} {day}-{month}-{year}"
        pages = []
        for doc in record["documents"]:
            source = work / "scans" / doc["source"]
            for i, want in enumerate(doc["pages"]):
                if want["kind"] not in kinds or want["duplicate_of"] is not None:
                    continue
                target = batch / "scans" / folder / f"page{len(pages) + 1}"
                target.parent.mkdir(parents=True, exist_ok=True)
                if source.is_dir():
                    image = next(p for p in source.iterdir() if p.stem == f"page{i + 1}")
                    shutil.copyfile(image, target.with_suffix(image.suffix))
                else:
                    _page_image(source, i).save(target.with_suffix(".png"), dpi=(want["dpi"], want["dpi"]))
                pages.append({**want, "page": len(pages) + 1})
        if pages:
            record["documents"] = [{"source": folder, "container": "folder", "part": 1, "parts": 1, "pages": pages}]
            (batch / "truth" / path.name).write_text(json.dumps(record))
            added += len(pages)
    return added


def _page_image(source: Path, index: int):
    """Page `index` (0-based) of an image-only PDF or a multi-page TIFF, as stored."""
    from PIL import Image

    if source.suffix.lower() == ".pdf":
        with pikepdf.open(source) as pdf:
            (image,) = pdf.pages[index].get_images().values()
            return pikepdf.PdfImage(image).as_pil_image()
    with Image.open(source) as tiff:
        tiff.seek(index)
        return tiff.copy()


def page_images(scans: Path) -> list[Path]:
    return sorted(p for p in scans.rglob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg"))


# The engines themselves, model loaded once, on the same images: rapidocr with lgd's settings,
# and Tesseract through its C API (tesserocr), which is what lgd calls; no orientation, no
# second looks, no PDF/A.
BARE_RAPIDOCR = """
import sys
import numpy as np
from PIL import Image
from rapidocr import RapidOCR
from digitise.ppocr import SETTINGS
ocr = RapidOCR(params=dict(SETTINGS))
for path in sys.argv[1:]:
    ocr(np.asarray(Image.open(path).convert("RGB")))
"""
BARE_TESSEROCR = """
import sys
import tesserocr
from PIL import Image
from digitise.ocr import tessdata
with tesserocr.PyTessBaseAPI(path=tessdata(), lang="eng") as api:
    for path in sys.argv[1:]:
        api.SetImage(Image.open(path))
        api.GetUTF8Text()
"""


def images_by_kind(scans: Path, truth: Path) -> dict[str, list[Path]]:
    """The folder images (`page{n}.png` of a patient folder) grouped by the kind their truth page has."""
    kinds: dict[tuple[str, int], str] = {}
    for path in truth.glob("*.json"):
        if path.name != "index.json":
            for doc in json.loads(path.read_text())["documents"]:
                kinds.update({(doc["source"], page["page"]): page["kind"] for page in doc["pages"]})
    grouped: dict[str, list[Path]] = {}
    for image in page_images(scans):
        number = int("".join(c for c in image.stem if c.isdigit()) or 0)
        grouped.setdefault(kinds.get((image.parent.name, number), "unknown"), []).append(image)
    return grouped


def routed_kinds(log: str) -> Counter:
    """How many pages of each kind `--engine auto` read again with PP-OCR, from its log lines."""
    return Counter(m.group(1) for m in re.finditer(r"page \d+ \((\w+)\): read again by", log))


def time_bare_engines(scans: Path, out: Path, skip_ocrmypdf: bool) -> dict:
    """CPU seconds per page of the engines alone on the batch's page images, and of ocrmypdf on its PDFs.

    rapidocr is also timed on the images of each page kind apart (cards, slips, envelopes, letters
    differ several-fold in lines to recognise), so that auto's re-reads are priced at the cost of
    the kinds it routes, not at the average of every image.
    """
    result: dict = {}
    images = page_images(scans)
    by_kind = images_by_kind(scans, scans.parent / "truth")
    result["bare_rapidocr_cpu_s_per_page_by_kind"] = {
        kind: round(child([PY, "-c", BARE_RAPIDOCR, *map(str, paths)], cwd=ROOT)[0] / len(paths), 3)
        for kind, paths in sorted(by_kind.items()) if kind != "blank"}
    cpu = sum(child(["tesseract", str(p), "-", "--psm", "3"])[0] for p in images)
    result["bare_tesseract_cpu_s_per_page"] = round(cpu / max(1, len(images)), 3)
    cpu, _ = child([PY, "-c", BARE_TESSEROCR, *map(str, images)], cwd=ROOT)
    result["bare_tesserocr_cpu_s_per_page"] = round(cpu / max(1, len(images)), 3)
    cpu, rss = child([PY, "-c", BARE_RAPIDOCR, *map(str, images)], cwd=ROOT)
    result["bare_rapidocr_cpu_s_per_page"] = round(cpu / max(1, len(images)), 3)
    result["bare_rapidocr_peak_rss_mb"] = rss
    result["bare_images"] = len(images)
    if not skip_ocrmypdf:
        pdfs = sorted(scans.glob("*.pdf"))
        total_pages = 0
        cpu = 0.0
        for pdf in pdfs:
            c, _ = child([sys.executable, "-m", "ocrmypdf", "--output-type", "pdfa", "--jobs", "1", "-q",
                          str(pdf), str(out / "ocrmypdf.pdf")], cwd=ROOT)
            cpu += c
            with pikepdf.open(pdf) as opened:
                total_pages += len(opened.pages)
        result["ocrmypdf_pdfa_cpu_s_per_page"] = round(cpu / max(1, total_pages), 3)
        result["ocrmypdf_pages"] = total_pages
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patients", type=int, default=28)  # 28 varied patients: 60+ pages of cards, letters, slips
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--out", type=Path, default=Path("/tmp/bench-ocr"))
    parser.add_argument("--extra", type=int, default=34, metavar="N",
                        help="N more patients whose pages of --kinds only are added (0: none)")
    parser.add_argument("--kinds", default="result,envelope", help="page kinds the --extra patients add")
    parser.add_argument("--engines", default=",".join(ENGINES), help="lgd engines to run, of " + ", ".join(ENGINES))
    parser.add_argument("--skip-ocrmypdf", action="store_true")
    parser.add_argument("--resume", action="store_true",
                        help="keep OUT's batch, every engine already scored (OUT/engine-E.json) and the bare engines' "
                             "timings (OUT/bare.json); run the rest")
    args = parser.parse_args(argv)
    out: Path = args.out
    if not (args.resume and (out / "batch" / "truth").is_dir()):
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        subprocess.run([PY, "-m", "fixtures.generate", "--out", str(out / "batch"), "--patients", str(args.patients),
                        "--seed", str(args.seed), "--style", "varied"], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
        if args.extra:
            added = add_extra(out / "batch", out / "extra", args.extra, args.seed + 1000, set(args.kinds.split(",")))
            print(f"added {added} pages of {args.kinds} from {args.extra} more patients", file=sys.stderr)
    scans, truth = out / "batch" / "scans", out / "batch" / "truth"
    result: dict = {"patients": args.patients, "extra_patients": args.extra, "extra_kinds": args.kinds, "engines": {}}
    for engine in filter(None, args.engines.split(",")):
        done = out / f"engine-{engine}.json"
        if args.resume and done.is_file():
            result["engines"][engine] = json.loads(done.read_text())
            continue
        shutil.rmtree(out / f"archive-{engine}", ignore_errors=True)
        archive = out / f"archive-{engine}"
        log = out / f"digitise-{engine}.log"
        with log.open("w") as err:
            cpu, rss = child([LGD, "-v", "digitise", str(scans), "--engine", engine, "--jobs", "1",
                              "--archive", str(archive)], stderr=err, cwd=ROOT)
        score = score_archive(archive, truth)
        pages = max(1, score.pages)
        per = words_by_page(archive, truth)
        result["engines"][engine] = {
            **score.as_dict(), "cpu_s_per_page": round(cpu / pages, 3), "peak_rss_mb": rss,
            "pages_read_again": log.read_text().count("read again by "),
            "pages_read_again_by_kind": dict(routed_kinds(log.read_text())),
            "per_kind": kind_totals(per), "per_kind_and_hand": per,
        }
        done.write_text(json.dumps(result["engines"][engine]))
        print(engine, json.dumps(result["engines"][engine]), file=sys.stderr)
    bare = out / "bare.json"
    if args.resume and bare.is_file():
        result.update(json.loads(bare.read_text()))
    else:
        result.update(time_bare_engines(scans, out, args.skip_ocrmypdf))
        bare.write_text(json.dumps({k: v for k, v in result.items() if k.startswith(("bare_", "ocrmypdf_"))}))
    base = result["engines"].get("tesseract", {}).get("cpu_s_per_page")
    for name, row in result["engines"].items():
        row["cpu_vs_tesseract"] = round(row["cpu_s_per_page"] / base, 2) if base else None
        if "ocrmypdf_pdfa_cpu_s_per_page" in result:
            row["speedup_vs_ocrmypdf"] = round(result["ocrmypdf_pdfa_cpu_s_per_page"] / row["cpu_s_per_page"], 2)
        # The engines' own cost on the pages lgd gave them (Tesseract, loaded once, on every
        # page; rapidocr on each page read by PP-OCR), and lgd's CPU as a multiple of it.
        pages = row["pages"]
        tess = result["bare_tesserocr_cpu_s_per_page"] * pages * (name != "ppocr")
        rapid = result["bare_rapidocr_cpu_s_per_page"] * (pages if name == "ppocr" else row["pages_read_again"])
        row["engines_own_cpu_s_per_page"] = round((tess + rapid) / max(1, pages), 3)
        own = row["engines_own_cpu_s_per_page"]
        row["cpu_vs_engines_own"] = round(row["cpu_s_per_page"] / own, 2) if own else None
        routed = row.get("pages_read_again_by_kind") or {}
        rates = result.get("bare_rapidocr_cpu_s_per_page_by_kind") or {}
        if routed and rates:  # the same, with each re-read priced at PP-OCR's cost on pages of its kind
            rapid = sum(n * rates.get(kind, result["bare_rapidocr_cpu_s_per_page"]) for kind, n in routed.items())
            row["engines_own_by_kind_cpu_s_per_page"] = round((tess + rapid) / max(1, pages), 3)
            row["cpu_vs_engines_own_by_kind"] = round(row["cpu_s_per_page"] / row["engines_own_by_kind_cpu_s_per_page"], 2)
    (out / "result.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
