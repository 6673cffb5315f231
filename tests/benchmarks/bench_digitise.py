"""Benchmark `lgd digitise` against plain Tesseract and plain OCRmyPDF on the same generated pages, in one run.

    .venv/bin/python -m tests.benchmarks.bench_digitise --pages 60

Every figure is CPU time (user + system, the process and all its children) because on a
shared 2-core machine wall time is noise and Tesseract gains nothing from the second core.
Baselines run on exactly the same page images: plain `tesseract` on the JPEGs embedded in
the generated PDFs, plain `ocrmypdf --output-type pdfa` on the PDFs themselves.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import img2pdf

from fixtures.evaluate import score_archive
from fixtures.generate import generate_pages

ENV = {**os.environ, "OMP_THREAD_LIMIT": "1"}  # Tesseract single-threaded, as in lgd's workers
LGD = [sys.executable, "-m", "pipelines.cli"]


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def timed(cmd: list[str], **kwargs) -> float:
    """CPU seconds used by `cmd` and everything it started."""
    before = children_cpu()
    subprocess.run(cmd, check=True, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kwargs)
    return children_cpu() - before


def max_rss_mb(cmd: list[str]) -> float:
    """Peak resident memory of the largest process `cmd` ran, from a fresh measuring parent."""
    probe = (
        "import resource, subprocess, sys\n"
        "subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    )
    out = subprocess.run([sys.executable, "-c", probe, *cmd], check=True, env=ENV, capture_output=True, text=True)
    return int(out.stdout.strip()) / 1024


def extract_images(pdfs: list[Path], out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    for i, pdf in enumerate(pdfs):
        subprocess.run(["pdfimages", "-all", str(pdf), str(out / f"d{i}")], check=True)
    return sorted(out.iterdir())


def lgd_cpu(inputs: list[Path], archive: Path, jobs: int = 1) -> float:
    shutil.rmtree(archive, ignore_errors=True)
    return timed([*LGD, "digitise", *map(str, inputs), "--archive", str(archive), "--jobs", str(jobs)])


def blank_page_cost(batch, work: Path) -> dict:
    """Marginal CPU of a blank page: the same text pages digitised with and without blank ones."""
    truth = [json.loads(p.read_text()) for p in batch.patients]
    images = extract_images(list(batch.sources), work / "blank-images")
    pages = [p for record in truth for doc in record["documents"] for p in doc["pages"]]
    text_pages = [img for img, p in zip(images, pages, strict=True) if not p["blank"]][:20]
    blank_pages = [img for img, p in zip(images, pages, strict=True) if p["blank"]]
    blanks = (blank_pages * 20)[:20]
    name = "1of1_Lloyd_George_Record_[Bench Mark]_[9990000018]_[01-01-1950].pdf"
    only_text, with_blanks = work / "text" / name, work / "text+blank" / name
    for target, imgs in ((only_text, text_pages), (with_blanks, text_pages + blanks)):
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(img2pdf.convert([str(i) for i in imgs]))
    cpu_text = lgd_cpu([only_text], work / "archive-text")
    cpu_both = lgd_cpu([with_blanks], work / "archive-blank")
    per_text = cpu_text / len(text_pages)
    per_blank = max(0.0, cpu_both - cpu_text) / len(blanks)
    return {"text_page_cpu": round(per_text, 3), "blank_page_cpu": round(per_blank, 3), "blank_ratio": round(per_blank / per_text, 3)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pages", type=int, default=60, help="pages to generate (at least 50)")
    parser.add_argument("--out", type=Path, default=Path("/tmp/lgd-bench"))
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)

    shutil.rmtree(args.out, ignore_errors=True)
    batch = generate_pages(args.out / "batch", args.pages, seed=args.seed)
    pdfs = list(batch.sources)
    pages = batch.pages
    print(f"benchmark: {pages} pages in {len(pdfs)} documents", file=sys.stderr)

    images = extract_images(pdfs, args.out / "images")
    assert len(images) == pages, (len(images), pages)
    tess_out = args.out / "tesseract"
    tess_out.mkdir()
    before = children_cpu()
    for img in images:
        subprocess.run(["tesseract", str(img), str(tess_out / img.stem)], check=True, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    cpu_tesseract = children_cpu() - before

    ocrmypdf_runs = {}
    sizes_ocrmypdf = 0
    for level in ("1", "0"):
        out = args.out / f"ocrmypdf-O{level}"
        out.mkdir()
        cpu = 0.0
        for pdf in pdfs:
            target = out / pdf.name
            cpu += timed([sys.executable, "-m", "ocrmypdf", "--output-type", "pdfa", "-O", level, "-j", "1", str(pdf), str(target)])
            if level == "1":
                sizes_ocrmypdf += target.stat().st_size
        ocrmypdf_runs[level] = cpu

    wall = time.monotonic()
    cpu_lgd = lgd_cpu(pdfs, args.out / "archive")
    wall = time.monotonic() - wall
    sizes_lgd = sum(p.stat().st_size for p in (args.out / "archive" / "pdf").rglob("*.pdf"))
    accuracy = score_archive(args.out / "archive", batch.truth).as_dict()

    blank = blank_page_cost(batch, args.out / "blank")
    one_doc = max_rss_mb([*LGD, "digitise", str(pdfs[0]), "--archive", str(args.out / "rss1"), "--jobs", "1"])
    all_docs = max_rss_mb([*LGD, "digitise", *map(str, pdfs), "--archive", str(args.out / "rss2"), "--jobs", "2"])

    per = lambda cpu: cpu / pages  # noqa: E731
    figures = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "pages": pages,
        "documents": len(pdfs),
        "cpu_per_page": {
            "tesseract": round(per(cpu_tesseract), 3),
            "ocrmypdf_O1": round(per(ocrmypdf_runs["1"]), 3),
            "ocrmypdf_O0": round(per(ocrmypdf_runs["0"]), 3),
            "lgd": round(per(cpu_lgd), 3),
        },
        "lgd_vs_tesseract": round(cpu_lgd / cpu_tesseract, 3),
        "ocrmypdf_O1_vs_lgd": round(ocrmypdf_runs["1"] / cpu_lgd, 3),
        "ocrmypdf_O0_vs_lgd": round(ocrmypdf_runs["0"] / cpu_lgd, 3),
        "lgd_wall_seconds_jobs1": round(wall, 1),
        "blank_pages": blank,
        "max_rss_mb": {"one_document_jobs1": round(one_doc), f"{len(pdfs)}_documents_jobs2": round(all_docs)},
        "pdf_bytes": {"ocrmypdf_O1": sizes_ocrmypdf, "lgd": sizes_lgd, "lgd_vs_ocrmypdf": round(sizes_lgd / sizes_ocrmypdf, 3)},
        "accuracy": accuracy,
    }
    text = json.dumps(figures, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
