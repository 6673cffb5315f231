"""`lgd watch`, the hot folder, run as a user runs it: a subprocess watching a real folder, real OCR on one-page inputs.

One watcher (inotify) is fed, while it runs, a file copied in slowly in chunks, a file renamed in,
a half-written file still held open, a patient folder that waits for its `.done` marker, an input
that cannot be digitised, and a second copy of a stored input; other tests kill a watcher with
SIGKILL mid-way and start it again, and watch by polling as on a network share.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from PIL import Image, ImageDraw, ImageFont

from fixtures import nhs
from pipelines.queue import watch_folder
from tests.conftest import LGD, REPO, copy_with_accounts, run_lgd
from tests.queue_support import database_url, redis_base, workers  # noqa: F401 - redis_base is a fixture

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
QUIET = 1.0


def card(text: str) -> Image.Image:
    image = Image.new("L", (1240, 874), 245)
    ImageDraw.Draw(image).text((80, 200), text, fill=20, font=ImageFont.truetype(FONT, 36))
    return image


def card_pdf(seed: int) -> tuple[str, bytes]:
    """(NDR file name, bytes) of a one-page scanned card of a synthetic patient."""
    number = nhs.make(random.Random(seed))
    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"lgd-watch-card-{os.getpid()}-{seed}.pdf"
    card(f"12/03/2001 Asthma review, PEFR {300 + seed}").save(path, "PDF", resolution=150)
    data = path.read_bytes()
    path.unlink()
    return f"1of1_Lloyd_George_Record_[Jo Bloggs]_[{number}]_[01-02-1960].pdf", data


def patient_folder(parent: Path, seed: int) -> Path:
    folder = parent / f"{nhs.make(random.Random(seed))} Ann Other 03-05-1950"
    folder.mkdir(parents=True)
    card(f"05/06/2003 Hypertension, BP {120 + seed}/80").save(folder / "page1.png", dpi=(150, 150))
    return folder


def stored(archive: Path) -> list[tuple[str, str]]:
    """(source, sha256) of every stored document, read as another program would."""
    conn = sqlite3.connect(f"file:{archive / 'catalogue.sqlite'}?mode=ro", uri=True, timeout=5)
    try:
        return conn.execute("SELECT source, sha256 FROM documents WHERE status = 'ok' ORDER BY source").fetchall()
    finally:
        conn.close()


def stored_count(archive: Path) -> int:
    try:
        return len(stored(archive))
    except sqlite3.Error:
        return 0


@dataclass
class Watcher:
    """A running `lgd watch --log-json`, its stderr read line by line into events."""

    proc: subprocess.Popen
    events: list[dict] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    reader: threading.Thread | None = None

    @classmethod
    def start(cls, inbox: Path, archive: Path, *extra: str) -> Watcher:
        proc = subprocess.Popen([*LGD, "watch", str(inbox), "--archive", str(archive), "--log-json", "--jobs", "1",
                                 "--quiet-period", str(QUIET), *extra],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
                                start_new_session=True)
        watcher = cls(proc)
        watcher.reader = threading.Thread(target=watcher._read, daemon=True)
        watcher.reader.start()
        watcher.wait_for(lambda e: e["event"] == "start", 30)
        return watcher

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)
            if line.startswith("{"):
                self.events.append(json.loads(line))

    def inputs(self) -> dict[str, dict]:
        return {e["input"]: e for e in self.events if e["event"] == "input"}

    def wait_for(self, check, timeout: float = 60) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = next((e for e in list(self.events) if check(e)), None)
            if found is not None:
                return found
            assert self.proc.poll() is None or self.events, ("watcher ended", self.lines)
            time.sleep(0.05)
        raise AssertionError(f"no such event in {timeout} s: {self.lines}")

    def wait_input(self, rel: str, timeout: float = 60) -> dict:
        return self.wait_for(lambda e: e["event"] == "input" and e["input"] == rel, timeout)

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> int:
        os.kill(self.proc.pid, sig)
        code = self.proc.wait(timeout=60)
        self.reader.join(timeout=10)  # every line it wrote is read before anyone looks at the events
        return code


# --- one watcher, fed while it runs --------------------------------------------------------------


@dataclass
class Run:
    inbox: Path
    archive: Path
    watcher: Watcher
    names: dict[str, str]
    second_watcher: subprocess.CompletedProcess
    half_seen_at_end: bool
    can_tell: bool  # this file system answers whether a file is open for writing (Linux leases)
    folder_waited: bool
    exit_code: int


@pytest.fixture(scope="module")
def fed(tmp_path_factory) -> Run:
    root = tmp_path_factory.mktemp("watch")
    inbox, archive = root / "inbox", root / "archive"
    inbox.mkdir()
    slow_name, slow = card_pdf(1)
    renamed_name, renamed = card_pdf(2)
    half_name, half = card_pdf(3)
    watcher = Watcher.start(inbox, archive, "--require-done")
    try:
        def copy_slowly() -> None:  # six appends 0.3 s apart: never quiet for a whole second until done
            step = len(slow) // 6 + 1
            for at in range(0, len(slow), step):
                with (inbox / slow_name).open("ab") as f:
                    f.write(slow[at:at + step])
                time.sleep(0.3)

        copier = threading.Thread(target=copy_slowly)
        copier.start()
        (inbox / f"{renamed_name}.part").write_bytes(renamed)
        os.rename(inbox / f"{renamed_name}.part", inbox / renamed_name)
        held = (inbox / half_name).open("wb")
        held.write(half[: len(half) // 2])
        held.flush()
        can_tell = watch_folder.open_for_writing(inbox / half_name) is True
        folder = patient_folder(inbox, 4)
        (inbox / "scan0001.pdf").write_bytes(b"%PDF-1.4 not really a scan")
        second = run_lgd("watch", inbox, "--archive", archive, "--once", timeout=60)
        copier.join()
        for name in (slow_name, renamed_name, "scan0001.pdf"):
            watcher.wait_input(name)
        folder_waited = folder.is_dir() and folder.name not in watcher.inputs()
        (folder / ".done").touch()
        watcher.wait_input(folder.name)
        # The renamed-in card again, under a batch folder: stored once, moved with its reason.
        (inbox / "batch2").mkdir()
        (inbox / "batch2" / renamed_name).write_bytes(renamed)
        watcher.wait_input(f"batch2/{renamed_name}")
        half_seen_at_end = (inbox / half_name).is_file() and half_name not in watcher.inputs()
        # SIGTERM while a card is being read: it is finished and moved, then the watcher exits 0.
        last_name, last = card_pdf(5)
        (inbox / f"{last_name}.part").write_bytes(last)
        os.rename(inbox / f"{last_name}.part", inbox / last_name)
        journal = inbox / ".lgd-watch" / "journal.json"
        deadline = time.monotonic() + 30
        while last_name not in json.loads(journal.read_text())["in_progress"]:
            assert time.monotonic() < deadline, watcher.lines
            time.sleep(0.01)
        code = watcher.stop(signal.SIGTERM)
    finally:
        if watcher.proc.poll() is None:
            watcher.stop(signal.SIGKILL)
    held.close()
    names = {"slow": slow_name, "renamed": renamed_name, "half": half_name, "folder": folder.name, "last": last_name}
    return Run(inbox, archive, watcher, names, second, half_seen_at_end, can_tell, folder_waited, code)


def test_a_file_copied_in_slowly_is_taken_only_when_complete(fed):
    event = fed.watcher.inputs()[fed.names["slow"]]
    assert event["outcome"] == "stored" and event["pages"] == 1 and event["complete"] == "quiet", event
    done = fed.inbox / "done" / fed.names["slow"]
    assert (fed.names["slow"], hashlib.sha256(done.read_bytes()).hexdigest()) in stored(fed.archive)  # all of it
    assert not (fed.inbox / fed.names["slow"]).exists()


def test_a_file_renamed_in_is_stored_and_moved_to_done(fed):
    event = fed.watcher.inputs()[fed.names["renamed"]]
    assert event["outcome"] == "stored" and event["moved_to"] == f"done/{fed.names['renamed']}", event
    assert event["complete"] == "renamed"  # taken on its rename, without waiting for the quiet period
    assert event["patient"] == fed.names["renamed"].split("_[")[2][:10]
    assert not (fed.inbox / "done" / f"{fed.names['renamed']}.reason.json").exists()  # stored: nothing to explain


def test_a_half_written_file_still_open_is_left_alone(fed):
    if not fed.can_tell:
        pytest.skip("this file system cannot say whether a file is still open for writing (no leases)")
    assert fed.half_seen_at_end
    assert not any(fed.names["half"] in source for source, _ in stored(fed.archive))
    assert not (fed.inbox / "failed" / fed.names["half"]).exists()


def test_a_patient_folder_waits_for_its_done_marker(fed):
    assert fed.folder_waited
    event = fed.watcher.inputs()[fed.names["folder"]]
    assert event["outcome"] == "stored" and event["pages"] == 1 and event["complete"] == "marker", event
    done = fed.inbox / "done" / fed.names["folder"]
    assert (done / "page1.png").is_file() and (done / ".done").is_file()  # moved whole


def test_an_input_that_cannot_be_digitised_goes_to_failed_with_its_reason(fed):
    event = fed.watcher.inputs()["scan0001.pdf"]
    assert event["outcome"] == "failed" and event["moved_to"] == "failed/scan0001.pdf"
    reason = json.loads((fed.inbox / "failed" / "scan0001.pdf.reason.json").read_text())
    assert reason["outcome"] == "failed" and reason["documents"][0]["status"] == "failed"
    assert reason["reason"] == event["reason"] and reason["reason"]
    assert (fed.inbox / "failed" / "scan0001.pdf").read_bytes() == b"%PDF-1.4 not really a scan"


def test_a_second_copy_is_stored_once_and_moved_to_done_keeping_its_folder(fed):
    event = fed.watcher.inputs()[f"batch2/{fed.names['renamed']}"]
    assert event["outcome"] == "already_stored", event
    target = fed.inbox / "done" / "batch2" / fed.names["renamed"]
    assert target.is_file()
    reason = json.loads(target.with_name(target.name + ".reason.json").read_text())
    assert reason["reason"].startswith("already stored")
    sources = [source for source, _ in stored(fed.archive)]
    assert sorted(sources) == sorted([fed.names[k] for k in ("slow", "renamed", "folder", "last")])


def test_one_watcher_per_folder_and_sigterm_finishes_the_input_being_read_then_exits_0(fed):
    second = fed.second_watcher
    assert second.returncode == 4, second.stderr
    assert "already watching" in second.stderr and str(fed.watcher.proc.pid) in second.stderr
    assert fed.exit_code == 0
    assert fed.watcher.events[-1]["event"] == "stop" and fed.watcher.events[-1]["why"] == "SIGTERM"
    assert fed.watcher.inputs()[fed.names["last"]]["outcome"] == "stored"  # the card being read was finished
    assert (fed.inbox / "done" / fed.names["last"]).is_file() and not (fed.inbox / fed.names["last"]).exists()
    assert json.loads((fed.inbox / ".lgd-watch" / "journal.json").read_text())["in_progress"] == {}


def test_every_line_on_stderr_is_json(fed):
    assert fed.watcher.lines and all(line.startswith("{") for line in fed.watcher.lines), fed.watcher.lines
    event = fed.watcher.inputs()[fed.names["slow"]]
    assert {"input", "patient", "pages", "seconds", "outcome"} <= event.keys()


# --- restarts ------------------------------------------------------------------------------------


def test_a_watcher_killed_mid_way_and_started_again_repeats_nothing_and_loses_nothing(tmp_path):
    inbox, archive = tmp_path / "inbox", tmp_path / "archive"
    inbox.mkdir()
    cards = dict(card_pdf(seed) for seed in (11, 12))
    for name, data in cards.items():
        (inbox / name).write_bytes(data)
    watcher = Watcher.start(inbox, archive, "--quiet-period", "0.3")
    try:
        deadline = time.monotonic() + 60
        while stored_count(archive) < 1:  # the first is stored; the second is being read, or the first moved
            assert time.monotonic() < deadline and watcher.proc.poll() is None, watcher.lines
            time.sleep(0.02)
        os.killpg(watcher.proc.pid, signal.SIGKILL)
        watcher.proc.wait(timeout=30)
    finally:
        if watcher.proc.poll() is None:
            os.killpg(watcher.proc.pid, signal.SIGKILL)
    left = json.loads((inbox / ".lgd-watch" / "journal.json").read_text())["in_progress"]
    again = run_lgd("watch", inbox, "--archive", archive, "--once", "--quiet-period", "0.3", "--log-json",
                    "--jobs", "1", timeout=120)
    assert again.returncode == 0, again.stderr
    events = [json.loads(line) for line in again.stderr.splitlines()]
    for rel in left:  # what the killed watcher was doing is taken up first, without waiting to be quiet
        assert any(e.get("input") == rel and e["event"] in ("resume", "input") for e in events), (rel, events)
    assert sorted(p.name for p in (inbox / "done").iterdir() if not p.name.endswith(".json")) == sorted(cards)
    assert not (inbox / "failed").exists()
    assert not [p for p in inbox.iterdir() if p.name not in ("done", ".lgd-watch")]
    documents = stored(archive)
    assert sorted(source for source, _ in documents) == sorted(cards)  # each once
    assert sorted(sha for _, sha in documents) == sorted(hashlib.sha256(d).hexdigest() for d in cards.values())
    assert json.loads((inbox / ".lgd-watch" / "journal.json").read_text())["in_progress"] == {}


def test_an_input_stored_before_a_crash_is_checked_by_checksum_and_moved_without_reading_again(fed, tmp_path):
    """The journal says the watcher was digitising it; the archive already holds it: done/, not read twice."""
    archive = tmp_path / "archive"
    shutil.copytree(fed.archive, archive)
    inbox = tmp_path / "inbox"
    (inbox / ".lgd-watch").mkdir(parents=True)
    name = fed.names["slow"]
    shutil.copy(fed.inbox / "done" / name, inbox / name)
    moving = "scan0002.pdf"  # and one whose move to failed/ was cut short
    (inbox / moving).write_bytes(b"not a scan")
    record = {"input": moving, "outcome": "failed", "reason": "not a scan"}
    (inbox / ".lgd-watch" / "journal.json").write_text(json.dumps({"in_progress": {
        name: {"step": "digitise"},
        moving: {"step": "move", "to": f"failed/{moving}", "record": record, "outcome": "failed"}}}))
    before = stored(archive)
    watcher = Watcher.start(inbox, archive, "--quiet-period", "60")
    try:  # both are taken up at once, although nothing else would be for a minute
        events = {rel: watcher.wait_input(rel, timeout=30) for rel in (name, moving)}
        assert watcher.stop() == 0
    finally:
        if watcher.proc.poll() is None:
            watcher.stop(signal.SIGKILL)
    assert events[name]["outcome"] == "already_stored" and events[name]["complete"] == "resumed"
    assert (inbox / "done" / name).is_file()
    assert events[moving]["resumed"] and (inbox / "failed" / moving).read_bytes() == b"not a scan"
    assert json.loads((inbox / "failed" / f"{moving}.reason.json").read_text()) == record
    assert stored(archive) == before


# --- polling, and what --help teaches ------------------------------------------------------------


def test_polling_mode_takes_folders_once_they_are_quiet_and_keeps_the_layout(fed, tmp_path):
    """As on a network share: copies of stored inputs (no .done, so by quiet period), found by polling:
    a patient folder inside a day's folder, and a batch folder whose metadata.csv names the patient."""
    inbox, archive = tmp_path / "inbox", tmp_path / "archive"
    inbox.mkdir()
    shutil.copytree(fed.archive, archive)
    before = stored(archive)
    watcher = Watcher.start(inbox, archive, "--poll", "0.3")
    try:
        assert watcher.events[0]["mode"] == "poll every 0.3 s"
        copy = inbox / "monday" / fed.names["folder"]
        shutil.copytree(fed.inbox / "done" / fed.names["folder"], copy, ignore=shutil.ignore_patterns(".done"))
        batch = inbox / "batch7"  # a bureau's batch: unnamed scans and the metadata.csv naming their patients
        batch.mkdir()
        shutil.copy(fed.inbox / "done" / fed.names["slow"], batch / "scan1.pdf")
        (batch / "metadata.csv").write_text(f"FILEPATH,NHS-NO\nscan1.pdf,{fed.names['slow'].split('_[')[2][:10]}\n")
        event = watcher.wait_input(f"monday/{copy.name}")
        by_manifest = watcher.wait_input("batch7")
        assert watcher.stop(signal.SIGINT) == 0
    finally:
        if watcher.proc.poll() is None:
            watcher.stop(signal.SIGKILL)
    assert event["outcome"] == "already_stored" and event["complete"] == "quiet", event
    assert event["moved_to"] == f"done/monday/{copy.name}"
    assert (inbox / "done" / "monday" / copy.name / "page1.png").is_file()
    assert by_manifest["outcome"] == "already_stored" and by_manifest["patient"] == fed.names["slow"].split("_[")[2][:10]
    assert (inbox / "done" / "batch7" / "metadata.csv").is_file()  # the batch moved whole
    assert stored(archive) == before


def test_help_teaches_what_is_complete_where_things_go_and_how_to_run_it_as_a_service():
    proc = run_lgd("watch", "--help")
    assert proc.returncode == 0
    for words in (".done", "--quiet-period", "DIR/done/", "DIR/failed/", "reason.json", "[Service]",
                  "KillMode=mixed", "systemctl enable", "--poll"):
        assert words in proc.stdout, words


def test_watching_needs_the_permission_to_digitise(fed, tmp_path):
    archive = copy_with_accounts(fed.archive, tmp_path, {"reader": "auditor"}, None)
    (tmp_path / "inbox").mkdir()
    proc = run_lgd("watch", tmp_path / "inbox", "--archive", archive, "--as", "reader", "--once")
    assert proc.returncode == 6 and "may not digitise" in proc.stderr, proc.stderr
    assert not (tmp_path / "inbox" / ".lgd-watch").exists()  # refused before it took the folder


def test_with_a_queue_the_inputs_are_read_by_lgd_workers_and_stored_here(redis_base, tmp_path):
    inbox, archive = tmp_path / "inbox", tmp_path / "archive"
    inbox.mkdir()
    cards = dict([card_pdf(31)])
    for name, data in cards.items():
        (inbox / name).write_bytes(data)
    url = database_url(redis_base)
    with workers(url, tmp_path, 1) as (worker,):
        proc = run_lgd("watch", inbox, "--archive", archive, "--queue", url, "--once", "--quiet-period", "0.5",
                       "--log-json", timeout=120)
        read_by_worker = [e for e in worker.events() if e.get("outcome") == "ok"]
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(line) for line in proc.stderr.splitlines()]
    assert sorted(e["input"] for e in events if e["event"] == "input" and e["outcome"] == "stored") == sorted(cards)
    assert len(read_by_worker) == 1
    assert sorted(source for source, _ in stored(archive)) == sorted(cards)
    assert sorted(p.name for p in (inbox / "done").iterdir()) == sorted(cards)


# --- the completeness rules alone (no OCR) ---------------------------------------------------------


def test_what_is_an_input_and_when_it_is_complete(tmp_path):
    inbox = tmp_path / "inbox"
    for name in ("a.pdf", "b.pdf.part", "c.crdownload", "~$d.pdf", ".e.pdf", "batch/f.tif", "done/g.pdf",
                 "bureau/Metadata.csv", "bureau/x.pdf"):
        (inbox / name).parent.mkdir(parents=True, exist_ok=True)
        (inbox / name).write_bytes(b"x")
    person = inbox / "9434765919 Jo Bloggs 01-02-1960"
    (person / "scans").mkdir(parents=True)
    (person / "scans" / "page1.png").write_bytes(b"x")
    (person / "page2.png.part").write_bytes(b"x")
    found = watch_folder.scan(inbox)
    assert sorted(found) == ["9434765919 Jo Bloggs 01-02-1960", "a.pdf", "batch/f.tif", "bureau"]
    assert found["bureau"].kind == "folder" and found["bureau"].manifest == inbox / "bureau" / "Metadata.csv"
    tracker = watch_folder.Tracker(quiet=10)
    tracker.update(0.0, found)
    assert [tracker.complete(9.9, seen) for seen in found.values()] == [None] * 4
    assert tracker.complete(10.0, found["a.pdf"]) == "quiet"
    assert tracker.complete(10.0, found[person.name]) is None  # still holds a .part file
    (person / "page2.png.part").rename(person / "page2.png")
    found = watch_folder.scan(inbox)
    tracker.update(10.0, found, touched=[f"{person.name}/page2.png"], renamed=[f"{person.name}/page2.png"])
    assert tracker.complete(19.9, found[person.name]) is None and tracker.complete(20.0, found[person.name]) == "quiet"
    (person / ".done").touch()
    assert watch_folder.Tracker(quiet=10, require_marker=True).complete(0.0, watch_folder.scan(inbox)[person.name]) == "marker"
    (inbox / "a.pdf").write_bytes(b"xy")  # written again: the quiet period starts again
    tracker.update(30.0, watch_folder.scan(inbox), touched=["a.pdf"])
    assert tracker.complete(39.0, watch_folder.scan(inbox)["a.pdf"]) is None
    tracker.update(31.0, watch_folder.scan(inbox), touched=["batch/f.tif"], renamed=["batch/f.tif"])
    assert tracker.complete(31.0, watch_folder.scan(inbox)["batch/f.tif"]) == "renamed"
    with (inbox / "a.pdf").open("ab") as still_writing:
        assert watch_folder.open_for_writing(inbox / "a.pdf") in (True, None)  # None: this file system cannot tell
    assert watch_folder.open_for_writing(inbox / "a.pdf") in (False, None)
