"""lgd serve's /work page and /api/v1/work: the queue (a real redis-server), the quarantine, its retry from the page.

The queue's bookkeeping is written through the same Tracker the workers write it with (a
document running on one worker, two finished, one failed, one queued), so the page shows what
`lgd status` would. A scan is quarantined through the archive's own quarantine call, then
retried from the page by a clerk: it is read by the real OCR, stored, indexed and audited.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import subprocess
import sys
import time
from contextlib import contextmanager

import lxml.html
import pytest
from fastapi.testclient import TestClient

from index import ArchiveStore
from tests.conftest import copy_with_accounts
from tests.queue_support import database_url, make_inputs, redis_base  # noqa: F401

PASSWORD = "correct horse battery staple"
ROLES = {"clerk": "clerk", "dr.patel": "clinician"}
WORKER = "celery@bureau-3/4711"


@pytest.fixture(scope="module")
def archive(digitised, tmp_path_factory):
    """The session's archive with a clerk and a clinician, and one quarantined scan (readable, so a retry stores it)."""
    root = tmp_path_factory.mktemp("work")
    copy = copy_with_accounts(digitised.archive, root, ROLES, PASSWORD)
    scan = next(make_inputs(root / "in", (1,)).iterdir())
    ArchiveStore(copy).quarantine([scan], scan.name, "worker_lost", "the document stopped the worker reading it 2 times",
                                  dt.datetime(2026, 12, 1, 9, 30, tzinfo=dt.timezone.utc))
    return copy


def queue_with_work(url: str) -> None:
    from pipelines.queue.tracker import QUEUE, Tracker

    tracker = Tracker(url)
    now = time.time()
    tracker.running("a" * 64, WORKER)
    for key, outcome, pages, reason in (("b" * 64, "ok", 10, ""), ("c" * 64, "ok", 6, ""),
                                        ("d" * 64, "truncated", 0, "the document is a truncated PDF")):
        tracker.finished(key, {"key": key, "worker": WORKER, "outcome": outcome, "pages": pages, "seconds": 20.0,
                               "attempt": 1, "at": now - 60, "reason": reason})
    tracker.redis.rpush(QUEUE, json.dumps({"queued": "e" * 64}))  # a task no worker of this test takes


@contextmanager
def archive_held_by_another_digitise(archive):
    """The archive's digitise lock held by another process, as a running `lgd digitise` holds it."""
    holder = subprocess.Popen([sys.executable, "-c", "import fcntl, os, sys, time\n"
                               "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)\n"
                               "fcntl.lockf(fd, fcntl.LOCK_EX)\nprint('held', flush=True)\ntime.sleep(120)",
                               str(archive / ".lgd-digitise.lock")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        yield
    finally:
        holder.kill()
        holder.wait()


def signed_in(app, name: str) -> TestClient:
    client = TestClient(app, follow_redirects=False)
    token = lxml.html.fromstring(client.get("/login").text).xpath("//input[@name='token']/@value")[0]
    r = client.post("/login", data={"username": name, "password": PASSWORD, "token": token, "next": "/"})
    assert r.status_code == 303, r.text
    return client


def test_work_page_shows_the_queue_and_retries_a_quarantined_scan(archive, redis_base):  # noqa: F811
    from pipelines.web.app import create_app

    url = database_url(redis_base)
    queue_with_work(url)
    app = create_app(archive, queue=url)
    clerk = signed_in(app, "clerk")

    page = clerk.get("/work")
    assert page.status_code == 200, page.text
    html = lxml.html.fromstring(page.text)
    assert html.xpath("//meta[@http-equiv='refresh']/@content") == ["30"]
    assert html.get_element_by_id("queued").text_content() == "1"
    assert html.get_element_by_id("running").text_content() == "1"
    assert html.get_element_by_id("finished").text_content().startswith("3 (2 read, 1 failed), 16 pages")
    assert "celery@bureau-3" in html.get_element_by_id("workers").text_content()
    assert "truncated PDF" in html.get_element_by_id("failures").text_content()
    assert "worker_lost" in html.get_element_by_id("quarantine-list").text_content()
    assert html.get_element_by_id("runs-list").xpath(".//tbody/tr")  # the session archive's digitise run

    api = clerk.get("/api/v1/work").json()
    assert api["queue"]["queued"] == 1 and api["queue"]["running"][0]["worker"] == WORKER
    assert api["queue"]["workers"]["celery@bureau-3"] == {"documents": 3, "pages": 16, "busy_seconds": 60.0,
                                                          "pages_per_hour": 960.0}
    [entry] = api["quarantine"]
    assert entry["code"] == "worker_lost" and entry["sha256"]

    # A clinician may not work the digitising: not the page, the API, nor an action on the quarantine.
    doctor = signed_in(app, "dr.patel")
    assert doctor.get("/work").status_code == 403
    assert doctor.get("/api/v1/work").status_code == 403
    refused = doctor.post(f"/api/v1/work/quarantine/{entry['id']}/discard", json={"reason": "x"},
                          headers={"x-csrf-token": doctor.cookies.get("lgd_csrf")})
    assert refused.status_code == 403 and refused.json()["error"] == "not_permitted"

    form_page = clerk.get(f"/work/quarantine/{entry['id']}")
    assert form_page.status_code == 200 and not lxml.html.fromstring(form_page.text).xpath("//meta[@http-equiv]")
    csrf = lxml.html.fromstring(form_page.text).xpath("//form[@id='retry-form']//input[@name='csrf']/@value")[0]
    no_token = clerk.post(f"/work/quarantine/{entry['id']}/retry", data={"reason": "worker fixed"})
    assert no_token.status_code == 403
    no_reason = clerk.post(f"/work/quarantine/{entry['id']}/retry", data={"csrf": csrf, "reason": " "})
    assert no_reason.status_code == 400 and "reason" in no_reason.text
    with archive_held_by_another_digitise(archive):  # a batch storing into the archive: wait, nothing lost
        busy = clerk.post(f"/api/v1/work/quarantine/{entry['id']}/retry", json={"reason": "worker fixed"},
                          headers={"x-csrf-token": clerk.cookies.get("lgd_csrf")})
    assert busy.status_code == 409 and busy.json()["error"] == "archive_locked", busy.text
    assert (archive / "quarantine" / entry["id"]).is_dir()  # none of them touched it

    retried = clerk.post(f"/work/quarantine/{entry['id']}/retry", data={"csrf": csrf, "reason": "worker fixed"})
    assert retried.status_code == 303, retried.text
    after = lxml.html.fromstring(clerk.get(retried.headers["location"]).text)
    assert "retried, ok" in after.get_element_by_id("done").text_content()
    assert after.get_element_by_id("quarantine-empty") is not None
    assert "worker fixed" in after.get_element_by_id("quarantine-handled").text_content()
    assert not (archive / "quarantine" / entry["id"]).exists()

    db = sqlite3.connect(archive / "catalogue.sqlite")
    try:
        stored = db.execute("SELECT status, indexed, page_count FROM documents WHERE sha256 = ?",
                            (entry["sha256"],)).fetchall()
        audit = {(a, actor, json.loads(d).get("reason")) for a, actor, d in
                 db.execute("SELECT action, actor, detail FROM audit WHERE action IN ('quarantine_retry', 'digitise')"
                            " AND actor = 'clerk'")}
    finally:
        db.close()
    assert stored == [("ok", 1, 1)]  # stored, and in the full-text index
    assert audit == {("quarantine_retry", "clerk", "worker fixed"), ("digitise", "clerk", None)}


def test_work_page_without_a_queue(archive):
    from pipelines.web.app import create_app

    clerk = signed_in(create_app(archive), "clerk")
    html = lxml.html.fromstring(clerk.get("/work").text)
    assert "without --queue URL" in html.get_element_by_id("no-queue").text_content()
    assert html.get_element_by_id("runs-list").xpath(".//tbody/tr")
    assert clerk.get("/api/v1/work").json()["queue"] is None


def test_digitise_records_become_runs_by_person_and_gap():
    from index import AuditRow
    from pipelines.service.work import digitise_runs

    t0 = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.timezone.utc)
    at = [t0, t0 + dt.timedelta(minutes=4), t0 + dt.timedelta(minutes=9),  # clerk: one run of three
          t0 + dt.timedelta(minutes=10),  # admin in between: a run of their own
          t0 + dt.timedelta(minutes=40)]  # clerk again after half an hour: a new run
    who = ["clerk", "clerk", "clerk", "admin", "clerk"]
    nhs = ["9434765919", "9434765919", "9434765870", None, "9434765919"]
    rows = [AuditRow(i, a, w, "digitise", n, {"engine": "tesseract"}) for i, (a, w, n) in enumerate(zip(at, who, nhs))]
    runs = digitise_runs(rows)
    assert [(r["by"], r["documents"], r["patients"]) for r in runs] == [("clerk", 1, 1), ("admin", 1, 0), ("clerk", 3, 2)]
    assert runs[-1]["started"] == "2026-12-01T09:00:00+00:00" and runs[-1]["ended"] == "2026-12-01T09:09:00+00:00"
