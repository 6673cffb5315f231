"""Search at archive scale: index 100,000 synthetic pages, then time patient-filtered and archive-wide queries.

    .venv/bin/python -m tests.benchmarks.bench_search --pages 100000

Page texts are made from the fixture generator's clinical vocabulary (no OCR needed):
about 5 dated card entries a page, 10 pages a patient. Reports indexing pages/s, query
latency p50/p95 for each kind of query, and the index size against the raw text size.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import shutil
import statistics
import sys
import time
from pathlib import Path

from fixtures import nhs as nhs_numbers
from fixtures.vocab import card_entry
from index import FullText, PageDoc

PAGES_PER_PATIENT = 10
QUERIES = {
    "exact": ["amoxicillin", "asthma", "penicillin", "appendicectomy", "hypothyroid"],
    "synonym": ["heart attack", "high blood pressure", "Ventolin", "T2DM", "fracture"],
    "misspelt": ["amoxicilin", "asthmma", "penicilin", "diclofenak", "metformine"],
    "boolean": ["asthma AND NOT salbutamol", '"chest clr"', "cough OR wheeze"],
}


def synthetic_pages(count: int, seed: int):
    rng = random.Random(seed)
    numbers = [nhs_numbers.make(rng) for _ in range(count // PAGES_PER_PATIENT + 1)]
    for i in range(count):
        nhs = numbers[i // PAGES_PER_PATIENT]
        year = 1960 + rng.randrange(45)
        chronic: list = []
        entries, dates = [], []
        for _ in range(rng.randint(4, 8)):  # a card side holds 4-8 entries
            text, _ = card_entry(rng, rng.choice("MF"), rng.randrange(1, 90), year, chronic)
            when = dt.date(year, rng.randrange(1, 13), rng.randrange(1, 29))
            entries.append(f"{when:%d/%m/%y} {text}")
            dates.append(when)
        yield PageDoc(nhs, i // PAGES_PER_PATIENT + 1, f"record-{nhs}.pdf", i % PAGES_PER_PATIENT + 1, "card", tuple(dates), "\n".join(entries))


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pages", type=int, default=100_000)
    parser.add_argument("--out", type=Path, default=Path("/tmp/lgd-bench-search"))
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    shutil.rmtree(args.out, ignore_errors=True)
    args.out.mkdir(parents=True)

    raw = 0
    patients: list[str] = []
    started = time.perf_counter()
    with FullText.open(args.out) as ft:
        batch: list[PageDoc] = []
        for page in synthetic_pages(args.pages, args.seed):
            raw += len(page.text.encode())
            if page.page == 1:
                patients.append(page.nhs_number)
            batch.append(page)
            if len(batch) == 5000:
                ft.add_pages(batch)
                batch.clear()
                print(f"indexed {len(patients) * PAGES_PER_PATIENT} pages", file=sys.stderr)
        ft.add_pages(batch)
    index_seconds = time.perf_counter() - started
    size = folder_bytes(args.out / "fulltext")

    def time_queries(seed: int) -> dict[str, dict[str, list[float]]]:
        rng = random.Random(seed)
        latency: dict[str, dict[str, list[float]]] = {}
        with FullText.open(args.out, create=False) as ft:
            ft.search("warm up", None, 10)
            for style, queries in QUERIES.items():
                for scope in ("patient", "archive"):
                    times = latency.setdefault(scope, {}).setdefault(style, [])
                    for q in queries:
                        for _ in range(8 if scope == "patient" else 3):
                            nhs = rng.choice(patients) if scope == "patient" else None
                            t = time.perf_counter()
                            ft.search(q, nhs, 10)
                            times.append(time.perf_counter() - t)
        return latency

    as_ingested = time_queries(args.seed)
    with FullText.open(args.out, create=False) as ft:
        segments_before = len(list((args.out / "fulltext").glob("*.seg")))
        started = time.perf_counter()
        ft.optimize()
        optimize_seconds = time.perf_counter() - started
    latency = time_queries(args.seed)
    optimized_size = folder_bytes(args.out / "fulltext")

    def summary(latency):
        return {
            scope: {
                style: {"p50": round(1000 * percentile(t, 0.5), 1), "p95": round(1000 * percentile(t, 0.95), 1)}
                for style, t in by_style.items()
            }
            | {"all": {"p50": round(1000 * percentile(sum(by_style.values(), []), 0.5), 1), "p95": round(1000 * percentile(sum(by_style.values(), []), 0.95), 1)}}
            for scope, by_style in latency.items()
        }

    figures = {
        "pages": args.pages,
        "raw_text_bytes": raw,
        "index_bytes": size,
        "index_vs_raw_text": round(size / raw, 3),
        "indexing_pages_per_second": round(args.pages / index_seconds, 1),
        "segments_as_ingested": segments_before,
        "latency_ms_as_ingested": summary(as_ingested),
        "optimize_seconds": round(optimize_seconds, 1),
        "index_bytes_optimized": optimized_size,
        "index_vs_raw_text_optimized": round(optimized_size / raw, 3),
        "latency_ms_optimized": summary(latency),
    }
    text = json.dumps(figures, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
