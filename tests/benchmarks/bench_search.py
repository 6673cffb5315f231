"""Search at archive scale: index 100,000 synthetic pages, then time patient-filtered and archive-wide queries.

    .venv/bin/python -m tests.benchmarks.bench_search --pages 100000

Page texts are made from the fixture generator's clinical vocabulary (no OCR needed):
about 5 dated card entries a page, 10 pages a patient. Reports indexing pages/s, query
latency p50/p95 for each kind of query, and the index size against the raw text size.

Building 100,000 pages takes minutes, so an index can be built once and timed again:

    .venv/bin/python -m tests.benchmarks.bench_search --out /tmp/lgd-bench-as-ingested --no-optimize
    .venv/bin/python -m tests.benchmarks.bench_search --reuse /tmp/lgd-bench-as-ingested

`--reuse` only times queries, on the index as it is (it never writes to it); copy the folder
before optimising it. Each timing is repeated `--runs` times and the median of the runs'
percentiles reported, because the machine may be shared; the load average is recorded too.
`patient_first_search` times opening the index and one patient search, as each `lgd search`
command does; the other figures are searches on an index already open.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
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


META = "bench-meta.json"  # beside the index: what a --reuse run needs to know about the build


def build(out: Path, pages: int, seed: int) -> dict:
    """Index `pages` synthetic pages into `out`/fulltext; the build's figures, also saved in `out`."""
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    raw = 0
    patients: list[str] = []
    started = time.perf_counter()
    with FullText.open(out) as ft:
        batch: list[PageDoc] = []
        for page in synthetic_pages(pages, seed):
            raw += len(page.text.encode())
            if page.page == 1:
                patients.append(page.nhs_number)
            batch.append(page)
            if len(batch) == 5000:
                ft.add_pages(batch)
                batch.clear()
                print(f"indexed {len(patients) * PAGES_PER_PATIENT} pages", file=sys.stderr)
        ft.add_pages(batch)
    meta = {
        "pages": pages,
        "seed": seed,
        "raw_text_bytes": raw,
        "indexing_pages_per_second": round(pages / (time.perf_counter() - started), 1),
        "patients": patients,
    }
    (out / META).write_text(json.dumps(meta))
    return meta


def time_queries(out: Path, patients: list[str], seed: int) -> dict[str, dict[str, list[float]]]:
    rng = random.Random(seed)
    latency: dict[str, dict[str, list[float]]] = {}
    with FullText.open(out, create=False) as ft:
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


def time_first_searches(out: Path, patients: list[str], seed: int, repeat: int = 2) -> list[float]:
    """Patient-filtered searches each on a freshly opened index, as every `lgd search` command runs."""
    rng = random.Random(seed)
    times = []
    for q in sum(QUERIES.values(), []) * repeat:
        nhs = rng.choice(patients)
        t = time.perf_counter()
        with FullText.open(out, create=False) as ft:
            ft.search(q, nhs, 10)
        times.append(time.perf_counter() - t)
    return times


def summary(latency: dict[str, dict[str, list[float]]]) -> dict:
    return {
        scope: {
            style: {"p50": round(1000 * percentile(t, 0.5), 1), "p95": round(1000 * percentile(t, 0.95), 1)}
            for style, t in by_style.items()
        }
        | {"all": {"p50": round(1000 * percentile(sum(by_style.values(), []), 0.5), 1), "p95": round(1000 * percentile(sum(by_style.values(), []), 0.95), 1)}}
        for scope, by_style in latency.items()
    }


def timed(out: Path, patients: list[str], seed: int, runs: int) -> dict:
    """Each percentile as the median over `runs` identical timing runs, with every run's figures."""
    each = [
        summary(time_queries(out, patients, seed) | {"patient_first_search": {"all": time_first_searches(out, patients, seed)}})
        for _ in range(runs)
    ]
    median = {
        scope: {
            style: {p: round(statistics.median(run[scope][style][p] for run in each), 1) for p in ("p50", "p95")}
            for style in by_style
        }
        for scope, by_style in each[0].items()
    }
    return {"median_of_runs": median, "runs": [{s: run[s]["all"] for s in run} for run in each]}


def segments(out: Path) -> int:
    return len(list((out / "fulltext").glob("*.seg")))


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pages", type=int, default=100_000)
    parser.add_argument("--out", type=Path, default=Path("/tmp/lgd-bench-search"))
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--runs", type=int, default=3, help="timing runs per index state; the median is reported")
    parser.add_argument("--reuse", type=Path, metavar="DIR", help="time queries on the index already built in DIR (by --out); build nothing, optimise nothing")
    parser.add_argument("--no-optimize", action="store_true", help="stop after timing the index as ingested, leaving it so")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")

    if args.reuse:
        if not (args.reuse / META).exists():
            parser.error(f"{args.reuse} holds no index built by this benchmark (no {META}); build one with --out {args.reuse} --no-optimize")
        meta = json.loads((args.reuse / META).read_text())
        figures = {
            "reused": str(args.reuse),
            "pages": meta["pages"],
            "segments": segments(args.reuse),
            "index_vs_raw_text": round(folder_bytes(args.reuse / "fulltext") / meta["raw_text_bytes"], 3),
            "cpus": os.cpu_count(),
            "load_before": load(),
            "latency_ms": timed(args.reuse, meta["patients"], meta["seed"], args.runs),
            "load_after": load(),
        }
    else:
        meta = build(args.out, args.pages, args.seed)
        size = folder_bytes(args.out / "fulltext")
        figures = {
            "pages": args.pages,
            "cpus": os.cpu_count(),
            "raw_text_bytes": meta["raw_text_bytes"],
            "index_bytes": size,
            "index_vs_raw_text": round(size / meta["raw_text_bytes"], 3),
            "indexing_pages_per_second": meta["indexing_pages_per_second"],
            "segments_as_ingested": segments(args.out),
            "load_before_timing": load(),
            "latency_ms_as_ingested": timed(args.out, meta["patients"], args.seed, args.runs),
        }
        if not args.no_optimize:
            with FullText.open(args.out, create=False) as ft:
                started = time.perf_counter()
                ft.optimize()
                figures["optimize_seconds"] = round(time.perf_counter() - started, 1)
            optimized_size = folder_bytes(args.out / "fulltext")
            figures |= {
                "index_bytes_optimized": optimized_size,
                "index_vs_raw_text_optimized": round(optimized_size / meta["raw_text_bytes"], 3),
                "latency_ms_optimized": timed(args.out, meta["patients"], args.seed, args.runs),
            }
        figures["load_after_timing"] = load()
    text = json.dumps(figures, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
