"""Helpers for the queue tests: a real redis-server, real `lgd worker` processes, small generated inputs.

A session's tests share one redis-server (or $LGD_TEST_REDIS_URL, which scripts/test.sh
starts for the whole run); each pytest-xdist process uses a database of its own and empties
it before each test, so workers of one test never take another test's documents.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import REPO

LGD = [sys.executable, "-m", "pipelines.cli"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer(str):
    """A redis-server on a localhost port without persistence (so a restart loses every queue); str() is its URL."""

    port: int
    proc: subprocess.Popen | None

    def start(self) -> None:
        self.proc = subprocess.Popen(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: _answers(self.port), 10, "redis-server to start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None


@contextmanager
def redis_server(port: int | None = None) -> Iterator[RedisServer]:
    """A private redis-server on a free localhost port; yields its URL (without a database)."""
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is not installed: run scripts/setup.sh (apt package redis-server)")
    port = port or free_port()
    server = RedisServer(f"redis://127.0.0.1:{port}")
    server.port, server.proc = port, None
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def wait_for(check, seconds: float, what: str, every: float = 0.1):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {seconds} s waiting for {what}")


def database_url(server: str) -> str:
    """This xdist process's own database on `server`, emptied."""
    import redis

    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    db = 1 + int(worker.removeprefix("gw") or 0) % 15
    url = f"{server.rstrip('/')}/{db}"
    redis.Redis.from_url(url).flushdb()
    return url


class Worker:
    """One `lgd worker` process (concurrency 1) with its stderr in a file."""

    def __init__(self, url: str, log: Path, env: dict[str, str] | None = None, *args: str) -> None:
        self.log = log
        self._out = open(log, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([*LGD, "worker", "--queue", url, "--concurrency", "1", "--log-json", *args],
                                     stdout=self._out, stderr=subprocess.STDOUT, cwd=REPO,
                                     # its work folder in the test's own folder, not /tmp
                                     env={**os.environ, "TMPDIR": str(log.parent), **(env or {})},
                                     start_new_session=True)

    def events(self) -> list[dict]:
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.startswith('{"at"')]

    def stop(self) -> None:
        """SIGKILL the worker and its pool (its own process group): its test is over, and a warm
        shutdown would cost seconds of the suite's budget."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self._out.close()


@contextmanager
def workers(url: str, folder: Path, count: int = 1, env: dict[str, str] | None = None, *args: str) -> Iterator[list[Worker]]:
    started = [Worker(url, folder / f"worker-{i}.log", env, *args) for i in range(count)]
    try:
        wait_ready(url, started)
        yield started
    finally:
        for w in started:
            w.stop()


def wait_ready(url: str, started: list[Worker], seconds: float = 60) -> None:
    """Until every worker answers Celery's ping: then a batch is shared out among all of them."""
    from celery import Celery

    app = Celery(broker=url, set_as_current=False)
    try:
        def all_up() -> bool:
            for w in started:
                assert w.proc.poll() is None, w.log.read_text()
            return len(app.control.ping(timeout=0.5)) >= len(started)
        wait_for(all_up, seconds, f"{len(started)} lgd worker(s) to answer", every=0.2)
    finally:
        app.close()


def fake_tesseract(folder: Path, mode: str) -> dict[str, str]:
    """PATH with a `tesseract` that SIGKILLs the process that called it (the worker reading a page).

    mode "once": only the first page read anywhere (a worker killed once mid-document);
    "always": every page (a poison document). Version queries go to the real program.
    """
    real = shutil.which("tesseract")
    assert real is not None
    bin_dir = folder / "bin"
    bin_dir.mkdir(exist_ok=True)
    marker = folder / "killed-once"
    kill = f'mkdir "{marker}" 2>/dev/null && kill -9 $PPID' if mode == "once" else "kill -9 $PPID"
    script = bin_dir / "tesseract"
    script.write_text(f"""#!/bin/sh
case "$*" in *--version*|*--list-langs*) exec "{real}" "$@";; esac
{kill} && sleep 10
exec "{real}" "$@"
""")
    script.chmod(0o755)
    return {"PATH": f"{bin_dir}:{os.environ['PATH']}"}


def catalogue_facts(archive: Path) -> dict:
    """What the catalogue holds of each stored document, its pages and entries (no ids, times or paths)."""
    db = sqlite3.connect(archive / "catalogue.sqlite")
    try:
        docs = db.execute("SELECT id, source, sha256, nhs_number, page_count, status, pdfa_valid, part, parts, "
                          "indexed FROM documents ORDER BY source").fetchall()
        facts = {}
        for doc in docs:
            pages = db.execute("SELECT number, width, height, rotation, blank, phash, duplicate_of, confidence, "
                               "unreadable, kind, text, words FROM pages WHERE document_id = ? ORDER BY number",
                               (doc[0],)).fetchall()
            entries = db.execute("SELECT page, date, date_text, text, x0, y0, x1, y1, precision FROM entries "
                                 "WHERE document_id = ? ORDER BY page, y0, x0", (doc[0],)).fetchall()
            facts[doc[1]] = {"document": doc[1:], "pages": pages, "entries": entries}
        return facts
    finally:
        db.close()


def run(*args, timeout: float = 180, env: dict | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run([*LGD, *map(str, args)], capture_output=True, text=True, cwd=REPO, timeout=timeout,
                          env={**os.environ, **(env or {})})
    assert "Traceback" not in proc.stderr, proc.stderr
    if "--json" in map(str, args) and proc.stdout.strip():
        proc.json = json.loads(proc.stdout)
    return proc


def make_inputs(out: Path, sizes: tuple[int, ...]) -> Path:
    """One NDR-named PDF per size (that many pages), each a different synthetic patient, in out/scans."""
    from fixtures.generate import generate_pages

    scans = out / "scans"
    scans.mkdir(parents=True)
    for i, pages in enumerate(sizes):
        batch = generate_pages(out / f"gen{i}", pages, seed=100 + i)
        for pdf in (batch.scans).glob("*.pdf"):
            shutil.move(pdf, scans / pdf.name)
        shutil.rmtree(out / f"gen{i}")
    return scans


@pytest.fixture(scope="session")
def redis_base() -> Iterator[str]:
    """redis://HOST:PORT of the session's redis-server: $LGD_TEST_REDIS_URL's, else one started here."""
    given = os.environ.get("LGD_TEST_REDIS_URL")
    if given:
        parts = given.rstrip("/").split("/")
        yield "/".join(parts[:3])  # scheme, empty, host:port; each test picks its own database
        return
    with redis_server() as url:
        yield url


@pytest.fixture(scope="session")
def queue_scans(tmp_path_factory) -> Path:
    """Three short documents of three patients: 2, 1 and 1 pages (OCR is the cost of these tests)."""
    return make_inputs(tmp_path_factory.mktemp("queue-inputs"), (2, 1, 1))
