"""Reconciliation on generated patients: safety (missed paper-only pages), compaction, throughput.

    .venv/bin/python -m tests.benchmarks.bench_reconcile --patients 20 --seed 7 --json tests/benchmarks/last-run-reconcile.json
    .venv/bin/python -m tests.benchmarks.bench_reconcile --style varied ...   (letters, results, rescans that vary)
    .venv/bin/python -m tests.benchmarks.bench_reconcile --engine auto ...    (lgd digitise --engine; default tesseract)

1. Generates a batch (scans, truth and each patient's coded record in four renderings),
   digitises it with the real OCR, and reconciles every patient against every rendering.
2. Scores each run against the truth: a *miss* is a paper-only page omitted (must be 0);
   compaction = omitted excludable pages / excludable pages (target at least 0.7); both also
   per page kind (card, letter, result, blank, rescan, envelope).
3. Runs the same matching on the truth's own entry text (an oracle of perfect OCR), to show
   how much of the gap is reading rather than matching.
4. Throughput: one patient with 500 paper entries (100 pages) and a 5,000-event coded record,
   reconciled end to end through the catalogue (target under 2 s), per rendering; the time
   to only read the coded file is given beside it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from fixtures.coded import large_record, paper_entries
from fixtures.evaluate_reconcile import evaluate, load_truth, oracle, table
from fixtures.generate import generate_batch
from index import Catalogue
from index.rows import DocumentRow, EntryRow, PageRow, PatientRow
from pipelines.clinical import default_reader
from pipelines.clinical.evidence import CodedIndex, PaperEntry
from pipelines.reconcile.decide import PageDecision, PaperPage, decide_record
from pipelines.reconcile.run import reconcile_patient
from pipelines.reconcile.settings import Settings
from pipelines.records.detect import read_record

REPO = Path(__file__).resolve().parents[2]
RENDERINGS = {"csv": "csv", "stu3": "stu3.json", "r4": "r4.json", "gp2gp": "xml"}
LARGE_NHS = "9990000018"


def digitise(batch, archive: Path, engine: str) -> float:
    started = time.perf_counter()
    done = subprocess.run([str(REPO / ".venv/bin/lgd"), "digitise", str(batch.scans), "--archive", str(archive),
                           "--jobs", "2", "--engine", engine, "--json"], check=False, stdout=subprocess.DEVNULL)
    if done.returncode not in (0, 1):  # 1: some inputs quarantined, the rest digitised
        raise SystemExit(f"lgd digitise exited {done.returncode}; see its messages above")
    return time.perf_counter() - started


def reconcile_all(archive: Path, batch, out: Path, suffix: str) -> list[Path]:
    paths = []
    index = json.loads(batch.index.read_text())
    with Catalogue.open(archive, create=False) as catalogue:
        for patient in index["patients"]:
            nhs = patient["nhs_number"]
            doc = reconcile_patient(catalogue, nhs, batch.coded / f"{nhs}.{suffix}", actor="bench").to_json()
            path = out / f"{nhs}.{suffix}.reconcile.json"
            path.write_text(json.dumps(doc))
            paths.append(path)
    return paths


def oracle_documents(batch, out: Path) -> list[Path]:
    """Reconcile the truth's own entry text: what a perfect OCR would let matching do."""
    reader, settings = default_reader(), Settings()
    by_patient: dict[str, list[PaperPage]] = {}
    documents: dict[tuple[str, str], int] = {}
    for page in oracle(batch.truth):
        entries = tuple(PaperEntry(dt.date.fromisoformat(e["date"]), "day", e["text"], 95.0) for e in page["entries"])
        text = " ".join(e.text for e in entries)
        document = documents.setdefault((page["patient"], page["source"]), len(documents))
        # digitise flags a rescan within its own file; one in the other part must be found by matching
        same_file = page["duplicate_of"] if not page.get("duplicate_source") else None
        by_patient.setdefault(page["patient"], []).append(PaperPage(
            document, page["source"], page["page"], "blank" if page["blank"] else page["kind"].replace("card_back", "card"),
            page["blank"], same_file, not page["legible"], 95.0 if page["legible"] else 20.0, text, entries))
    paths = []
    names = {nhs: tuple(t["name"].split()) for nhs, t in load_truth(batch.truth).items()}
    for nhs, pages in by_patient.items():
        record = read_record(batch.coded / f"{nhs}.csv")
        decisions = decide_record(pages, CodedIndex(record.events, reader), reader, settings, names[nhs])
        doc = {"patient": nhs, "coded": {"format": record.format, "sha256": record.sha256, "events": len(record.events)},
               "pages": [_page_json(d) for d in decisions]}
        path = out / f"{nhs}.oracle.reconcile.json"
        path.write_text(json.dumps(doc))
        paths.append(path)
    return paths


def _page_json(d: PageDecision) -> dict:
    return {"source": d.page.source, "page": d.page.number, "decision": d.decision, "reason": d.reason,
            "entries": d.entries_json()}


def throughput(work: Path, seed: int) -> dict[str, dict[str, float]]:
    """Seconds to reconcile 500 entries against 5,000 coded events, end to end, per rendering."""
    archive = work / "large-archive"
    entries = paper_entries(seed, 500)
    with Catalogue.open(archive) as catalogue:
        pages = [PageRow(n, 1500, 2100, 300, 0, 0.0, False, "0" * 16, None, 90.0, False, "card",
                         " ".join(t for _, t in entries[(n - 1) * 5:n * 5])) for n in range(1, 101)]
        rows = [EntryRow(i // 5 + 1, day, day.isoformat(), text, (0, 0, 10, 10), 90.0) for i, (day, text) in enumerate(entries)]
        doc = DocumentRow("large.pdf", "a" * 64, LARGE_NHS, 100, "ok", "pdf/large.pdf", True, None, None, None, None, 1)
        catalogue.record_document(PatientRow(LARGE_NHS, "Large Record", dt.date(1930, 1, 1)), doc, pages, rows)
    out = {}
    for name in RENDERINGS:
        path = large_record(seed, LARGE_NHS, 5000, name, out_dir=work / "large")
        started = time.perf_counter()
        record = read_record(path)
        read_seconds = time.perf_counter() - started
        with Catalogue.open(archive, create=False) as catalogue:
            started = time.perf_counter()
            result = reconcile_patient(catalogue, LARGE_NHS, path, actor="bench")
            seconds = time.perf_counter() - started
        out[name] = {"events": len(record.events), "entries": len(entries), "seconds": round(seconds, 3),
                     "read_only_seconds": round(read_seconds, 3), "pages": result.summary()["pages"]}
        print(f"throughput {name}: {seconds:.2f} s for {len(record.events)} events x {len(entries)} entries "
              f"(reading the file alone {read_seconds:.2f} s)", file=sys.stderr)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patients", type=int, default=20)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "lgd-bench-reconcile")
    parser.add_argument("--reuse", action="store_true", help="reuse the batch and archive already in --out")
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("--style", choices=("classic", "varied"), default="classic",
                        help="generator style (fixtures.generate --style); classic keeps old figures comparable")
    parser.add_argument("--engine", choices=("tesseract", "ppocr", "auto"), default="tesseract",
                        help="lgd digitise --engine (default tesseract, lgd's own default)")
    args = parser.parse_args(argv)
    batch_dir, archive = args.out / "batch", args.out / "archive"
    if not args.reuse:
        shutil.rmtree(args.out, ignore_errors=True)
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    batch = generate_batch(batch_dir, args.patients, args.seed, args.style) if not args.reuse else _existing(batch_dir)
    if not args.reuse:
        print(f"generated {args.patients} patients in {time.perf_counter() - started:.0f} s", file=sys.stderr)
        print(f"digitised in {digitise(batch, archive, args.engine):.0f} s", file=sys.stderr)
    runs = args.out / "runs"
    shutil.rmtree(runs, ignore_errors=True)
    runs.mkdir()
    figures: dict = {"patients": args.patients, "seed": args.seed, "style": args.style, "engine": args.engine,
                     "formats": {}}
    for name, suffix in RENDERINGS.items():
        started = time.perf_counter()
        paths = reconcile_all(archive, batch, runs, suffix)
        report = evaluate(batch.truth, paths)
        report["seconds_per_patient"] = round((time.perf_counter() - started) / args.patients, 3)
        figures["formats"][name] = report
        print(f"\n== {name} (real OCR)\n{table(report)}", file=sys.stderr)
    report = evaluate(batch.truth, oracle_documents(batch, runs))
    figures["oracle"] = report
    print(f"\n== oracle: the truth's entry text, csv record\n{table(report)}", file=sys.stderr)
    figures["throughput"] = throughput(args.out / "throughput", args.seed)
    shutil.rmtree(args.out / "throughput", ignore_errors=True)
    figures["summary"] = {
        name: {k: r["overall"].get(k) for k in ("missed_count", "compaction", "compaction_legible", "excludable",
                                                "paper_only", "pages")}
        for name, r in [*figures["formats"].items(), ("oracle", figures["oracle"])]
    }
    for name, r in [*figures["formats"].items(), ("oracle", figures["oracle"])]:
        figures["summary"][name]["by_kind"] = {k: {"missed": v["missed"], "compaction": v["compaction"]}
                                               for k, v in r["overall"]["by_kind"].items() if v["pages"]}
    text = json.dumps({"style": args.style, "engine": args.engine, **figures["summary"], "throughput": figures["throughput"]}, indent=2)
    print(text)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1) + "\n")
    return 1 if any(s["missed_count"] for s in figures["summary"].values()) else 0


def _existing(batch_dir: Path):
    from types import SimpleNamespace

    return SimpleNamespace(scans=batch_dir / "scans", truth=batch_dir / "truth", index=batch_dir / "truth" / "index.json",
                           coded=batch_dir / "coded")


if __name__ == "__main__":
    sys.exit(main())
