"""lgd serve's browser pages against the real application and a real digitised archive (no mocks).

Accounts are made with the real `lgd user` command and one patient is reconciled with the real
`lgd reconcile`; a hostile document (script in its source name, patient name, OCR words and
entry, and an unreadable page) is stored through the catalogue and full-text index's own API.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import lxml.html
import pytest
from fastapi.testclient import TestClient

from index import Catalogue, FullText
from index.rows import DocumentRow, EntryRow, PageRow, PatientRow
from pipelines.reindex import document_pages
from tests.conftest import copy_with_accounts, run_lgd

PASSWORD = "correct horse battery staple"
ROLES = {"admin": "practice-admin", "dr.patel": "clinician", "clerk": "clerk", "auditor": "auditor"}
HOSTILE = "<script>alert(1)</script>"
HOSTILE_NHS = "9434765919"
VIEWERS = ("clerk", "dr.patel", "admin")


def add_hostile_document(archive: Path) -> str:
    """A two-page document whose every string a page shows carries markup; page 2 is unreadable. Its page id."""
    words = [(w, 100 + 160 * i, 200, 240 + 160 * i, 240, 90.0, 1, 1)
             for i, w in enumerate(["12/03/2001", HOSTILE, "asthma", "<img", "src=x", "onerror=alert(2)>"])]
    text = " ".join(w[0] for w in words)
    readable = PageRow(1, 1240, 1748, 150, 0, 0.0, False, "0" * 16, None, 91.0, False, "card", text, tuple(words))
    unreadable = PageRow(2, 1240, 1748, 150, 0, 0.0, False, "f" * 16, None, 20.0, True, "card", "", ())
    entry = EntryRow(1, dt.date(2001, 3, 12), "12/03/2001", text, (100, 200, 1100, 240), 90.0)
    doc = DocumentRow(f"{HOSTILE}.pdf", "ab" * 32, HOSTILE_NHS, 2, "ok", "pdf/not-rendered.pdf", False, None, None, None, None, 1000)
    with Catalogue.open(archive, create=False) as catalogue:
        doc_id = catalogue.record_document(PatientRow(HOSTILE_NHS, f"{HOSTILE} Tables", dt.date(1970, 1, 1)), doc,
                                           [readable, unreadable], [entry])
        failed = DocumentRow(f"{HOSTILE}-2.tif", "cd" * 32, HOSTILE_NHS, 0, "failed", None, False, None, None,
                             f"could not read the <b>TIFF</b> {HOSTILE}", "unreadable_input", 10)
        catalogue.record_failure(PatientRow(HOSTILE_NHS), failed)
        fulltext = FullText.open(archive, create=False)
        try:
            fulltext.add_pages(document_pages(catalogue, catalogue.document(doc_id)))
        finally:
            fulltext.close()
    return f"{doc_id}-1"


@pytest.fixture(scope="module")
def archive(digitised, tmp_path_factory) -> Path:
    """A copy of the session's archive: one account per role, one patient reconciled, one hostile document."""
    copy = copy_with_accounts(digitised.archive, tmp_path_factory.mktemp("pages"), ROLES, PASSWORD)
    nhs = reconciled_patient(digitised)
    coded = digitised.batch.out / next(p for p in _index(digitised) if p["nhs_number"] == nhs)["coded"]["csv"]
    done = run_lgd("reconcile", "--patient", nhs, "--coded", coded, "--archive", copy, "--as", "dr.patel")
    assert done.returncode == 0, done.stderr
    add_hostile_document(copy)
    return copy


def _index(digitised) -> list[dict]:
    return json.loads(digitised.batch.index.read_text())["patients"]


def reconciled_patient(digitised) -> str:
    return _index(digitised)[0]["nhs_number"]


@pytest.fixture(scope="module")
def app(archive):
    from pipelines.web.app import create_app
    return create_app(archive)


def sign_in(app, name: str, password: str = PASSWORD, next_: str = "/") -> tuple[TestClient, object]:
    client = TestClient(app, follow_redirects=False)
    form = client.get("/login")
    token = lxml.html.fromstring(form.text).xpath("//input[@name='token']/@value")[0]
    return client, client.post("/login", data={"username": name, "password": password, "token": token,
                                               "next": next_})


def signed_in(app, name: str) -> TestClient:
    client, r = sign_in(app, name)
    assert r.status_code == 303, r.text
    return client


def page_of(r) -> lxml.html.HtmlElement:
    assert r.headers["content-type"].startswith("text/html"), r.headers["content-type"]
    return lxml.html.fromstring(r.text)


def pages_of(client: TestClient, nhs: str) -> list[dict]:
    r = client.get(f"/api/v1/patients/{nhs}/pages")
    assert r.status_code == 200, r.text
    return r.json()["pages"]


def test_signed_out_every_page_sends_the_browser_to_sign_in_and_back(app):
    client = TestClient(app, follow_redirects=False)
    for route in ("/", "/?q=asthma", f"/patients/{HOSTILE_NHS}", "/pages/1-1?q=asthma", "/audit"):
        r = client.get(route)
        assert r.status_code == 303, route
        assert r.headers["location"].startswith("/login?next=%2F"), (route, r.headers["location"])
    assert client.post("/logout", data={"csrf": "x"}).headers["location"].startswith("/login")


def test_the_sign_in_form_starts_the_same_session_as_the_api(app, archive):
    client, r = sign_in(app, "Clerk", next_="/patients/" + HOSTILE_NHS)
    assert (r.status_code, r.headers["location"]) == (303, "/patients/" + HOSTILE_NHS)
    cookie = next(c for c in r.headers.get_list("set-cookie") if c.startswith("lgd_session="))
    assert "HttpOnly" in cookie and "samesite=strict" in cookie.lower()
    assert client.get("/api/v1/session").json() == {"user": "clerk", "role": "clerk"}
    _, wrong = sign_in(app, "clerk", "not the password at all")
    assert wrong.status_code == 401 and "wrong" in page_of(wrong).xpath("string(//*[@id='login-error'])")
    _, far = sign_in(app, "clerk", next_="//evil.example/x")
    assert far.headers["location"] == "/"  # never an open redirect
    _, auditor = sign_in(app, "auditor")
    assert auditor.headers["location"] == "/audit"  # an auditor has nothing to do on the search page
    forged = TestClient(app, follow_redirects=False).post("/login", data={"username": "clerk", "password": PASSWORD})
    assert forged.status_code == 400 and "lgd_session" not in forged.headers.get("set-cookie", "")
    with Catalogue.open(archive, create=False) as catalogue:
        actions = [(a.actor, a.action) for a in catalogue.audit_log(limit=30)]
    assert ("clerk", "login") in actions and ("clerk", "login_failed") in actions


def test_each_role_sees_its_pages_and_a_plain_403_elsewhere(app, archive):
    with Catalogue.open(archive, create=False) as catalogue:
        doc = next(d for d in catalogue.documents(status="ok") if d.nhs_number != HOSTILE_NHS)
    viewing = ["/", f"/?nhs={doc.nhs_number}", "/?q=asthma", f"/patients/{doc.nhs_number}", f"/pages/{doc.id}-1"]
    for name in VIEWERS:
        client = signed_in(app, name)
        for route in viewing:
            r = client.get(route)
            assert r.status_code == 200, (name, route, r.text[:300])
            policy = r.headers["content-security-policy"]
            assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy and "unsafe" not in policy
            assert r.headers["x-frame-options"] == "DENY" and "<script" not in r.text
        denied = client.get("/audit")
        assert denied.status_code == 403 and "may not read the audit log" in page_of(denied).text_content()
    auditor = signed_in(app, "auditor")
    for route in viewing:
        r = auditor.get(route)
        assert r.status_code == 403, route
        assert "auditor may not view" in page_of(r).xpath("string(//*[@class='message'])"), route
    assert auditor.get("/audit").status_code == 200


def test_a_new_sign_in_ends_the_browsers_previous_session(app):
    client = signed_in(app, "clerk")
    before = client.cookies.get("lgd_session")
    token = lxml.html.fromstring(client.get("/login").text).xpath("//input[@name='token']/@value")[0]
    r = client.post("/login", data={"username": "dr.patel", "password": PASSWORD, "token": token, "next": "/"})
    assert r.status_code == 303 and client.cookies.get("lgd_session") != before
    assert client.get("/api/v1/session").json()["user"] == "dr.patel"
    stale = TestClient(app, cookies={"lgd_session": before})
    assert stale.get("/api/v1/session").status_code == 401


def test_a_mistake_in_the_forms_is_said_beside_them(app):
    client = signed_in(app, "clerk")
    for params, status, said in (({"nhs": "1234567890"}, 400, "not a valid NHS number"),
                                 ({"q": "asthma", "patient": HOSTILE_NHS, "from": "2001", "to": "1999"}, 400,
                                  "from date is after"),
                                 ({"q": "asthma", "patient": "9000000009"}, 404, "no patient"),
                                 ({"name": "Smith"}, 400, "by name and date of birth")):
        r = client.get("/", params=params)
        shown = page_of(r)
        assert r.status_code == status and said in shown.xpath("string(//*[@id='form-error'])"), (params, r.text[:500])
        assert shown.xpath("//input[@id='q']") and shown.xpath("//input[@id='nhs']")  # the forms are still there


def test_sign_out_needs_the_pages_csrf_field(app):
    client = signed_in(app, "clerk")
    token = page_of(client.get("/")).xpath("//form[@action='/logout']/input[@name='csrf']/@value")[0]
    for sent in ({}, {"csrf": "forged"}):
        r = client.post("/logout", data=sent)
        assert r.status_code == 403 and "refused" in page_of(r).text_content()
        assert client.get("/").status_code == 200  # still signed in
    r = client.post("/logout", data={"csrf": token})
    assert (r.status_code, r.headers["location"]) == (303, "/login")
    assert client.get("/").status_code == 303 and client.get("/api/v1/session").status_code == 401


def test_markup_in_notes_names_queries_and_errors_is_shown_as_text(app):
    client = signed_in(app, "dr.patel")
    with_script = [client.get("/", params={"q": "asthma", "patient": HOSTILE_NHS}),
                   client.get("/", params={"nhs": HOSTILE_NHS}),
                   client.get(f"/patients/{HOSTILE_NHS}"),
                   client.get("/", params={"q": HOSTILE}),
                   client.get("/", params={"q": f'"{HOSTILE}" asthma', "kind": "card"})]
    hit = page_of(with_script[0]).xpath("//a[@class='hit']")[0]
    viewer = client.get(hit.get("href"))
    with_script += [viewer, client.get("/pages/<img src=x onerror=alert(1)>"), client.get("/?q=a&from=<b>x</b>")]
    for r in with_script:
        assert r.status_code in (200, 400), r.url
        assert "<script>alert" not in r.text and "<img src=x" not in r.text and "<b>x" not in r.text, r.url
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in with_script[0].text
    assert HOSTILE in hit.text_content()  # the source name, as text
    snippet = page_of(with_script[0]).xpath("//p[@class='snippet']")[0]
    assert [m.text for m in snippet.xpath("mark")] == ["asthma"] and HOSTILE in snippet.text_content()
    shown = page_of(viewer)
    assert HOSTILE in shown.xpath("string(//ol[@class='entries'])") and HOSTILE in shown.xpath("string(//pre)")
    assert f"{HOSTILE} Tables" in page_of(with_script[2]).xpath("string(//h1)")
    auditor = signed_in(app, "auditor")
    log = auditor.get("/audit", params={"patient": HOSTILE_NHS})
    assert "<script>alert" not in log.text and HOSTILE in page_of(log).xpath("string(//table)")


def test_unreadable_pages_say_send_on_paper_and_left_out_pages_give_their_reason(app, digitised):
    client = signed_in(app, "clerk")
    rows = page_of(client.get(f"/patients/{HOSTILE_NHS}")).xpath("//tbody/tr")
    assert [r.xpath("string(td[last()]/strong)") for r in rows] == ["sent", "send on paper"]
    assert "unreadable" in rows[1].xpath("string(td[3])")
    shown = page_of(client.get(f"/patients/{HOSTILE_NHS}"))
    failed = shown.xpath("string(//*[@id='not-digitised'])")
    assert "1 scanned input of this patient could not be digitised" in failed and f"{HOSTILE}-2.tif" in failed
    assert "<b>TIFF</b>" in failed  # the reason, as text
    nhs = reconciled_patient(digitised)
    expected = pages_of(client, nhs)
    rows = page_of(client.get(f"/patients/{nhs}")).xpath("//tbody/tr")
    assert len(rows) == len(expected)  # nothing hides a page
    assert any(not p["send"] for p in expected) and any(p["send"] for p in expected)
    for row, p in zip(rows, expected, strict=True):
        said = " ".join(row.xpath("string(td[last()])").split())
        assert row.xpath("string(th/a/@href)") == f"/pages/{p['id']}"
        if p["unreadable"]:
            assert said.startswith("send on paper"), said
        elif p["send"]:
            assert said.startswith("sent (") and p["decision"]["reason"] in said, said
        else:
            assert said == f"left out: {p['decision']['reason']}", said


def test_the_viewer_outlines_matched_words_and_colours_entries_with_their_evidence(app, digitised):
    client = signed_in(app, "dr.patel")
    nhs = reconciled_patient(digitised)
    page_id = next(p["id"] for p in pages_of(client, nhs) if p["decision"]["reason_code"] == "entries_not_covered")
    page = client.get(f"/api/v1/pages/{page_id}").json()
    covered = next(e for e in page["entries"] if e["status"] == "covered")
    word = max(re.findall(r"[A-Za-z]{5,}", covered["text"]), key=len)
    api = client.get("/api/v1/search", params={"q": word, "patient": nhs, "limit": 200}).json()["hits"]
    boxes = next(h["boxes"] for h in api if (h["source"], h["page"]) == (page["source"], page["page"]))
    shown = page_of(client.get(f"/pages/{page_id}", params={"q": word}))
    drawn = shown.xpath("//svg//rect[@class='hit']")
    assert len(drawn) == len(boxes) >= 1
    for rect, (left, top, right, bottom) in zip(drawn, boxes, strict=True):
        assert float(rect.get("x").rstrip("%")) == pytest.approx(100 * left / page["width"], abs=0.001)
        assert float(rect.get("y").rstrip("%")) == pytest.approx(100 * top / page["height"], abs=0.001)
        assert float(rect.get("width").rstrip("%")) == pytest.approx(100 * (right - left) / page["width"], abs=0.001)
        assert float(rect.get("height").rstrip("%")) == pytest.approx(100 * (bottom - top) / page["height"], abs=0.001)
    statuses = [li.get("class") for li in shown.xpath("//ol[@class='entries']/li")]
    assert statuses == [f"status-{e['status']}" for e in page["entries"]]
    assert len(shown.xpath("//svg//rect[contains(@class, 'entry')]")) == len(page["entries"])
    n = page["entries"].index(covered) + 1
    evidence = shown.xpath(f"//li[@id='entry-{n}']//table[@class='evidence']")[0].text_content()
    assert all(ev["display"] in evidence for ev in covered["evidence"]) and covered["evidence"]
    assert shown.xpath("string(//img[@id='page-image']/@src)") == f"/api/v1/pages/{page_id}/image"
    doc, number = page_id.split("-")
    turn = {a.get("rel"): a.get("href") for a in shown.xpath("//nav[@class='turn']/a")}
    last = max(p["page"] for p in pages_of(client, nhs) if p["source"] == page["source"])
    assert turn.get("next") == (f"/pages/{doc}-{int(number) + 1}?q={word}" if int(number) < last else None)
    assert turn.get("prev") == (f"/pages/{doc}-{int(number) - 1}?q={word}" if int(number) > 1 else None)


def test_the_audit_page_filters_and_links_its_csv(app, archive, digitised):
    nhs = reconciled_patient(digitised)
    signed_in(app, "clerk").get(f"/patients/{nhs}")
    auditor = signed_in(app, "auditor")
    shown = page_of(auditor.get("/audit", params={"user": "clerk", "patient": nhs, "from": "2000", "to": "2100"}))
    rows = shown.xpath("//table[@class='audit']/tbody/tr")
    assert rows and {r.xpath("string(td[2])") for r in rows} == {"clerk"}
    assert {r.xpath("string(td[5])") for r in rows} == {nhs} and "view_patient" in {r.xpath("string(td[4])") for r in rows}
    link = shown.xpath("string(//a[@id='csv']/@href)")
    assert link == f"/api/v1/audit?format=csv&user=clerk&patient={nhs}&from=2000&to=2100"
    csv_text = auditor.get(link).text
    assert csv_text.startswith("time,user,role,action") and len(csv_text.splitlines()) == len(rows) + 1
    bad = auditor.get("/audit", params={"from": "yesterday"})
    assert bad.status_code == 400 and "not a date" in page_of(bad).xpath("string(//*[@class='message'])")


def test_repeated_failed_sign_ins_are_throttled_on_the_form_too(archive):
    from pipelines.web.app import create_app

    app = create_app(archive)
    for _ in range(5):
        assert sign_in(app, "dr.patel", "wrong " * 3)[1].status_code == 401
    _, r = sign_in(app, "dr.patel")
    assert r.status_code == 429 and "too many failed sign-ins" in page_of(r).text_content()
