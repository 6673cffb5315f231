"""The queue through failures: a poison document, the broker restarted mid-batch, a whole worker SIGKILLed mid-document
(a worker's pool process killed mid-document: test_queue).

Faults are injected where lgd meets an external program: a `tesseract` first on PATH that
SIGKILLs the worker process calling it (workers run --engine tesseract-cli, which calls it).
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import sqlite3
import subprocess
import time
import urllib.request

from tests.conftest import copy_with_accounts
from tests.queue_support import (LGD, REPO, catalogue_facts, database_url, fake_tesseract, free_port,  # noqa: F401
                                 make_inputs, queue_scans, redis_base, redis_server, run, wait_for, workers)


def test_poison_document_is_quarantined_then_retried_and_discarded(redis_base, tmp_path):
    from fixtures.bad_inputs import write_bad_inputs

    url = database_url(redis_base)
    scans = make_inputs(tmp_path / "in", (1,))
    poison = next(scans.iterdir())
    truncated = write_bad_inputs(tmp_path / "bad")["truncated_pdf"]
    shutil.copy(truncated, scans / truncated.name)
    archive = tmp_path / "archive"
    metrics_port = free_port()
    env = {**fake_tesseract(tmp_path, "always"), "TMPDIR": str(tmp_path)}  # its metrics files, left by SIGKILL
    with workers(url, tmp_path, 1, env, "--engine", "tesseract-cli",
                 "--metrics-port", str(metrics_port)) as started:
        proc = run("digitise", scans, "--archive", archive, "--queue", url, "--json", "--broker-timeout", "30")
        events = started[0].events()
        status = run("status", "--queue", url, "--json")
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as response:
            metrics = response.read().decode()
    assert proc.returncode == 1, proc.stderr
    by_source = {d["source"]: d for d in proc.json["documents"]}
    assert by_source[poison.name]["status"] == "failed" and by_source[poison.name]["code"] == "worker_lost"
    assert "stopped the worker reading it 2 times" in by_source[poison.name]["reason"]
    assert by_source[truncated.name]["code"] == "truncated"
    # The truncated PDF failed in the worker as it would locally; the poison one never finished a reading.
    assert sorted((e["outcome"], e["attempt"]) for e in events) == [("truncated", 1), ("worker_lost", 3)]
    # lgd status gives the failures with their reasons, naming documents by checksum: no file (patient) names.
    lost = next(f for f in status.json["failures"] if f["outcome"] == "worker_lost")
    assert lost["reason"].startswith("the document stopped the worker reading it 2 times")
    assert "Lloyd_George" not in status.stdout and lost["key"] in {e["what"] for e in events}
    # The worker's Prometheus counters sum its pool processes, the ones that died included.
    assert 'lgd_worker_documents_total{outcome="worker_lost"} 1.0' in metrics
    assert 'lgd_worker_documents_total{outcome="truncated"} 1.0' in metrics

    listed = run("quarantine", "list", "--archive", archive, "--json")
    entries = {e["source"]: e for e in listed.json["quarantine"]}
    assert set(entries) == {poison.name, truncated.name} and entries[poison.name]["code"] == "worker_lost"
    assert entries[poison.name]["sha256"] == lost["key"]  # status's checksum finds the quarantined file
    # Only who may digitise may work the quarantine.
    guarded = copy_with_accounts(archive, tmp_path / "accounts", {"doc": "clinician", "clerk": "clerk"}, None)
    refused = run("quarantine", "discard", entries[truncated.name]["id"], "--reason", "x", "--archive", guarded, "--as", "doc")
    assert refused.returncode == 6 and "may not digitise" in refused.stderr
    allowed = run("quarantine", "discard", entries[truncated.name]["id"], "--reason", "rescanned as batch 8",
                  "--archive", guarded, "--as", "clerk", "--json")
    assert allowed.returncode == 0 and allowed.json["action"] == "discarded"
    assert not (guarded / "quarantine" / entries[truncated.name]["id"]).exists()

    retried = run("quarantine", "retry", entries[poison.name]["id"], "--reason", "worker fixed", "--archive", archive, "--json")
    assert retried.returncode == 0, retried.stderr
    assert retried.json["outcome"] == "ok"
    assert [p.name for p in (archive / "quarantine").iterdir()] == [entries[truncated.name]["id"]]
    facts = catalogue_facts(archive)
    assert facts[poison.name]["document"][4] == "ok" and len(facts[poison.name]["pages"]) == 1
    # Both are audited with who did it and why.
    assert ("quarantine_retry", "worker fixed", pwd.getpwuid(os.getuid()).pw_name) in _audit(archive)
    assert ("quarantine_discard", "rescanned as batch 8", "clerk") in _audit(guarded)


def _audit(archive) -> set[tuple]:
    db = sqlite3.connect(archive / "catalogue.sqlite")
    try:
        return {(action, json.loads(detail).get("reason"), actor)
                for action, detail, actor in db.execute("SELECT action, detail, actor FROM audit")}
    finally:
        db.close()


def test_broker_restarted_mid_batch_loses_nothing(queue_scans, tmp_path):
    """redis-server stopped with one document read, the rest queued or running, and started again empty."""
    port = free_port()
    archive = tmp_path / "archive"
    url = f"redis://127.0.0.1:{port}/0"
    with redis_server(port) as first:
        broker = first
        with workers(url, tmp_path, 1) as started:
            writer = subprocess.Popen([*LGD, "digitise", str(queue_scans), "--archive", str(archive), "--queue", url,
                                       "--json", "--broker-timeout", "60"], cwd=REPO, text=True,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            try:
                wait_for(lambda: started[0].events(), 60, "the first document to be read")
                broker.stop()
                time.sleep(2.0)
                broker.start()
                out, err = writer.communicate(timeout=120)
            finally:
                if writer.poll() is None:
                    writer.kill()
            events = started[0].events()
    assert writer.returncode == 0, err
    assert "is unreachable; waiting" in err and "is back" in err
    assert "sending" in err and "again" in err  # the writer noticed the broker had lost the queue
    report = json.loads(out)
    assert report["summary"]["ok"] == 3 and report["summary"]["pages"] == 4
    assert len({e["what"] for e in events}) == 3
    facts = catalogue_facts(archive)
    assert len(facts) == 3 and all(f["document"][4] == "ok" for f in facts.values())


def test_whole_worker_killed_mid_document_is_redelivered_after_the_visibility_timeout(redis_base, tmp_path):
    """The worker and its pool SIGKILLed together (a machine lost): the unacknowledged document goes back
    to the queue once older than --visibility-timeout, and the next worker to start reads it."""
    import signal

    import redis

    url = database_url(redis_base)
    scans = make_inputs(tmp_path / "in", (1,))
    archive = tmp_path / "archive"
    client = redis.Redis.from_url(url)
    (tmp_path / "first").mkdir()
    shared_tmp = {"TMPDIR": str(tmp_path)}  # both workers on one machine
    with workers(url, tmp_path / "first", 1, shared_tmp, "--visibility-timeout", "2") as first:
        writer = subprocess.Popen([*LGD, "digitise", str(scans), "--archive", str(archive), "--queue", url, "--json",
                                   "--broker-timeout", "60"], cwd=REPO, text=True, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE)
        try:
            wait_for(lambda: client.hlen("lgd:running"), 60, "the worker to start reading", every=0.02)
            os.killpg(first[0].proc.pid, signal.SIGKILL)
            first[0].proc.wait(10)
            assert first[0].events() == []  # killed before it finished the document
            left = tmp_path / f"lgd-worker-{first[0].proc.pid}"
            assert any(left.iterdir())  # the page images of the document it was reading
            time.sleep(2.5)  # past the visibility timeout
            with workers(url, tmp_path, 1, shared_tmp, "--visibility-timeout", "2") as second:
                assert not left.exists()  # removed by the next worker to start on the machine
                out, err = writer.communicate(timeout=120)
                events = second[0].events()
        finally:
            if writer.poll() is None:
                writer.kill()
    assert writer.returncode == 0, err
    assert json.loads(out)["summary"]["ok"] == 1
    assert [e["attempt"] for e in events] == [2] and events[0]["outcome"] == "ok"
    assert len(catalogue_facts(archive)) == 1
