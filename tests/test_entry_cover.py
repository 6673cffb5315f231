"""A clinician covers an entry lgd could not match by a named coded event (issue 14): the page becomes an omission
that waits for a second clinician, the cover sheet names both and the event, a clerk and another record's event
are refused, clearing withdraws it, and a leaver signed off before the cover returns to review."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from index import Catalogue
from index.decisions import latest_overrides, latest_reconciliation
from index.entry_covers import CoveredBy, EntryCoverRow, covers_in_force, entry_sha256
from index.rows import OverrideRow, PageDecisionRow, ReconciliationRow
from pipelines.service import leaver_review, leavers
from pipelines.service.access import Role, Who
from pipelines.service.accounts import change, issue_token
from pipelines.service.entry_cover import COVER_WINDOW_DAYS, date_gap
from pipelines.service.review import patient_pages
from pipelines.transfer.plan import PlannedPage, _with_covers
from pipelines.transfer.reasons import omission
from tests.conftest import copy_with_accounts, run_lgd

ACCOUNTS = {"admin": "practice-admin", "dr.a": "clinician", "dr.b": "clinician", "clerk": "clerk"}
A, B = Who("dr.a", Role.clinician), Who("dr.b", Role.clinician)
PASSWORD = "a long enough pass"


def _candidate(catalogue: Catalogue, nhs: str):
    """A page sent only because of one entry lgd could not match, and an event of the record dated near it."""
    run = latest_reconciliation(catalogue, nhs)
    numbers = {(r.document_id, r.page): r.number for r in patient_pages(catalogue, nhs)}
    from index.coded import latest_coded_record

    events = latest_coded_record(catalogue, nhs).record["events"]
    for p in run.pages:
        left = [i for i, e in enumerate(p.entries) if e["status"] != "covered"]
        if p.reason_code != "entries_not_covered" or len(left) != 1:
            continue
        entry = p.entries[left[0]]
        fits = [(date_gap(entry["date"], e["date"]), n) for n, e in enumerate(events, 1)
                if date_gap(entry["date"], e["date"]) is not None]
        gap, event = min(fits, default=(None, None))
        if gap is not None and gap <= COVER_WINDOW_DAYS:
            return numbers[(p.document_id, p.page)], f"{p.document_id}-{p.page}", left[0] + 1, event, events[event - 1]
    return None


@pytest.fixture(scope="module")
def case(digitised, tmp_path_factory):
    """Accounts with API tokens; leavers reconciled and signed off until one has a page sent for one entry."""
    archive = copy_with_accounts(digitised.archive, tmp_path_factory.mktemp("covers"), ACCOUNTS, None)
    patients = json.loads(digitised.batch.index.read_text())["patients"]
    with Catalogue.open(archive, create=False) as catalogue:
        tokens = {n: issue_token(catalogue, Who("setup", Role.owner), n) for n in ACCOUNTS}
        change(catalogue, Who("setup", Role.owner), "dr.a", password=PASSWORD)  # for the leaver's page
        for patient in patients[1:] + patients[:1]:  # the second patient has such a page at seed 7
            nhs = patient["nhs_number"]
            lid = leavers.add(catalogue, Who("admin", Role.practice_admin), nhs, "A81001").id
            leavers.reconcile(catalogue, A, lid, digitised.batch.out / patient["coded"]["csv"])
            found = _candidate(catalogue, nhs)
            if found is not None:
                leavers.sign_off(catalogue, A, lid, "as reconciled")
                others = [p for p in patients if p is not patient]
                return archive, nhs, lid, found, tokens, digitised.batch.out / others[0]["coded"]["csv"]
    pytest.fail("no reconciled page is sent for a single entry near a coded event: construct one with a coded CSV")


def _lgd(archive: Path, nhs: str, *args: str, who: str):
    return run_lgd("review", "--patient", nhs, "--archive", archive, *args, "--as", who)


def _api(archive: Path, tokens: dict[str, str]):
    from fastapi.testclient import TestClient

    from pipelines.web.app import create_app

    app = create_app(archive)
    clients = {}
    for name, token in tokens.items():
        clients[name] = TestClient(app)
        clients[name].headers["Authorization"] = f"Bearer {token}"
    return clients


def _page(archive: Path, nhs: str, page_id: str) -> dict:
    """The page as `lgd review --json` lists it (read in-process: a subprocess per look costs seconds)."""
    with Catalogue.open(archive, create=False) as catalogue:
        p = next(p for p in latest_reconciliation(catalogue, nhs).pages if f"{p.document_id}-{p.page}" == page_id)
        waiting = latest_overrides(catalogue, nhs).get((p.document_id, p.page))
    return {"decision": p.effective,
            "awaiting_confirmation": {"by": waiting.actor} if waiting is not None and waiting.pending else None}


def test_a_covered_entry_makes_an_omission_two_clinicians_share(case, tmp_path):
    archive, nhs, lid, (number, page_id, entry, event, chosen), tokens, other_csv = case
    api = _api(archive, tokens)
    base = f"/api/v1/patients/{nhs}/entry-covers"
    spec = f"{number}:{entry}"
    listed = _lgd(archive, nhs, "--events", "--json", who="clerk").json
    assert listed["events"][event - 1]["code"] == chosen["code"]

    # Refused: a clerk (shell and web); an event of another patient's record; one chosen from an older record.
    clerk = _lgd(archive, nhs, "--cover-entry", spec, "--by", str(event), "--reason", "coded", who="clerk")
    assert clerk.returncode == 6 and "may not decide" in clerk.stderr
    body = {"page": page_id, "entry": entry, "event": event, "reason": "the letter is in the coded record"}
    assert api["clerk"].post(base, json=body).status_code == 403
    theirs = next(line.split(",")[2] for line in other_csv.read_text().splitlines()[1:]
                  if line.split(",")[2] not in {e["code"] for e in listed["events"]})
    refused = api["dr.a"].post(base, json=body | {"event": theirs})
    assert refused.status_code == 404 and refused.json()["error"] == "no_event"
    older = hashlib.sha256(other_csv.read_bytes()).hexdigest()
    stale = api["dr.a"].post(base, json=body | {"coded_sha256": older})
    assert stale.status_code == 409 and stale.json()["error"] == "stale_coded_record"
    with Catalogue.open(archive, create=False) as catalogue:
        assert leavers.get(catalogue, A, lid).state.value == "signed_off"

    # Clinician A covers the entry: the page's omission is proposed, and the page is still sent.
    done = _lgd(archive, nhs, "--cover-entry", spec, "--by", str(event), "--reason",
                "the hospital letter is in the coded record", "--json", who="dr.a")
    assert done.returncode == 0, done.stderr
    assert done.json["omission"] == "proposed" and done.json["event"]["code"] == chosen["code"]
    listed = _lgd(archive, nhs, "--entries", str(number), "--json", who="clerk").json["entries"][entry - 1]
    assert listed["status"] != "covered" and listed["covered_by"]["by"] == "dr.a"
    waiting = _page(archive, nhs, page_id)
    assert waiting["decision"] == "include" and waiting["awaiting_confirmation"]["by"] == "dr.a"
    with Catalogue.open(archive, create=False) as catalogue:
        back = leavers.get(catalogue, A, lid)
        assert back.state.value == "in_review" and any("person's decision" in c for c in back.why)
        blocked = api["dr.a"].post(f"/api/v1/leavers/{lid}/sign-off", json={})
        assert blocked.status_code == 409 and blocked.json()["error"] == "awaiting_confirmation"

    # Four eyes: A cannot confirm; B does, and the page is left out.
    own = _lgd(archive, nhs, "--confirm", page_id, who="dr.a")
    assert own.returncode == 6 and "second clinician" in own.stderr
    confirmed = api["dr.b"].post(f"/api/v1/patients/{nhs}/confirmations", json={"page": page_id})
    assert confirmed.status_code == 200, confirmed.text
    assert _page(archive, nhs, page_id)["decision"] == "omit"

    # The review details and the print pack's cover name both clinicians and the event.
    with Catalogue.open(archive, create=False) as catalogue:
        shown = next(p for p in leaver_review.details(catalogue, A, lid)["pages"] if p["id"] == page_id)
    assert shown["send"] is False
    why = shown["omitted_because"]
    assert why.startswith(f"every entry covered: entry {entry} by dr.a as {chosen['display']}") and "confirmed by dr.b" in why
    assert shown["entries"][entry - 1]["covered_by"]["event"]["code"] == chosen["code"]
    pack = run_lgd("pack", "--patient", nhs, "--format", "print", "--keep-minimal", "--out", tmp_path / "print",
                   "--archive", archive, "--as", "admin", "--json")
    assert pack.returncode == 0, pack.stderr
    text = subprocess.run(["pdftotext", "-layout", tmp_path / "print" / "print-pack.pdf", "-"], capture_output=True,
                          text=True, check=True).stdout
    flat = " ".join(text.split())
    assert f"every entry covered: entry {entry} by dr.a as {chosen['display']}" in flat
    assert "confirmed by dr.b" in flat and f"covered by dr.a's choice: {chosen['display']}" in flat

    # Clearing the cover withdraws the omission: the page is sent again, and both steps are audited.
    cleared = api["dr.a"].request("DELETE", base, json={"page": page_id, "entry": entry, "reason": "wrong event"})
    assert cleared.status_code == 200 and cleared.json()["omission"] == "withdrawn"
    assert _page(archive, nhs, page_id)["decision"] == "include"
    again = api["dr.a"].request("DELETE", base, json={"page": page_id, "entry": entry, "reason": "twice"})
    assert again.status_code == 409 and again.json()["error"] == "nothing_to_clear"
    with Catalogue.open(archive, create=False) as catalogue:
        actions = [(a.actor, a.action) for a in catalogue.audit_log(nhs)]
    assert ("dr.a", "entry_covered") in actions and ("dr.a", "entry_cover_cleared") in actions
    assert ("dr.a", "override_cleared") in actions and ("dr.b", "override_confirmed") in actions

    # The leaver's page offers the cover as a form beside the entry; posting it proposes the omission again.
    from fastapi.testclient import TestClient

    from pipelines.web.app import create_app

    browser = TestClient(create_app(archive))
    token = re.search(r'name="token" value="([^"]+)"', browser.get("/login").text).group(1)
    browser.post("/login", data={"username": "dr.a", "password": PASSWORD, "token": token, "next": "/"})
    screen = browser.get(f"/leavers/{lid}").text
    assert f'id="cover-{number}-{entry}"' in screen
    csrf = re.search(r'name="csrf" value="([^"]+)"', screen).group(1)
    posted = browser.post(f"/leavers/{lid}/entry-covers", data={"csrf": csrf, "page": page_id, "entry": entry,
                                                                "event": event, "reason": "the right event"})
    assert posted.status_code == 200 and "second clinician" in posted.text and f'id="covered-{number}-{entry}"' in posted.text
    assert _page(archive, nhs, page_id)["awaiting_confirmation"]["by"] == "dr.a"


def test_a_cover_holds_only_for_the_entry_as_read_and_the_record_it_named():
    entry = {"date": "1991-07-10", "text": "I saw Mrs Ward in the fracture clinic", "status": "paper-only"}
    record = "a" * 64
    run = ReconciliationRow(1, "9994047868", "csv", record, 30, dt.datetime(2026, 12, 3), "dr.a", {},
                            (PageDecisionRow(1, 8, "include", "1 paper-only of 1 entries", (entry,)),))
    cover = EntryCoverRow(1, "9994047868", 1, 8, 0, entry_sha256(entry), "paper-only",
                          CoveredBy(record, "http://snomed.info/sct", "38102005", "Cholecystectomy", "1991-07-10"),
                          None, "coded at discharge", "dr.a", dt.datetime(2026, 12, 3))
    assert covers_in_force([cover], run) == {(1, 8): {0: cover}}
    reread = replace(run, pages=(PageDecisionRow(1, 8, "include", "", ({**entry, "text": "I saw Mrs Ward"},)),))
    assert covers_in_force([cover], reread) == {}  # the entry reads otherwise: void
    other = replace(run, coded_sha256="b" * 64)
    assert covers_in_force([cover], other) == {}  # checked against another coded record: void
    cleared = replace(cover, id=2, event=None)
    assert covers_in_force([cover, cleared], run) == {}
    # An omission the covers proposed goes back to the machine's decision (sent) once they no longer hold.
    decided = OverrideRow(7, "9994047868", 1, 8, "omit", "every entry covered", "dr.a", dt.datetime(2026, 12, 3), True,
                          "dr.b", dt.datetime(2026, 12, 3))
    page = PlannedPage(1, "record.pdf", 8, "pdf/x.pdf", "omit", "include", "1 paper-only of 1 entries", (entry,),
                       decided, "letter", "entries_not_covered", {"entries": 1, "paper-only": 1})
    held = _with_covers(page, {0: replace(cover, override_id=7)}, {7})
    assert held.decision == "omit" and omission(held).kind == "entries_covered"
    assert "entry 1 by dr.a as Cholecystectomy (1991-07-10)" in omission(held).text
    void = _with_covers(page, {}, {7})
    assert void.decision == "include" and void.override is None and "no longer holds" in void.reason
    # Dates at their precision: a month overlaps its days; years apart is another episode.
    assert date_gap("1991-07", "1991-07-10") == 0 and date_gap("1991-07-10", None) is None
    assert date_gap("1991-07-10", "1993-07-10") > COVER_WINDOW_DAYS
