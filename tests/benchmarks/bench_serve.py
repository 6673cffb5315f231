"""`lgd serve` under load: p50/p95 of the JSON API with 20 concurrent clients on a 100,000-page archive.

    .venv/bin/python -m tests.benchmarks.bench_serve --out /tmp/lgd-bench-serve --json tests/benchmarks/last-run-serve.json
    .venv/bin/python -m tests.benchmarks.bench_serve --reuse /tmp/lgd-bench-serve --json tests/benchmarks/last-run-serve.json

Build (minutes; kept in --out for --reuse): a small generated batch (4 patients, seed 7) is
digitised for real with `lgd digitise`, so its pages have PDF/As to render; then the 100,000
synthetic card pages of bench_search (10 a patient) are recorded in the same archive's catalogue,
one document a patient, with dated entries and word boxes, and indexed in its Whoosh index under
the catalogue's document ids, so searches find hits the catalogue backs. Accounts are made with
`lgd user add` (a practice-admin, then a clerk); each run makes a fresh token with `lgd user token`.

Measured: `lgd serve` is started as a subprocess on a free port. For each kind of request
(patient-filtered search, archive-wide search, page JSON, page image with its cache files
deleted, the same images cached) the same request list is made by 1 client in turn (the
baseline), then shared among 5 and among 20 concurrent clients (threads, one httpx.Client each,
started together; the clients run on the same 2 cores as the server). Uncached images are
timed in rounds, the cache emptied before each, on 20 digitised pages (one a client at 20). Per kind: p50, p95, max, requests/s, non-200 answers,
and the server process's CPU time (from /proc) per request and as a share of the wall time.
In-process baselines, just before each search kind's HTTP timings: `pipelines.search.search`
on the same queries without HTTP, on a catalogue and index opened once, and opened per search
as the service's handler does. The
load average (os.getloadavg) is recorded around every phase: the machine may be shared.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from index import Catalogue, FullText
from index.rows import DocumentRow, EntryRow, PageRow, PatientRow
from pipelines.search import open_archive, search
from tests.benchmarks.bench_search import PAGES_PER_PATIENT, QUERIES, percentile, synthetic_pages

REPO = Path(__file__).resolve().parents[2]
LGD, PYTHON = str(REPO / ".venv/bin/lgd"), str(REPO / ".venv/bin/python")
META = "bench-serve-meta.json"
CLIENTS = 20
LEVELS = (1, 5, CLIENTS)  # concurrent clients; each level makes the same requests
ALL_QUERIES = sum(QUERIES.values(), [])


# -- the archive ---------------------------------------------------------------------------------

def words_of(lines: list[str]) -> tuple:
    """Word tuples (text, x0, y0, x1, y1, confidence, line, block) laid out line by line, 300 dpi."""
    out = []
    for n, line in enumerate(lines):
        x, y = 120, 180 + 110 * n
        for w in line.split():
            out.append((w, x, y, x + 24 * len(w), y + 44, 90.0, n, 0))
            x += 24 * len(w) + 30
    return tuple(out)


def record_patient(catalogue: Catalogue, docs: list, n: int) -> list:
    """One synthetic patient's pages as a digitised document; the pages for the index, with its id."""
    nhs = docs[0].nhs_number
    pages, entries = [], []
    for d in docs:
        lines = d.text.split("\n")
        words = words_of(lines)
        pages.append(PageRow(d.page, 2480, 3508, 300, 0, 0.0, False, "0" * 16, None, 90.0, False, "card", d.text, words))
        entries += [EntryRow(d.page, when, line[:8], line[9:], (120, 180 + 110 * i, 2300, 224 + 110 * i), 90.0)
                    for i, (when, line) in enumerate(zip(d.dates, lines, strict=True))]
    source = f"bench-{nhs}.pdf"
    row = DocumentRow(source, f"{n:064x}", nhs, len(pages), "ok", f"pdf/{source}", True, None, None, None, None, 1)
    doc_id = catalogue.record_document(PatientRow(nhs, f"Bench Patient{n}", dt.date(1950, 1, 1)), row, pages, entries)
    return [dataclasses.replace(d, document_id=doc_id, source=source) for d in docs]


def add_synthetic(archive: Path, pages: int, seed: int) -> tuple[list[str], list[int]]:
    """`pages` synthetic pages into the catalogue and the index; the patients' NHS numbers and document ids."""
    patients: list[str] = []
    documents: list[int] = []
    with Catalogue.open(archive, create=False) as catalogue, FullText.open(archive, create=False) as fulltext:
        known = {p.nhs_number for p in catalogue.patients()}
        batch, one = [], []
        for page in synthetic_pages(2 * pages, seed):  # more than needed: a generated number may repeat
            if len(patients) * PAGES_PER_PATIENT >= pages:
                break
            one.append(page)
            if len(one) < PAGES_PER_PATIENT:
                continue
            if one[0].nhs_number not in known:  # one document a patient
                known.add(one[0].nhs_number)
                patients.append(one[0].nhs_number)
                batch += record_patient(catalogue, one, len(patients))
                documents.append(batch[-1].document_id)
            one = []
            if len(batch) >= 5000:
                fulltext.add_pages(batch)
                batch.clear()
                print(f"recorded and indexed {len(patients) * PAGES_PER_PATIENT} pages", file=sys.stderr)
        fulltext.add_pages(batch)
    return patients, documents


def lgd(*args: str) -> str:
    return subprocess.run([LGD, *args], check=True, capture_output=True, text=True).stdout.strip()


def build(out: Path, pages: int, seed: int) -> dict:
    """A real digitised batch, then the synthetic pages, then the accounts; what a --reuse run needs."""
    shutil.rmtree(out, ignore_errors=True)
    batch, archive = out / "batch", out / "archive"
    started = time.perf_counter()
    subprocess.run([PYTHON, "-m", "fixtures.generate", "--out", str(batch), "--patients", "4", "--seed", "7"],
                   check=True, cwd=REPO, stdout=subprocess.DEVNULL)
    done = subprocess.run([LGD, "digitise", str(batch / "scans"), "--archive", str(archive), "--jobs", "2"],
                          stdout=subprocess.DEVNULL)
    if done.returncode not in (0, 1):  # 1: some inputs quarantined, the rest digitised
        raise SystemExit(f"lgd digitise exited {done.returncode}")
    digitised = time.perf_counter() - started
    with Catalogue.open(archive, create=False) as catalogue:
        images = [f"{d.id}-{n}" for d in catalogue.documents(status="ok") for n in range(1, d.page_count + 1)]
    started = time.perf_counter()
    patients, documents = add_synthetic(archive, pages, seed)
    lgd("user", "add", "admin", "--role", "practice-admin", "--no-password", "--archive", str(archive))
    lgd("user", "add", "bench", "--role", "clerk", "--no-password", "--archive", str(archive), "--as", "admin")
    built = {"digitise": round(digitised), "synthetic": round(time.perf_counter() - started)}
    meta = {"synthetic_pages": len(patients) * PAGES_PER_PATIENT, "image_pages": images, "patients": patients,
            "documents": documents, "seed": seed, "build_seconds": built}
    (out / META).write_text(json.dumps(meta))
    return meta


# -- the server and the load ---------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(archive: Path, log: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen([LGD, "serve", "--archive", str(archive), "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=log.open("wb"))
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"lgd serve exited {proc.returncode}; see {log}")
        try:
            httpx.get(base + "/api/v1/session", timeout=2)
            return proc, base
        except httpx.TransportError:
            time.sleep(0.2)
    proc.terminate()
    raise SystemExit("lgd serve did not answer within 120 s")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def ms(seconds: float) -> float:
    return round(1000 * seconds, 1)


def run_clients(base: str, token: str, plans: list[list[tuple[str, dict]]], server: int) -> dict:
    """Each plan's URLs in order on its own client; all clients start together. Latency of each request."""
    times: list[float] = []
    statuses: dict[int, int] = {}
    lock, ready = threading.Lock(), threading.Barrier(len(plans) + 1)

    def client(urls: list[tuple[str, dict]]) -> None:
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=300) as c:
            c.get("/api/v1/session")  # connect first: time requests, not TCP set-up
            ready.wait()
            for path, params in urls:
                t = time.perf_counter()
                status = c.get(path, params=params).status_code
                with lock:
                    times.append(time.perf_counter() - t)
                    statuses[status] = statuses.get(status, 0) + 1

    threads = [threading.Thread(target=client, args=(p,)) for p in plans]
    for t in threads:
        t.start()
    ready.wait()
    cpu, load_before, started = cpu_seconds(server), load(), time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    return {"times": times, "wall": wall, "cpu": cpu_seconds(server) - cpu, "statuses": statuses,
            "load": [load_before, load()]}


def summary(runs: list[dict], clients: int) -> dict:
    """One kind's figures over its rounds (several only for uncached images, each on an emptied cache)."""
    times, wall = sum((r["times"] for r in runs), []), sum(r["wall"] for r in runs)
    statuses: dict[int, int] = {}
    for r in runs:
        for code, n in r["statuses"].items():
            statuses[code] = statuses.get(code, 0) + n
    return {"clients": clients, "rounds": len(runs), "requests": len(times), "p50_ms": ms(percentile(times, 0.5)),
            "p95_ms": ms(percentile(times, 0.95)), "max_ms": ms(max(times)), "requests_per_s": round(len(times) / wall, 1),
            "wall_s": round(wall, 2), "server_cpu_ms_per_request": ms(sum(r["cpu"] for r in runs) / len(times)),
            "server_cpu_share_of_wall": round(sum(r["cpu"] for r in runs) / wall, 2), "statuses": statuses,
            "load": [runs[0]["load"][0], runs[-1]["load"][1]]}


def request_lists(meta: dict, per_client: dict[str, int], seed: int) -> dict[str, list[tuple[str, dict]]]:
    """Per kind, the requests of one round, (path, query); with n clients, client c makes every n-th from the c-th."""
    rng = random.Random(seed)
    patients, images = meta["patients"], meta["image_pages"][:CLIENTS]  # uncached: one page a client
    pages = [f"{rng.choice(meta['documents'])}-{rng.randrange(1, PAGES_PER_PATIENT + 1)}" for _ in range(500)]
    count = {kind: CLIENTS * n for kind, n in per_client.items()}

    def query(i: int, patient: bool) -> tuple[str, dict]:
        q = ALL_QUERIES[i % len(ALL_QUERIES)]
        return "/api/v1/search", {"q": q, "patient": patients[(i * 7919) % len(patients)]} if patient else {"q": q}

    def image(i: int) -> tuple[str, dict]:
        return f"/api/v1/pages/{images[i % len(images)]}/image", {}

    return {
        "search_patient": [query(i, True) for i in range(count["search_patient"])],
        "search_archive": [query(i, False) for i in range(count["search_archive"])],
        "page_json": [(f"/api/v1/pages/{pages[i % len(pages)]}", {}) for i in range(count["page_json"])],
        "image_uncached": [image(i) for i in range(CLIENTS)],  # a round; the cache is emptied before each
        "image_cached": [image(i) for i in range(count["image_cached"])],  # the same pages, left cached
    }


def clear_image_cache(archive: Path) -> None:
    for f in (archive / "cache" / "pages").glob("*.jpg"):
        f.unlink()


def seconds(call, *args, **kwargs) -> float:
    started = time.perf_counter()
    call(*args, **kwargs)
    return time.perf_counter() - started


def search_opened(archive: Path, q: str, nhs: str | None) -> None:
    """One search as the service's handler makes it: catalogue and index opened for it, then closed."""
    catalogue, fulltext = open_archive(archive)
    try:
        search(catalogue, fulltext, q, actor="bench", nhs_number=nhs)
    finally:
        fulltext.close()
        catalogue.close()


def in_process(archive: Path, requests: list[tuple[str, dict]]) -> dict:
    """The same searches without HTTP: on a catalogue and index opened once, and opened per search."""
    calls = [(params["q"], params.get("patient")) for _, params in requests]
    catalogue, fulltext = open_archive(archive)
    with catalogue, fulltext:
        once = [seconds(search, catalogue, fulltext, q, actor="bench", nhs_number=nhs) for q, nhs in calls]
    each = [seconds(search_opened, archive, q, nhs) for q, nhs in calls]
    return {name: {"p50_ms": ms(percentile(t, 0.5)), "p95_ms": ms(percentile(t, 0.95)), "max_ms": ms(max(t))}
            for name, t in (("open_once", once), ("open_per_search", each))} | {"load_after": load()}


def measure(out: Path, meta: dict, per_client: dict[str, int], seed: int) -> dict:
    archive = out / "archive"
    plans = request_lists(meta, per_client, seed)
    figures: dict = {"cpus": os.cpu_count(), "load_start": load(), "in_process": {}, "http": {}}
    token = lgd("user", "token", "bench", "--archive", str(archive), "--as", "admin")
    proc, base = start_server(archive, out / "serve.log")
    try:
        for kind, flat in plans.items():
            if kind.startswith("search"):  # just before the HTTP timings, the server idle
                figures["in_process"][kind] = in_process(archive, flat)
            results = {}
            for n in LEVELS:
                runs = []
                for _ in range(per_client[kind] if kind == "image_uncached" else 1):
                    if kind == "image_uncached":
                        clear_image_cache(archive)
                    runs.append(run_clients(base, token, [flat[c::n] for c in range(n)], proc.pid))
                results[f"clients_{n}"] = summary(runs, n)
                print(f"{kind} {n} clients: {results[f'clients_{n}']}", file=sys.stderr)
            results["p95_ratio_20_to_1"] = round(results["clients_20"]["p95_ms"] / results["clients_1"]["p95_ms"], 2)
            results["distinct_requests"] = len({(p, tuple(q.items())) for p, q in flat})
            figures["http"][kind] = results
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    figures["load_end"] = load()
    return figures


def table(figures: dict) -> str:
    rows = ["| kind | 1 client p50 / p95 ms | 5 clients p50 / p95 ms | 20 clients p50 / p95 ms | p95 20 / 1 "
            "| req/s 1 / 20 clients |", "|---|---|---|---|---|---|"]
    for kind, r in figures["http"].items():
        cells = [f"{r[f'clients_{n}']['p50_ms']} / {r[f'clients_{n}']['p95_ms']}" for n in LEVELS]
        rows.append(f"| {kind} | {' | '.join(cells)} | {r['p95_ratio_20_to_1']}x | "
                    f"{r['clients_1']['requests_per_s']} / {r['clients_20']['requests_per_s']} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pages", type=int, default=100_000, help="synthetic pages (besides the digitised ones)")
    parser.add_argument("--out", type=Path, default=Path("/tmp/lgd-bench-serve"))
    parser.add_argument("--reuse", type=Path, metavar="DIR", help="time the archive already built in DIR (by --out)")
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--requests", type=int, default=10, help="requests per client for searches and pages "
                        "(archive-wide searches: half; uncached images: half as many rounds of one distinct page each)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so `finally` stops the server
    out = args.reuse or args.out
    if args.reuse:
        if not (out / META).exists():
            parser.error(f"{out} holds no archive built by this benchmark (no {META})")
        meta = json.loads((out / META).read_text())
    else:
        meta = build(out, args.pages, args.seed)
    half = max(1, args.requests // 2)
    per_client = {"search_patient": args.requests, "search_archive": half, "page_json": args.requests,
                  "image_uncached": half, "image_cached": args.requests}
    figures = {"archive": {"synthetic_pages": meta["synthetic_pages"], "digitised_pages": len(meta["image_pages"]),
                           "build_seconds": meta["build_seconds"], "reused": bool(args.reuse)},
               "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
               **measure(out, meta, per_client, args.seed)}
    print(table(figures))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
