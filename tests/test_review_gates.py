"""The safety gates on people's decisions (issue 14), the same for the shell and the web: who may
send more, who may leave out, and four eyes before a page lgd would send is left out."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from index import Catalogue
from index.rows import OverrideRow
from pipelines.transfer.plan import PlannedPage
from pipelines.transfer.reasons import omission
from tests.conftest import copy_with_accounts, run_lgd

ACCOUNTS = {"admin": "practice-admin", "dr.patel": "clinician", "dr.jones": "clinician", "clerk": "clerk"}


def _first(digitised) -> dict:
    return json.loads(digitised.batch.index.read_text())["patients"][0]


@pytest.fixture(scope="module")
def archive(digitised, tmp_path_factory) -> Path:
    """Accounts for two clinicians, a clerk and an admin; the first patient reconciled."""
    copy = copy_with_accounts(digitised.archive, tmp_path_factory.mktemp("gates"), ACCOUNTS, None)
    first = _first(digitised)
    done = run_lgd("reconcile", "--patient", first["nhs_number"], "--coded", digitised.batch.out / first["coded"]["csv"],
                   "--archive", copy, "--as", "dr.patel")
    assert done.returncode == 0, done.stderr
    return copy


def review(archive: Path, nhs: str, *args: str, who: str | None = None):
    return run_lgd("review", "--patient", nhs, "--archive", archive, *args, *(("--as", who) if who else ()))


def test_four_eyes_before_a_page_lgd_would_send_is_left_out(digitised, archive):
    nhs = _first(digitised)["nhs_number"]
    listing = review(archive, nhs, "--json", who="clerk").json["pages"]
    sent = next(p for p in listing if p["decision"] == "include")
    number, page_id = str(sent["number"]), sent["id"]
    assert [p["number"] for p in listing] == list(range(1, len(listing) + 1))

    clerk = review(archive, nhs, "--omit", number, "--reason", "looks done", who="clerk")
    assert clerk.returncode == 6 and "may not decide" in clerk.stderr

    first = review(archive, nhs, "--omit", page_id, "--reason", "copy of the typed letter", "--json", who="dr.patel")
    assert first.returncode == 0 and first.json["pending"] is True
    waiting = next(p for p in review(archive, nhs, "--json", who="clerk").json["pages"] if p["id"] == page_id)
    assert waiting["decision"] == "include" and waiting["awaiting_confirmation"]["by"] == "dr.patel"

    own = review(archive, nhs, "--confirm", number, who="dr.patel")
    assert own.returncode == 6 and "second clinician" in own.stderr
    assert review(archive, nhs, "--confirm", page_id, who="clerk").returncode == 6

    second = review(archive, nhs, "--confirm", f"{sent['source']}:{sent['page']}", "--json", who="dr.jones")
    assert second.returncode == 0, second.stderr
    now = next(p for p in review(archive, nhs, "--json", who="clerk").json["pages"] if p["id"] == page_id)
    assert now["decision"] == "omit" and now["override"]["by"] == "dr.patel"
    assert now["override"]["confirmed_by"] == "dr.jones" and "awaiting_confirmation" not in now
    with Catalogue.open(archive, create=False) as catalogue:
        actions = [(a.actor, a.action) for a in catalogue.audit_log(nhs)]
    assert ("dr.patel", "override") in actions and ("dr.jones", "override_confirmed") in actions

    # A clerk may always send more paper, which undoes the omission at once.
    back = review(archive, nhs, "--include", number, "--reason", "receiving GP asked for it", who="clerk")
    assert back.returncode == 0
    assert next(p for p in review(archive, nhs, "--json", who="clerk").json["pages"]
                if p["id"] == page_id)["decision"] == "include"


def test_the_cover_names_both_clinicians_of_a_confirmed_omission():
    decided = OverrideRow(7, "9434765919", 1, 2, "omit", "copy of the typed letter", "dr.patel",
                          dt.datetime(2026, 12, 1, 9, 0), True, "dr.jones", dt.datetime(2026, 12, 1, 9, 30))
    page = PlannedPage(1, "record.pdf", 2, "pdf/x.pdf", "omit", "include", "1 paper-only of 3 entries", (), decided,
                       "card", "entries_not_covered", {"entries": 3, "paper-only": 1})
    text = omission(page).text
    assert "dr.patel's decision" in text and "confirmed by dr.jones" in text and "copy of the typed letter" in text


def test_the_web_applies_the_same_gates(digitised, archive):
    from fastapi.testclient import TestClient

    from pipelines.service import accounts
    from pipelines.service.access import Role, Who
    from pipelines.web.app import create_app

    nhs = _first(digitised)["nhs_number"]
    with Catalogue.open(archive, create=False) as catalogue:  # passwords for two clinicians and the clerk
        for name in ("dr.patel", "dr.jones", "clerk"):
            accounts.change(catalogue, Who("setup", Role.owner), name, password="a long enough pass")
    app = create_app(archive)

    def signed_in(name: str) -> TestClient:
        client = TestClient(app)
        client.headers["X-CSRF-Token"] = client.post(
            "/api/v1/session", json={"username": name, "password": "a long enough pass"}).json()["csrf"]
        return client

    pages = signed_in("clerk").get(f"/api/v1/patients/{nhs}/pages").json()["pages"]
    page_id = next(p["id"] for p in pages if p["send"] and not p["unreadable"])
    decision = {"page": page_id, "decision": "omit", "reason": "the same letter is typed on page 5"}
    clerk = signed_in("clerk").post(f"/api/v1/patients/{nhs}/decisions", json=decision)
    assert clerk.status_code == 403 and clerk.json()["error"] == "not_permitted"
    patel = signed_in("dr.patel")
    made = patel.post(f"/api/v1/patients/{nhs}/decisions", json=decision)
    assert made.status_code == 200 and made.json()["pending"] is True
    assert next(p for p in patel.get(f"/api/v1/patients/{nhs}/pages").json()["pages"] if p["id"] == page_id)["send"]
    own = patel.post(f"/api/v1/patients/{nhs}/confirmations", json={"page": page_id})
    assert own.status_code == 403 and own.json()["error"] == "four_eyes"
    jones = signed_in("dr.jones")
    no_token = TestClient(app, cookies=jones.cookies).post(f"/api/v1/patients/{nhs}/confirmations", json={"page": page_id})
    assert no_token.status_code == 403 and no_token.json()["error"] == "csrf"
    assert jones.post(f"/api/v1/patients/{nhs}/confirmations", json={"page": page_id}).json()["confirmed_by"] == "dr.jones"
    assert not next(p for p in jones.get(f"/api/v1/patients/{nhs}/pages").json()["pages"] if p["id"] == page_id)["send"]
