"""Search quality on real OCR: recall@5 per query style for paper facts of generated patients.

    .venv/bin/python -m tests.benchmarks.bench_search_quality --patients 6 [--engine tesseract|auto]

Generates synthetic Lloyd George records, digitises them with `lgd digitise --engine E` (real
OCR; the default engine unless told), builds queries from the ground truth (exact, abbreviation, synonym, misspelt;
fixtures/search_queries.py) and asks each with the patient filter, as a clinician would.
Targets: exact >= 0.95, every other style >= 0.85.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

from digitise.options import DEFAULT_ENGINE
from fixtures.generate import generate_batch
from fixtures.search_queries import build_queries, recall_at_k
from index import Catalogue, FullText
from index.fulltext import QueryError

LGD = [sys.executable, "-m", "pipelines.cli"]


def _words(text: str) -> list[str]:
    return [w.strip(".,;:()[]'\"").casefold() for w in text.split() if w.strip(".,;:()[]'\"")]


def _fact(q) -> tuple[str, str, int, str]:
    return (q.nhs_number, q.source, q.page, q.fact_term)


def readable_facts(queries, page_text: dict[tuple[str, int], str]) -> set[tuple[str, str, int, str]]:
    """Facts whose words as written (the exact-style query) all appear in the OCR text of a page stating them."""
    read = set()
    for q in queries:
        if q.style != "exact":
            continue
        wanted = _words(q.text.replace('"', ""))
        for page in q.expected:
            have = set(_words(page_text.get(page, "")))
            if wanted and all(w in have for w in wanted):
                read.add(_fact(q))
                break
    return read


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patients", type=int, default=6)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=Path("/tmp/lgd-bench-quality"))
    parser.add_argument("--json", type=Path)
    parser.add_argument("--misses", action="store_true", help="list the queries that missed")
    parser.add_argument("--engine", choices=("auto", "ppocr", "tesseract"), default=DEFAULT_ENGINE,
                        help=f"lgd digitise --engine (default {DEFAULT_ENGINE}); OUT keeps one engine's archive")
    args = parser.parse_args(argv)
    archive = args.out / "archive"
    made_by = args.out / "engine"
    if made_by.is_file() and made_by.read_text() != args.engine:
        raise SystemExit(f"{args.out} holds an archive read with --engine {made_by.read_text()}; choose another --out")
    if not (archive / "catalogue.sqlite").exists():
        shutil.rmtree(args.out, ignore_errors=True)
        batch = generate_batch(args.out / "batch", args.patients, seed=args.seed)
        subprocess.run([*LGD, "digitise", str(batch.scans), "--archive", str(archive), "--jobs", "2",
                        "--engine", args.engine], check=False, stdout=subprocess.DEVNULL)
        made_by.write_text(args.engine)
    queries = build_queries(args.out / "batch" / "truth", seed=args.seed)
    results: dict = {}
    with Catalogue.open(archive, create=False, readonly=True) as catalogue, FullText.open(archive, create=False) as ft:
        sources = {d.id: d.source for d in catalogue.documents(status="ok")}
        for q in queries:
            try:
                found = ft.search(q.text, q.nhs_number, limit=5)
            except QueryError:
                results[q] = []
                continue
            results[q] = [(sources[h.document_id], h.page) for h in found.hits]
        page_text = {(sources[d], n): p.text for d in sources for p in catalogue.pages(d) for n in [p.number]}
    recall = recall_at_k(results, 5)
    read = readable_facts(queries, page_text)
    on_read = {q: pages for q, pages in results.items() if _fact(q) in read}
    figures = {
        "patients": args.patients,
        "engine": args.engine,
        "queries": dict(Counter(q.style for q in queries)),
        "recall_at_5": {k: round(v, 3) for k, v in recall.items()},
        # The same queries, only for facts whose words OCR did read on a page that states them:
        # what search does with the text it is given, apart from what OCR lost.
        "queries_on_read_facts": dict(Counter(q.style for q in on_read)),
        "recall_at_5_on_read_facts": {k: round(v, 3) for k, v in recall_at_k(on_read, 5).items()},
    }
    print(json.dumps(figures, indent=2))
    if args.misses:
        for q, pages in results.items():
            if not any(p in q.expected for p in pages):
                print(f"MISS {q.style:12} {q.text!r} -> want {q.source} p{q.page}, got {pages[:3]}", file=sys.stderr)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
