"""Which OCR engine reads scans, and how many worker processes: --engine, --language, $LGD_ENGINE, memory-bound defaults.

The engine defaults to $LGD_ENGINE (a bureau sets it once), else `auto`. The number of worker
processes defaults to the CPU count, but no more than the memory available holds: a worker
with PP-OCR loaded peaks near a gigabyte, so 32 cores with 16 GB free get 13 workers, not 32.
"""

from __future__ import annotations

import argparse
import contextlib
import os
from pathlib import Path

from digitise.options import DEFAULT_ENGINE, ENGINE_CHOICES, DigitiseOptions
from pipelines.errors import ExitCode, LgdError

ENGINE_ENV = "LGD_ENGINE"
# Peak resident memory of one worker process, rounded up from tests/benchmarks/last-run-ocr-engines*.json
# (auto 813-947 MB, ppocr 1135 MB, tesseract 258 MB), plus room for a large page image.
WORKER_MB = {"auto": 1200, "ppocr": 1300}
OTHER_WORKER_MB = 400
ENGINE_HELP = ("OCR engine. auto: Tesseract reads every page, and PP-OCRv6 small reads again the result slips and "
               "the hand-written cards and envelope fronts (those Tesseract reads with less than print's "
               "confidence), keeping the better reading; reads hand-writing far better than Tesseract alone at "
               "about twice its CPU and ~1 GB per worker. tesseract: made for print (typed letters, typed card "
               "entries); the cheapest, but reads only about three quarters of hand-written words. ppocr: "
               "PP-OCRv6 small on every page; print slightly worse than Tesseract, about 3x its CPU. "
               "tesseract-cli: the tesseract program per page (slower). none: image-only PDF/A, every page "
               f"flagged unreadable. Default: ${ENGINE_ENV}, else {DEFAULT_ENGINE}")


def add_engine_options(p: argparse.ArgumentParser, language_help: str) -> None:
    p.add_argument("--engine", choices=sorted(ENGINE_CHOICES), default=None, help=ENGINE_HELP)
    p.add_argument("--language", default="eng", help=language_help)


def engine(args: argparse.Namespace) -> str:
    """The engine asked for: --engine, else $LGD_ENGINE, else the default; a bad $LGD_ENGINE is a usage error."""
    return args.engine or configured_engine()


def configured_engine() -> str:
    """$LGD_ENGINE, else the default: what every reading without an --engine of its own uses (retries, receiving)."""
    named = os.environ.get(ENGINE_ENV, "").strip()
    if not named:
        return DEFAULT_ENGINE
    if named not in ENGINE_CHOICES:
        raise LgdError(f"${ENGINE_ENV}={named!r} is not an OCR engine; choose one of "
                       f"{', '.join(sorted(ENGINE_CHOICES))} (or unset it)", ExitCode.usage, "usage")
    return named


def configured_options() -> DigitiseOptions:
    """The options of a reading that has no --engine of its own (a quarantine retry, a received pack)."""
    return DigitiseOptions(engine=configured_engine())


def default_workers(engine_name: str, cpus: int | None = None, available_mb: int | None = None) -> int:
    """The CPU count, cut to what the memory available holds for workers of this engine (at least 1)."""
    cpus = cpus if cpus is not None else (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                                          else os.cpu_count() or 1)
    available_mb = available_mb if available_mb is not None else memory_available_mb()
    if available_mb is None:
        return max(1, cpus)
    per_worker = WORKER_MB.get(engine_name, OTHER_WORKER_MB)
    return max(1, min(cpus, available_mb // per_worker))


def memory_available_mb() -> int | None:
    """Memory this process may still use: the kernel's MemAvailable, or the cgroup's limit if lower; None if unknown."""
    found: list[int] = []
    with contextlib.suppress(OSError, ValueError, IndexError):
        found += [int(line.split()[1]) // 1024 for line in Path("/proc/meminfo").read_text().splitlines()
                  if line.startswith("MemAvailable:")]
    with contextlib.suppress(OSError):  # a container's limit (cgroup v2), which MemAvailable does not show
        limit, used = (Path("/sys/fs/cgroup", name).read_text().strip() for name in ("memory.max", "memory.current"))
        if limit.isdigit() and used.isdigit():
            found.append((int(limit) - int(used)) // (1024 * 1024))
    return min(found) if found else None
