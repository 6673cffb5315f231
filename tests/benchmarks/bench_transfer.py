"""Transfer packs on generated patients: paper and sheets saved, media bytes, build time, encryption speed.

    .venv/bin/python -m tests.benchmarks.bench_transfer --json tests/benchmarks/last-run-transfer.json

Uses the batch and archive that bench_reconcile leaves in its --out folder (run that first, or
pass --patients/--seed to make one here). For every patient it reconciles against the GP2GP
rendering of the coded record and builds four packs: an encrypted 7z, a print pack
(double-sided layout), the same print pack with --granularity entry (cards cut down to their
uncovered entries where safe) and a 7z with the coded record rendered in (--with-electronic).

"Print everything" is what practices were told to do: print the whole paper record and the
whole coded record. The coded record's printout is estimated from its event count at
EVENTS_PER_PRINTED_PAGE events per page (pipelines/transfer/electronic.py), double-sided.
Encryption speed is 7-Zip's AES-256 run time on a 64 MB file against copying the same file
in the same run (the baseline), since the machine is shared and absolute speeds vary.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from index import Catalogue
from pipelines.transfer import sevenzip
from pipelines.transfer.electronic import EVENTS_PER_PRINTED_PAGE
from pipelines.transfer.pack import PackOptions, build_pack
from pipelines.transfer.printing import sheets
from tests.benchmarks.bench_reconcile import digitise
from fixtures.generate import generate_batch

PASSPHRASE = "benchmark passphrase of some length for the pack"


def encryption_speed(work: Path, megabytes: int = 64, runs: int = 3) -> dict[str, float]:
    data = work / "payload.bin"
    data.write_bytes(os.urandom(megabytes * 1_000_000))
    copy_s, seven_s = [], []
    for i in range(runs):
        started = time.perf_counter()
        shutil.copyfile(data, work / f"copy{i}.bin")
        with open(work / f"copy{i}.bin", "rb") as f:
            os.fsync(f.fileno())
        copy_s.append(time.perf_counter() - started)
        seven_s.append(sevenzip.create(work / f"enc{i}.7z", [("payload.bin", data)], PASSPHRASE, stage_in=work))
    copy, seven = statistics.median(copy_s), statistics.median(seven_s)
    return {"megabytes": megabytes, "aes256_7z_mb_per_s": round(megabytes / seven, 1),
            "copy_mb_per_s": round(megabytes / copy, 1), "aes_vs_copy_time": round(seven / copy, 2)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--from", dest="source", type=Path, default=Path(tempfile.gettempdir()) / "lgd-bench-reconcile",
                        help="folder holding batch/ and archive/ (bench_reconcile's --out)")
    parser.add_argument("--patients", type=int, default=20, help="patients to generate when --from has none")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    batch_dir, source_archive = args.source / "batch", args.source / "archive"
    if not (source_archive / "catalogue.sqlite").exists():
        shutil.rmtree(args.source, ignore_errors=True)
        batch = generate_batch(batch_dir, args.patients, args.seed)
        digitise(batch, source_archive)
    work = Path(tempfile.mkdtemp(prefix="lgd-bench-transfer-"))
    archive = work / "archive"
    shutil.copytree(source_archive, archive)
    index = json.loads((batch_dir / "truth" / "index.json").read_text())
    rows = []
    with Catalogue.open(archive, create=False) as catalogue:
        for i, p in enumerate(index["patients"]):
            nhs, coded = p["nhs_number"], batch_dir / p["coded"]["gp2gp"]
            build_pack(catalogue, nhs, work / f"warm{i}", PackOptions("print"), coded_path=coded)  # reconcile once
            timings, results = {}, {}
            # print and print_entry keep the minimal pack so that the two granularities compare pack with pack;
            # print_default is what `lgd pack --format print` makes: the whole record when that is no longer.
            for name, options in (("7z", PackOptions("7z")), ("print", PackOptions("print", keep_minimal=True)),
                                  ("print_entry", PackOptions("print", granularity="entry", keep_minimal=True)),
                                  ("print_default", PackOptions("print")),
                                  ("7z_electronic", PackOptions("7z", with_electronic=True))):
                started = time.perf_counter()
                results[name] = build_pack(catalogue, nhs, work / f"{name}-{i}", options, passphrase=PASSPHRASE)
                timings[name] = time.perf_counter() - started
            plan, electronic = results["7z"].plan, results["7z_electronic"].document.electronic
            excerpts = results["print_entry"].document.excerpts
            gp_print_pages = -(-plan.coded_events // EVENTS_PER_PRINTED_PAGE)
            rows.append({
                "patient": nhs, "pages_total": plan.full_record_pages, "pages_included": len(plan.included),
                "coded_events": plan.coded_events, "gp_print_pages_estimate": gp_print_pages,
                "sheets_everything": sheets(plan.full_record_pages) + sheets(gp_print_pages),
                "sheets_print_pack": results["print"].sheets_pack,
                "print_pack_pages": results["print"].document.pages,
                "sheets_print_default": results["print_default"].sheets_pack,
                "printed_whole": int(results["print_default"].print_choice.printed == "whole_record"),
                "sheets_print_pack_entry": results["print_entry"].sheets_pack,
                "print_pack_entry_pages": results["print_entry"].document.pages,
                "pages_reduced": len(excerpts.reduced), "excerpt_pages": excerpts.pages, "crops": excerpts.crops,
                "media_bytes_7z": results["7z"].media_bytes, "media_bytes_7z_electronic": results["7z_electronic"].media_bytes,
                "electronic_pages": electronic.pages if electronic else 0,
                "seconds": {k: round(v, 3) for k, v in timings.items()},
            })
            print(f"{nhs}: {rows[-1]['pages_included']}/{rows[-1]['pages_total']} pages, "
                  f"{rows[-1]['sheets_print_pack']} vs {rows[-1]['sheets_everything']} sheets, "
                  f"entry granularity {rows[-1]['sheets_print_pack_entry']} ({len(excerpts.reduced)} cards as "
                  f"{excerpts.crops} excerpts), 7z {timings['7z']:.2f} s", file=sys.stderr)
    total = {k: sum(r[k] for r in rows) for k in ("pages_total", "pages_included", "coded_events", "gp_print_pages_estimate",
                                                   "sheets_everything", "sheets_print_pack", "print_pack_pages",
                                                   "sheets_print_default", "printed_whole",
                                                   "sheets_print_pack_entry", "print_pack_entry_pages",
                                                   "pages_reduced", "excerpt_pages", "crops",
                                                   "media_bytes_7z", "media_bytes_7z_electronic", "electronic_pages")}
    figures = {
        "patients": len(rows), "events_per_printed_page": EVENTS_PER_PRINTED_PAGE, "totals": total,
        "pages_printed_everything": total["pages_total"] + total["gp_print_pages_estimate"],
        "sheets_saved_by_print_pack": total["sheets_everything"] - total["sheets_print_pack"],
        "sheets_saved_by_printing_whole_when_shorter": total["sheets_print_pack"] - total["sheets_print_default"],
        # what --granularity entry saves on top of the page-granularity print pack (negative: it costs)
        "extra_sheets_saved_by_entry_granularity": total["sheets_print_pack"] - total["sheets_print_pack_entry"],
        "patients_entry_saves": sum(r["sheets_print_pack_entry"] < r["sheets_print_pack"] for r in rows),
        "patients_entry_costs": sum(r["sheets_print_pack_entry"] > r["sheets_print_pack"] for r in rows),
        "sheets_saved_by_media_pack": total["sheets_everything"],
        "median_build_seconds": {k: round(statistics.median(r["seconds"][k] for r in rows), 3)
                                 for k in ("7z", "print", "print_entry", "print_default", "7z_electronic")},
        "encryption": encryption_speed(work),
        "date": dt.date.today().isoformat(),
    }
    shutil.rmtree(work, ignore_errors=True)
    text = json.dumps(figures, indent=2)
    print(text)
    if args.json:
        args.json.write_text(json.dumps(figures | {"patients_detail": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
