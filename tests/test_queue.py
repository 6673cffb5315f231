"""lgd digitise --queue with real `lgd worker` processes on a real redis-server: the batch lands as a local run's would."""

from __future__ import annotations

import json
import os

from tests.queue_support import (catalogue_facts, database_url, fake_tesseract, queue_scans, redis_base,  # noqa: F401
                                 run, workers)


def test_two_workers_one_killed_mid_document_store_each_document_once_as_a_local_run_does(redis_base, queue_scans, tmp_path):
    """Two workers read the batch; the first page either reads SIGKILLs its worker process (a fault
    injected where lgd meets the tesseract program), so one document is delivered again."""
    url = database_url(redis_base)
    archive = tmp_path / "archive"
    killer = fake_tesseract(tmp_path, "once")
    with workers(url, tmp_path, 2, killer, "--engine", "tesseract-cli") as started:
        proc = run("digitise", queue_scans, "--archive", archive, "--queue", url, "--json", "--log-json",
                   "--broker-timeout", "30")
        assert proc.returncode == 0, proc.stderr
        status = run("status", "--queue", url, "--json")
        again = run("digitise", queue_scans, "--archive", archive, "--queue", url, "--json", "--broker-timeout", "30")
        events = [e for w in started for e in w.events()]
    report = proc.json
    assert report["summary"]["ok"] == 3 and report["summary"]["pages"] == 4 and report["summary"]["failed"] == 0
    assert sorted(d["source"] for d in report["documents"]) == sorted(p.name for p in queue_scans.iterdir())
    assert all(d["pdfa_valid"] and os.path.isfile(d["pdfa"]) for d in report["documents"])
    # A worker was killed mid-document; that document was delivered again and read on its second
    # attempt; no document was read to the end twice; both workers took a share.
    assert (tmp_path / "killed-once").is_dir()
    assert sorted(e["attempt"] for e in events) == [1, 1, 2] and len({e["what"] for e in events}) == 3
    assert len({e["who"].split("/")[0] for e in events}) == 2
    # The writer logged one JSON line per document, naming its checksum, never the file (patient) name.
    writer = [json.loads(line) for line in proc.stderr.splitlines() if line.startswith('{"at"')]
    assert sorted(e["what"] for e in writer) == sorted(e["what"] for e in events)
    assert all(e["outcome"] == "ok" and e["role"] == "writer" and "Lloyd_George" not in json.dumps(e) for e in writer)
    # lgd status saw the finished documents, their pages and both workers.
    assert status.returncode == 0
    assert status.json["finished_ok"] == 3 and status.json["pages_finished"] == 4 and status.json["queued"] == 0
    assert len(status.json["workers"]) == 2 and status.json["pages_per_hour"] > 0
    assert status.json["failed"] == 0 and status.json["running"] == []
    # Re-running skips everything by checksum, as a local run would.
    assert again.returncode == 0 and again.json["summary"]["skipped"] == 3
    # The same inputs digitised locally give the same catalogue: documents, pages, words' text, entries.
    local = tmp_path / "local"
    assert run("digitise", queue_scans, "--archive", local, "--jobs", "1", "--engine", "tesseract-cli").returncode == 0
    queued_facts, local_facts = catalogue_facts(archive), catalogue_facts(local)
    assert queued_facts == local_facts and len(queued_facts) == 3
    assert not any((archive / "queue-store" / "jobs").iterdir()) and not any((archive / "queue-store" / "results").iterdir())


def test_bad_queue_url_and_unreachable_broker_are_clear(tmp_path, queue_scans):
    bad = run("digitise", queue_scans, "--archive", tmp_path / "a", "--queue", "http://localhost:6379", "--json")
    assert bad.returncode == 2 and "is not a Redis URL" in bad.stderr and bad.json["error"]["code"] == "usage"
    from tests.queue_support import free_port

    url = f"redis://127.0.0.1:{free_port()}/0"
    gone = run("digitise", queue_scans, "--archive", tmp_path / "a", "--queue", url, "--broker-timeout", "1", "--json")
    assert gone.returncode == 3, gone.stderr
    assert "unreachable" in gone.stderr and "did not answer for 1 s" in gone.stderr
    assert gone.json["error"]["code"] == "broker_unreachable"
    status = run("status", "--queue", url)
    assert status.returncode == 3 and "unreachable" in status.stderr
    worker = run("worker", "--queue", "redis://:6379/x")
    assert worker.returncode == 2 and "not a Redis URL" in worker.stderr
