"""`lgd leavers` (issue 14): a demo leaver from a CSV worklist to receipt confirmed from the shell, with the
same gates as the web (each step refused for the wrong role), and `lgd review` naming pages by number and id."""

from __future__ import annotations

import json
import shutil
import stat

import pytest

from tests.conftest import copy_with_accounts, run_lgd

ACCOUNTS = {"admin": "practice-admin", "dr.patel": "clinician", "dr.jones": "clinician", "clerk": "clerk"}


@pytest.fixture(scope="module")
def archive(digitised, tmp_path_factory):
    return copy_with_accounts(digitised.archive, tmp_path_factory.mktemp("leavers-cli"), ACCOUNTS, None)


def leavers(archive, *args, who: str | None = None):
    return run_lgd("leavers", *args, "--archive", archive, *(("--as", who) if who else ()))


def test_a_leaver_from_a_csv_to_receipt_confirmed(digitised, archive, tmp_path):
    patients = json.loads(digitised.batch.index.read_text())["patients"]
    first, second = patients[0], patients[1]
    nhs = first["nhs_number"]
    (tmp_path / "coded").mkdir()
    shutil.copy(digitised.batch.out / first["coded"]["csv"], tmp_path / "coded" / "first.csv")

    bad = tmp_path / "bad.csv"
    bad.write_text(f"nhs_number,ods_code,movement_ref,coded\n{nhs},A81001,,coded/first.csv\n9434765918,A81001,,\n")
    refused = leavers(archive, "import", bad, who="clerk")
    assert refused.returncode == 2 and "line 3" in refused.stderr and "nothing was added" in refused.stderr
    assert leavers(archive, "list", "--json", who="clerk").json["leavers"] == []

    good = tmp_path / "leavers.csv"
    good.write_text(f"nhs_number,ods_code,movement_ref,coded\n{nhs},A81001,PCSE-77,coded/first.csv\n")
    added = leavers(archive, "import", good, "--json", who="clerk")
    assert added.returncode == 0, added.stderr
    lid = str(added.json["leavers"][0]["id"])
    assert added.json["leavers"][0]["state"] == "awaiting_coded_record"
    assert added.json["leavers"][0]["why"] == ["a coded record is stored: ready to reconcile"]
    assert leavers(archive, "add", second["nhs_number"], "--ods", "nope", who="clerk").returncode == 2

    assert leavers(archive, "reconcile", "--all", who="clerk").returncode == 6
    done = leavers(archive, "reconcile", "--all", "--json", who="dr.patel")
    assert done.returncode == 0 and [r["ok"] for r in done.json["results"]] == [True]

    # lgd review still names pages by number and by short id; four eyes before sign-off.
    pages = run_lgd("review", "--patient", nhs, "--json", "--archive", archive, "--as", "clerk").json["pages"]
    sent = next(p for p in pages if p["decision"] == "include" and p["number"] > 1)
    omit = run_lgd("review", "--patient", nhs, "--omit", str(sent["number"]), "--reason", "the letter says it again",
                   "--archive", archive, "--as", "dr.patel")
    assert omit.returncode == 0, omit.stderr
    waiting = leavers(archive, "sign-off", lid, who="dr.patel")
    assert waiting.returncode == 1 and "second clinician" in waiting.stderr
    assert run_lgd("review", "--patient", nhs, "--confirm", sent["id"], "--archive", archive,
                   "--as", "dr.jones").returncode == 0
    assert leavers(archive, "sign-off", lid, who="admin").returncode == 6
    signed = leavers(archive, "sign-off", lid, "--json", who="dr.patel")
    assert signed.returncode == 0 and signed.json["leaver"]["state"] == "signed_off"
    shown = leavers(archive, "show", lid, "--json", who="clerk").json
    omitted = next(p for p in shown["pages"] if p["id"] == sent["id"])
    assert not omitted["send"] and "confirmed by dr.jones" in omitted["omitted_because"]

    # The pack from the shell: the passphrase goes to a new private file, never to stdout.
    secret = tmp_path / "pass.txt"
    assert leavers(archive, "pack", "--all-signed-off", "--new-passphrase-file", secret, who="clerk").returncode == 6
    packed = leavers(archive, "pack", "--all-signed-off", "--format", "7z", "--new-passphrase-file", secret, "--json",
                     who="admin")
    assert packed.returncode == 0, packed.stdout
    made = packed.json["results"][0]["result"]
    assert made["leaver"]["state"] == "packed" and "passphrase" not in made and len(made["fingerprint_words"]) == 32
    phrase = secret.read_text().splitlines()[1].split(",")[2]
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600 and len(phrase.split()) == 8
    assert phrase not in packed.stdout and " ".join(made["fingerprint_words"][:4]) in packed.stderr
    assert (archive.parent / "lgd-archive-packs").is_dir() and made["files"] == ["lgd-pack.7z"]
    assert leavers(archive, "sent", lid, who="dr.patel").returncode == 6
    assert leavers(archive, "sent", lid, "--note", "handed to the courier", who="clerk").returncode == 0
    verify = tmp_path / "verify.json"
    verify.write_text(json.dumps({"ok": True, "checks": []}))
    received = leavers(archive, "received", lid, "--verify-json", verify, "--json", who="clerk")
    assert received.returncode == 0 and received.json["leaver"]["state"] == "receipt_confirmed"
    again = leavers(archive, "return", lid, "--reason", "too late", who="clerk")
    assert again.returncode == 1 and "receipt confirmed" in again.stderr
    listed = leavers(archive, "list", "--state", "receipt_confirmed", "--json", who="clerk").json["leavers"]
    assert [lv["id"] for lv in listed] == [int(lid)]
    history = [h["to"] for h in leavers(archive, "show", lid, "--json", who="admin").json["history"]]
    assert history == ["awaiting_coded_record", "reconciled", "signed_off", "packed", "sent", "receipt_confirmed"]
