"""Benchmark the digitising queue (issue 15): its overhead per page against a local run, and the writer's ceiling.

    .venv/bin/python -m tests.benchmarks.bench_queue --docs 5 --doc-pages 8 --writer-docs 200

1. Overhead. The same generated pages are digitised twice: by `lgd digitise --jobs 1` (one local
   worker process) and by `lgd digitise --queue` with one `lgd worker --concurrency 1` on a private
   redis-server. CPU time (user + system of every process: writer, worker and its pool, redis) is
   the figure that matters on a shared machine; wall time is reported beside it. The worker's own
   start-up and shutdown (imports, engine load) is measured on its own with no documents and
   taken out for the per-page figure, since a bureau's workers start once for millions of pages.
2. Writer ceiling. Workers are simulated by results computed once beforehand: one real reading
   (page facts JSON and PDF/A) is copied into the shared store under the keys of many distinct
   inputs (distinct bytes and patients), so `lgd digitise --queue` finds every result ready and
   only stores: preflight, PDF/A by content hash, one SQLite transaction, the Whoosh index, audit.
   It runs twice on the same results in one invocation: with `--index-every 1` (one Whoosh commit
   per document, as before grouped index commits) and with the default grouping, so both figures
   share the machine's load. `--writer-only` skips part 1 and keeps its figures from --out.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.queue_support import LGD, REPO, free_port, make_inputs, wait_for, wait_ready

ENV = {**os.environ, "OMP_THREAD_LIMIT": "1"}
CPU_S_PER_PAGE_ISSUE = 0.5  # the issue's figure for the arithmetic, beside this run's own


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def redis(port: int) -> subprocess.Popen:
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
                             "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(lambda: subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True).returncode == 0,
             10, "redis-server")
    return proc


def start_worker(url: str, log: Path) -> subprocess.Popen:
    return subprocess.Popen([*LGD, "worker", "--queue", url, "--concurrency", "1"], cwd=REPO, env=ENV,
                            stdout=log.open("w"), stderr=subprocess.STDOUT)


def stop(proc: subprocess.Popen) -> None:
    """A warm shutdown, waited for: the pool's CPU time then counts in ours (RUSAGE_CHILDREN)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Handle:
    def __init__(self, proc):
        self.proc = proc
        self.log = Path(os.devnull)


@contextmanager
def queue_with_worker(log: Path) -> Iterator[str]:
    """A fresh redis-server (kombu keeps connections to an old one pooled) and one ready worker; both
    stopped and waited for on the way out, whatever happened."""
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    server = redis(port)
    worker = None
    try:
        worker = start_worker(url, log)
        wait_ready(url, [Handle(worker)])
        yield url
    finally:
        if worker is not None:
            stop(worker)
        server.terminate()
        server.wait()


def digitise(*args) -> tuple[float, float, dict]:
    """(CPU s, wall s, --json report) of one lgd digitise."""
    cpu, wall = children_cpu(), time.monotonic()
    done = subprocess.run([*LGD, "digitise", *map(str, args), "--json"], cwd=REPO, env=ENV, capture_output=True,
                          text=True)
    if done.returncode != 0:
        raise SystemExit(f"lgd digitise failed ({done.returncode}): {done.stderr[-2000:]}")
    return children_cpu() - cpu, time.monotonic() - wall, json.loads(done.stdout)


def overhead(work: Path, docs: int, doc_pages: int) -> dict:
    scans = make_inputs(work / "inputs", (doc_pages,) * docs)
    local_cpu, local_wall, local = digitise(scans, "--archive", work / "local", "--jobs", "1")
    pages = local["summary"]["pages"]

    cpu = children_cpu()
    with queue_with_worker(work / "idle-worker.log"):
        pass
    fixed_cpu = children_cpu() - cpu

    cpu = children_cpu()
    with queue_with_worker(work / "worker.log") as url:
        _, queued_wall, queued = digitise(scans, "--archive", work / "queued", "--queue", url)
    queued_cpu = children_cpu() - cpu
    assert queued["summary"]["pages"] == pages and queued["summary"]["ok"] == docs, queued["summary"]
    per_page_local = local_cpu / pages
    per_page_queued = (queued_cpu - fixed_cpu) / pages
    return {
        "documents": docs, "pages": pages,
        "local_cpu_s": round(local_cpu, 2), "local_wall_s": round(local_wall, 2),
        "queued_cpu_s": round(queued_cpu, 2), "queued_wall_s_worker_running": round(queued_wall, 2),
        "worker_start_stop_cpu_s": round(fixed_cpu, 2),
        "local_cpu_s_per_page": round(per_page_local, 3),
        "queued_cpu_s_per_page_without_worker_start": round(per_page_queued, 3),
        "overhead_per_page_pct": round(100 * (per_page_queued - per_page_local) / per_page_local, 1),
        "overhead_including_worker_start_pct": round(100 * (queued_cpu - local_cpu) / local_cpu, 1),
        "overhead_wall_pct": round(100 * (queued_wall - local_wall) / local_wall, 1),
    }


def writer_ceiling(work: Path, docs: int, doc_pages: int, index_every: int | None = None) -> dict:
    """Store `docs` pre-computed results of `doc_pages` pages each; pages per second of the writer alone."""
    from digitise.model import ScanDoc
    from digitise.options import DigitiseOptions
    from fixtures import names, nhs
    from fixtures.containers import ndr_name
    from pipelines.ingest import worker
    from pipelines.ingest.run import input_checksum
    from pipelines.queue import wire
    from pipelines.queue.store import FolderStore

    label = "default" if index_every is None else str(index_every)
    if not (work / "writer-base").exists():
        make_inputs(work / "writer-base", (doc_pages,))
    base = next((work / "writer-base" / "scans").iterdir())
    worker.init(DigitiseOptions())
    done = worker.digitise(worker.Job(0, ScanDoc(source=base.name, inputs=(base,)), work / f"writer-job-{label}"))
    assert done.doc is not None and done.doc.pdfa is not None, done.reason
    scans = work / f"writer-inputs-{label}"
    scans.mkdir()
    store = FolderStore(work / f"store-{label}")
    store.ensure()
    rng = random.Random(15)
    seen: set[str] = set()
    for i in range(docs):
        patient = names.make_patient(rng)
        while patient.nhs_number in seen:
            patient = names.make_patient(rng)
        seen.add(patient.nhs_number)
        assert nhs.is_valid(patient.nhs_number)
        path = scans / ndr_name(patient, 1, 1, "pdf")
        path.write_bytes(base.read_bytes() + f"%lgd-bench {i}\n".encode())  # distinct bytes, same pages
        key, _ = input_checksum([path])
        store.put_result(key, wire.dump_done(done, "tesseract", f"{key}.pdf"), done.doc.pdfa)
    port = free_port()
    server = redis(port)
    try:
        every = () if index_every is None else ("--index-every", index_every)
        cpu, wall, report = digitise(scans, "--archive", work / f"writer-archive-{label}", "--queue",
                                     f"redis://127.0.0.1:{port}/0", "--store", store.root, *every)
    finally:
        server.terminate()
        server.wait()
    assert report["summary"]["ok"] == docs, report["summary"]
    pages = report["summary"]["pages"]
    return {"index_every": index_every or "default (50 documents or 10 s)", "documents": docs, "pages": pages, "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
            "pages_per_second": round(pages / wall, 1), "pages_per_cpu_second": round(pages / cpu, 1)}


def arithmetic(cpu_per_page: float, writer_pps: float, pages: float = 30e6) -> dict:
    cpu_s = pages * cpu_per_page
    return {"pages": int(pages), "cpu_s_per_page": cpu_per_page, "ocr_cpu_days": round(cpu_s / 86400, 1),
            "writer_hours_at_ceiling": round(pages / writer_pps / 3600, 1),
            "worker_cores_to_saturate_writer": round(writer_pps * cpu_per_page, 1),
            "days_on_one_2_core_machine": round(cpu_s / 2 / 86400, 1)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--docs", type=int, default=5)
    p.add_argument("--doc-pages", type=int, default=8)
    p.add_argument("--writer-docs", type=int, default=200)
    p.add_argument("--writer-doc-pages", type=int, default=10)
    p.add_argument("--out", type=Path, default=Path(__file__).with_name("last-run-queue.json"))
    p.add_argument("--writer-only", action="store_true", help="measure the writer only; keep the overhead from --out")
    args = p.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="lgd-bench-queue-"))
    try:
        if args.writer_only:
            over = json.loads(args.out.read_text())["overhead"]
        else:
            over = overhead(work, args.docs, args.doc_pages)
            print(json.dumps({"overhead": over}, indent=2), file=sys.stderr)
        per_document = writer_ceiling(work, args.writer_docs, args.writer_doc_pages, index_every=1)
        print(json.dumps({"writer_commit_per_document": per_document}, indent=2), file=sys.stderr)
        ceiling = writer_ceiling(work, args.writer_docs, args.writer_doc_pages)
        print(json.dumps({"writer": ceiling}, indent=2), file=sys.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    load = os.getloadavg()
    result = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load_average": [round(x, 2) for x in load]},
        "overhead": over, "writer_commit_per_document": per_document, "writer": ceiling,
        "writer_speed_up": round(ceiling["pages_per_second"] / per_document["pages_per_second"], 2),
        "thirty_million_pages": {
            "at_issue_figure": arithmetic(CPU_S_PER_PAGE_ISSUE, ceiling["pages_per_second"]),
            "at_this_run": arithmetic(over["local_cpu_s_per_page"], ceiling["pages_per_second"]),
        },
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
