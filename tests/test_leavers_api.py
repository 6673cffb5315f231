"""The leavers worklist through lgd serve's JSON API (issue 14): a demo leaver from the worklist to receipt
confirmed, each step allowed and refused by role, the four-eyes rule blocking sign-off, a sign-off broken
by a new coded record, and the built pack's cover sheet checked against the decisions."""

from __future__ import annotations

import io
import json
import subprocess
import zipfile
from pathlib import Path

import pytest

from index import Catalogue
from pipelines.transfer.pgpwords import fingerprint_words
from tests.conftest import copy_with_accounts, run_lgd

PASSWORD = "a long enough pass"
ACCOUNTS = {"admin": "practice-admin", "dr.patel": "clinician", "dr.jones": "clinician", "clerk": "clerk",
            "audit": "auditor"}


@pytest.fixture(scope="module")
def served(digitised, tmp_path_factory):
    from pipelines.web.app import create_app

    archive = copy_with_accounts(digitised.archive, tmp_path_factory.mktemp("leavers-api"), ACCOUNTS, PASSWORD)
    patients = json.loads(digitised.batch.index.read_text())["patients"]
    return archive, create_app(archive), patients, digitised.batch.out


def _client(app, name: str):
    from fastapi.testclient import TestClient

    client = TestClient(app)
    signed = client.post("/api/v1/session", json={"username": name, "password": PASSWORD})
    assert signed.status_code == 200, signed.text
    client.headers["X-CSRF-Token"] = signed.json()["csrf"]
    return client


def test_a_leaver_from_the_worklist_to_receipt_confirmed(served, tmp_path):
    archive, app, patients, batch = served
    clerk, patel, jones, admin, auditor = (_client(app, n) for n in ("clerk", "dr.patel", "dr.jones", "admin", "audit"))
    first, second = patients[0], patients[1]
    base = "/api/v1/leavers"

    # The worklist from a CSV: a bad row is named by its line and nothing is added.
    bad = f"nhs_number,ods_code\n{first['nhs_number']},A81001\n{second['nhs_number']},not-ods\n"
    refused = clerk.post(f"{base}/import", content=bad, headers={"content-type": "text/csv"})
    assert refused.status_code == 400 and "line 3" in refused.json()["message"]
    assert clerk.get(base).json()["leavers"] == []
    assert auditor.get(base).status_code == 403
    good = (f"NHS number,ODS code,Movement reference\n{first['nhs_number']},a81001,PCSE-0001\n"
            f"{second['nhs_number']},B82002,\n")
    added = clerk.post(f"{base}/import", content=good, headers={"content-type": "text/csv"})
    assert added.status_code == 201, added.text
    lid = next(lv["id"] for lv in added.json()["leavers"] if lv["nhs_number"] == first["nhs_number"])
    leaver = clerk.get(f"{base}/{lid}").json()["leaver"]
    assert (leaver["state"], leaver["ods_code"], leaver["movement_ref"]) == ("awaiting_coded_record", "A81001", "PCSE-0001")
    again = clerk.post(base, json={"nhs_number": first["nhs_number"], "ods_code": "C83003"})
    assert again.status_code == 409 and "already on the worklist" in again.json()["message"]

    # The coded record and reconciliation: a clinician's steps.
    coded = (batch / first["coded"]["csv"]).read_bytes()
    assert clerk.post(f"{base}/{lid}/coded-record", content=coded).status_code == 403
    assert patel.post(f"{base}/{lid}/sign-off", json={}).json()["error"] == "illegal_transition"
    assert patel.post(f"{base}/{lid}/coded-record", content=coded, headers={"X-File-Name": "gp.csv"}).status_code == 200
    assert clerk.post(f"{base}/{lid}/reconcile").status_code == 403
    done = patel.post(f"{base}/{lid}/reconcile")
    assert done.status_code == 200 and done.json()["leaver"]["state"] == "reconciled"

    # Review: a clinician leaves out a page lgd would send; sign-off waits for a second clinician.
    shown = clerk.get(f"{base}/{lid}").json()
    page = next(p for p in shown["pages"] if p["send"] and p["kind"] != "envelope")
    assert clerk.post(f"{base}/{lid}/decisions", json={"page": page["id"], "decision": "omit",
                                                      "reason": "looks coded"}).status_code == 403
    omit = patel.post(f"{base}/{lid}/decisions", json={"page": page["number"], "decision": "omit",
                                                       "reason": "the typed letter on the next page says the same"})
    assert omit.status_code == 200 and omit.json()["pending"] is True
    assert clerk.get(f"{base}/{lid}").json()["leaver"]["state"] == "in_review"
    blocked = patel.post(f"{base}/{lid}/sign-off", json={})
    assert blocked.status_code == 409 and blocked.json()["error"] == "awaiting_confirmation"
    own = patel.post(f"{base}/{lid}/confirmations", json={"page": page["id"]})
    assert own.status_code == 403 and own.json()["error"] == "four_eyes"
    assert jones.post(f"{base}/{lid}/confirmations", json={"page": page["id"]}).json()["confirmed_by"] == "dr.jones"
    for name, client in (("clerk", clerk), ("admin", admin)):
        assert client.post(f"{base}/{lid}/sign-off", json={}).status_code == 403, name
    assert jones.post(f"{base}/{lid}/sign-off", json={}).json()["leaver"]["state"] == "signed_off"

    # A new coded record breaks the sign-off: back in review, saying why, and no pack.
    changed = coded.rstrip(b"\n") + (f"\n2020-01-02,http://snomed.info/sct,38341003,Hypertensive disorder,condition,,,"
                                      f"LGD-TEST-1,{first['nhs_number']}\n").encode()
    assert patel.post(f"{base}/{lid}/coded-record", content=changed).status_code == 200
    now = clerk.get(f"{base}/{lid}").json()["leaver"]
    assert now["state"] == "in_review" and "coded record changed since sign-off" in now["why"]
    assert admin.post(f"{base}/{lid}/packs", json={"format": "7z"}).json()["error"] == "illegal_transition"
    assert jones.post(f"{base}/{lid}/sign-off", json={}).json()["error"] == "not_current"
    assert patel.post(f"{base}/{lid}/reconcile").status_code == 200
    assert jones.post(f"{base}/{lid}/sign-off", json={"note": "checked again"}).json()["leaver"]["state"] == "signed_off"
    review = clerk.get(f"{base}/{lid}").json()
    totals = review["totals"]
    assert totals["pages_sent"] + totals["pages_omitted"] == totals["pages"] and totals["sheets_saved"] > 0

    # The pack: only a practice admin builds and downloads it; the passphrase is given once.
    for client in (clerk, patel):
        assert client.post(f"{base}/{lid}/packs", json={"format": "7z"}).status_code == 403
    built = admin.post(f"{base}/{lid}/packs", json={"format": "7z"})
    assert built.status_code == 201, built.text
    made = built.json()
    assert made["leaver"]["state"] == "packed" and len(made["passphrase"].split()) == 8
    assert made["fingerprint_words"] == list(fingerprint_words(made["fingerprint"])) and len(made["fingerprint_words"]) == 32
    assert made["pages_omitted"] == totals["pages_omitted"]
    url = f"{base}/{lid}/packs/{made['pack_id']}/file"
    assert clerk.get(url).status_code == 403
    download = admin.get(url)
    assert download.status_code == 200 and download.content[:6] == b"7z\xbc\xaf\x27\x1c"
    assert made["passphrase"] not in json.dumps(clerk.get(f"{base}/{lid}").json())
    with Catalogue.open(archive, create=False) as catalogue:
        assert made["passphrase"] not in json.dumps([a.detail for a in catalogue.audit_log()])

    # A USB pack is a folder of files: it downloads as one zip of them.
    usb = admin.post(f"{base}/{lid}/packs", json={"format": "usb"})
    assert usb.status_code == 201, usb.text
    zipped = admin.get(f"{base}/{lid}/packs/{usb.json()['pack_id']}/file")
    assert zipped.status_code == 200, zipped.text
    with zipfile.ZipFile(io.BytesIO(zipped.content)) as z:
        assert any(n.endswith(".7z") for n in z.namelist()), z.namelist()

    # The receiving practice opens it: its cover gives each omitted page the reason the review showed.
    (tmp_path / "lgd-pack.7z").write_bytes(download.content)
    (tmp_path / "pass.txt").write_text(made["passphrase"] + "\n")
    unpacked = run_lgd("unpack", tmp_path / "lgd-pack.7z", "--passphrase-file", tmp_path / "pass.txt", "--fingerprint",
                       made["fingerprint"], "--out", tmp_path / "in", "--archive", tmp_path / "none", "--json")
    assert unpacked.returncode == 0, unpacked.stderr
    cover = " ".join(subprocess.run(["pdftotext", "-layout", tmp_path / "in" / "pack.pdf", "-"], capture_output=True,
                                    text=True, check=True).stdout.split())
    omitted = [p for p in review["pages"] if not p["send"]]
    assert omitted and any(p["id"] == page["id"] for p in omitted)
    for p in omitted:
        assert " ".join(p["omitted_because"].split())[:60] in cover, p["omitted_because"]
    clinician = next(p for p in omitted if p["id"] == page["id"])["omitted_because"]
    assert "dr.patel's decision" in clinician and "confirmed by dr.jones" in clinician
    assert all("coded record" not in p["omitted_because"] for p in omitted if p.get("reason_code") == "blank")

    # Sent by the clerk, received with the receiver's verify result (a failed one is refused).
    assert patel.post(f"{base}/{lid}/sent", json={}).status_code == 403
    assert clerk.post(f"{base}/{lid}/receipt", json={}).json()["error"] == "illegal_transition"
    assert clerk.post(f"{base}/{lid}/sent", json={"note": "courier SD123"}).json()["leaver"]["state"] == "sent"
    failed = clerk.post(f"{base}/{lid}/receipt", json={"verify": {"ok": False}})
    assert failed.status_code == 409 and failed.json()["error"] == "verify_failed"
    other = {**unpacked.json, "manifest": {**unpacked.json["manifest"], "patient": second["nhs_number"]}}
    assert clerk.post(f"{base}/{lid}/receipt", json={"verify": other}).json()["error"] == "verify_other_pack"
    received = clerk.post(f"{base}/{lid}/receipt", json={"verify": json.dumps(unpacked.json)})
    assert received.status_code == 200 and received.json()["leaver"]["state"] == "receipt_confirmed"

    final = admin.get(f"{base}/{lid}").json()
    assert [h["to"] for h in final["history"]] == ["awaiting_coded_record", "reconciled", "in_review", "signed_off",
                                                   "reconciled", "signed_off", "packed", "packed", "sent", "receipt_confirmed"]
    assert final["history"][-1]["detail"]["verify"]["ok"] is True
    assert final["packs"][0]["ods_code"] == "A81001" and final["packs"][0]["movement_ref"] == "PCSE-0001"
    assert [lv["id"] for lv in clerk.get(f"{base}?open=1").json()["leavers"]] != [lid]
    assert clerk.get(f"{base}?state=receipt_confirmed").json()["leavers"][0]["id"] == lid
    with Catalogue.open(archive, create=False) as catalogue:
        actions = {(a.actor, a.action) for a in catalogue.audit_log(first["nhs_number"])}
    assert {("clerk", "leaver_added"), ("dr.patel", "leaver_reconciled"), ("dr.jones", "leaver_signed_off"),
            ("admin", "leaver_packed"), ("admin", "pack_downloaded"), ("clerk", "leaver_sent"),
            ("clerk", "leaver_receipt_confirmed")} <= actions


def test_return_for_rescan_and_bad_requests(served):
    _, app, patients, _ = served
    clerk, admin = _client(app, "clerk"), _client(app, "admin")
    base = "/api/v1/leavers"
    lid = next(lv["id"] for lv in clerk.get(base).json()["leavers"] if lv["nhs_number"] == patients[1]["nhs_number"])
    assert clerk.post(f"{base}/{lid}/return", json={}).json()["error"] == "bad_request"
    back = clerk.post(f"{base}/{lid}/return", json={"reason": "page 3 is cut off at the bottom"})
    assert back.status_code == 200 and back.json()["leaver"]["state"] == "returned_for_rescan"
    assert clerk.post(f"{base}/{lid}/return", json={"reason": "again"}).status_code == 409
    junk = _client(app, "dr.jones").post(f"{base}/{lid}/coded-record", content=b"not a record\n" * 6000,
                                         headers={"X-File-Name": "../../evil.xml"})
    assert junk.status_code == 422, junk.text  # over the 64 KB JSON limit, yet an upload: read, and refused
    assert admin.post(base, json={"nhs_number": "9434765918", "ods_code": "A81001"}).status_code == 400
    assert admin.get(f"{base}/99999").status_code == 404
    assert admin.get(f"{base}?state=lost").json()["error"] == "bad_state"
    no_csrf = _client(app, "clerk")
    del no_csrf.headers["X-CSRF-Token"]
    assert no_csrf.post(f"{base}/{lid}/return", json={"reason": "x"}).json()["error"] == "csrf"


def test_each_step_is_refused_to_the_roles_that_may_not_take_it(served):
    """Every step checks the role first: refused (NotPermitted) exactly where the permission table says so."""
    from pipelines.errors import LgdError, NotPermitted
    from pipelines.service import handover, leavers, worklist
    from pipelines.service.access import Role, Who

    archive, _, patients, _ = served
    nhs = patients[2]["nhs_number"]
    allowed = {
        "add": {Role.clerk, Role.clinician, Role.practice_admin, Role.owner},
        "list": {Role.clerk, Role.clinician, Role.practice_admin, Role.owner},
        "reconcile": {Role.clinician, Role.owner},
        "decide": {Role.clerk, Role.clinician, Role.practice_admin, Role.owner},  # include; omit is checked by review
        "sign_off": {Role.clinician, Role.owner},
        "pack": {Role.practice_admin, Role.owner},
        "sent": {Role.clerk, Role.practice_admin, Role.owner},
        "received": {Role.clerk, Role.practice_admin, Role.owner},
        "return": {Role.clerk, Role.clinician, Role.practice_admin, Role.owner},
    }
    with Catalogue.open(archive, create=False) as catalogue:
        clerk = Who("clerk", Role.clerk)
        lid = leavers.add(catalogue, clerk, nhs, "A81001").id
        leavers.return_for_rescan(catalogue, clerk, lid, "the envelope front is upside down")
        steps = {  # in returned_for_rescan every step but add and list is illegal, so nothing moves
            "add": lambda w: worklist.add_rows(catalogue, w, [worklist.NewRow(0, nhs, "A81001")]),
            "list": lambda w: leavers.worklist(catalogue, w),
            "reconcile": lambda w: leavers.reconcile(catalogue, w, lid),
            "decide": lambda w: leavers.decide_page(catalogue, w, lid, "1", "include", "the receiver asked"),
            "sign_off": lambda w: leavers.sign_off(catalogue, w, lid),
            "pack": lambda w: handover.pack(catalogue, w, lid, "7z"),
            "sent": lambda w: handover.mark_sent(catalogue, w, lid),
            "received": lambda w: handover.confirm_receipt(catalogue, w, lid),
            "return": lambda w: leavers.return_for_rescan(catalogue, w, lid, "again"),
        }
        for step, run in steps.items():
            for role in Role:
                who = Who(f"someone-{role.value}", role)
                try:
                    run(who)
                    outcome = "done"
                except NotPermitted:
                    outcome = "refused"
                except LgdError as e:
                    outcome = e.code
                assert (outcome != "refused") == (role in allowed[step]), (step, role, outcome)
                if outcome not in ("refused", "done"):
                    assert outcome in ("illegal_transition", "already_listed", "awaiting_coded_record"), (step, outcome)
        assert leavers.get(catalogue, clerk, lid).state is leavers.State.returned_for_rescan
