"""lgd serve's JSON API against the real application and a real digitised archive (no mocks).

Accounts are made with the real `lgd user` command; requests go through FastAPI's TestClient
(httpx) into the same handlers uvicorn serves.
"""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from index import Catalogue
from tests.conftest import run_lgd

PASSWORD = "correct horse battery staple"
ROLES = {"admin": "practice-admin", "dr.patel": "clinician", "clerk": "clerk", "auditor": "auditor"}
ROUTES = ["/api/v1/search?q=asthma", "/api/v1/patients?nhs_number=9434765919", "/api/v1/patients/9434765919/pages",
          "/api/v1/pages/1-1", "/api/v1/pages/1-1/image", "/api/v1/audit", "/api/v1/session"]


@pytest.fixture(scope="module")
def archive(digitised, tmp_path_factory) -> Path:
    """A copy of the session's digitised archive with one account per role (made with `lgd user add`)."""
    copy = tmp_path_factory.mktemp("serve") / "lgd-archive"
    shutil.copytree(digitised.archive, copy)
    secret = copy.parent / "pw"
    secret.write_text(PASSWORD + "\n")
    first = run_lgd("user", "add", "admin", "--role", "practice-admin", "--password-file", secret, "--archive", copy)
    assert first.returncode == 0, first.stderr
    for name, role in ROLES.items():
        if name != "admin":
            done = run_lgd("user", "add", name, "--role", role, "--password-file", secret, "--archive", copy,
                           "--as", "admin")
            assert done.returncode == 0, done.stderr
    return copy


@pytest.fixture(scope="module")
def app(archive):
    from pipelines.web.app import create_app
    return create_app(archive)


def signed_in(app, name: str) -> TestClient:
    client = TestClient(app)
    r = client.post("/api/v1/session", json={"username": name, "password": PASSWORD})
    assert r.status_code == 200, r.text
    client.headers["X-CSRF-Token"] = r.json()["csrf"]
    return client


def a_patient(archive: Path) -> tuple[str, str]:
    """An NHS number and one of its page ids."""
    with Catalogue.open(archive, create=False) as catalogue:
        doc = next(d for d in catalogue.documents(status="ok") if d.page_count)
        return doc.nhs_number, f"{doc.id}-1"


def test_every_route_but_sign_in_answers_401_json_without_a_session(app):
    client = TestClient(app)
    for route in ROUTES:
        r = client.get(route)
        assert r.status_code == 401, route
        assert r.json()["error"] == "not_signed_in" and "sign in" in r.json()["message"]
    assert client.delete("/api/v1/session").status_code == 401


def test_sign_in_sets_a_strict_http_only_cookie_and_a_wrong_password_is_audited(app, archive):
    client = TestClient(app)
    bad = client.post("/api/v1/session", json={"username": "clerk", "password": "not the password at all"})
    assert bad.status_code == 401 and bad.json()["error"] == "bad_credentials"
    good = client.post("/api/v1/session", json={"username": "Clerk", "password": PASSWORD})
    assert good.status_code == 200 and good.json()["user"] == "clerk" and good.json()["role"] == "clerk"
    cookie = next(c for c in good.headers.get_list("set-cookie") if c.startswith("lgd_session="))
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
    assert client.get("/api/v1/session").json() == {"user": "clerk", "role": "clerk"}
    with Catalogue.open(archive, create=False) as catalogue:
        actions = [(r.actor, r.action) for r in catalogue.audit_log(limit=20)]
    assert ("clerk", "login_failed") in actions and ("clerk", "login") in actions


def test_each_role_may_use_only_its_routes(app, archive):
    nhs, page = a_patient(archive)
    viewing = [f"/api/v1/search?q=asthma&patient={nhs}", f"/api/v1/patients?nhs_number={nhs}",
               f"/api/v1/patients/{nhs}/pages", f"/api/v1/pages/{page}", f"/api/v1/pages/{page}/image"]
    for name in ("clerk", "dr.patel", "admin"):
        client = signed_in(app, name)
        for route in viewing:
            assert client.get(route).status_code == 200, (name, route)
        r = client.get("/api/v1/audit")
        assert r.status_code == 403 and r.json()["error"] == "not_permitted", name
    auditor = signed_in(app, "auditor")
    for route in viewing:
        r = auditor.get(route)
        assert r.status_code == 403 and "auditor" in r.json()["message"], route
    assert auditor.get("/api/v1/audit").status_code == 200


def test_a_change_without_the_csrf_token_is_refused(app):
    client = signed_in(app, "clerk")
    token = client.headers.pop("X-CSRF-Token")
    r = client.delete("/api/v1/session")
    assert r.status_code == 403 and r.json()["error"] == "csrf"
    assert client.delete("/api/v1/session", headers={"X-CSRF-Token": "forged"}).status_code == 403
    assert client.delete("/api/v1/session", headers={"X-CSRF-Token": token}).status_code == 204
    assert client.get("/api/v1/session").status_code == 401  # signed out for good


def test_api_tokens_work_without_cookies_and_die_with_their_account(app, archive):
    made = run_lgd("user", "add", "script", "--role", "clerk", "--no-password", "--archive", archive, "--as", "admin")
    assert made.returncode == 0, made.stderr
    token = run_lgd("user", "token", "script", "--archive", archive, "--as", "admin").stdout.strip()
    assert token.startswith("lgd_")
    client = TestClient(app)
    bearer = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/v1/session", headers=bearer).json() == {"user": "script", "role": "clerk"}
    with Catalogue.open(archive, create=False) as catalogue:  # only a hash is stored
        assert token not in json.dumps([list(r) for r in catalogue._conn.execute("SELECT * FROM tokens")])
    assert client.get("/api/v1/session", headers={"Authorization": "Bearer lgd_guessed"}).status_code == 401
    assert run_lgd("user", "disable", "script", "--archive", archive, "--as", "admin").returncode == 0
    assert client.get("/api/v1/session", headers=bearer).status_code == 401
    assert run_lgd("user", "enable", "script", "--archive", archive, "--as", "admin").returncode == 0
    assert client.get("/api/v1/session", headers=bearer).status_code == 401  # disabling revoked it for good


def test_repeated_failed_sign_ins_are_throttled_even_with_the_right_password(archive):
    from pipelines.web.app import create_app

    client = TestClient(create_app(archive))
    for _ in range(5):
        assert client.post("/api/v1/session", json={"username": "dr.patel", "password": "wrong " * 3}).status_code == 401
    r = client.post("/api/v1/session", json={"username": "dr.patel", "password": PASSWORD})
    assert r.status_code == 429 and r.json()["error"] == "too_many_attempts"


def test_search_gives_what_lgd_search_json_gives(app, archive):
    nhs, _ = a_patient(archive)
    api = signed_in(app, "clerk").get("/api/v1/search", params={"q": "asthma OR cough", "patient": nhs, "limit": 5})
    shell = run_lgd("search", "asthma OR cough", "--patient", nhs, "--limit", "5", "--json", "--archive", archive,
                    "--as", "clerk")
    assert api.status_code == 200 and shell.returncode == 0
    assert api.json() == shell.json
    with Catalogue.open(archive, create=False) as catalogue:
        rows = [r.detail for r in catalogue.audit_log(action="search", nhs_number=nhs) if r.actor == "clerk"]
    assert {"role": "clerk", "client": "testclient"}.items() <= rows[-2].items()  # the API's
    assert {"role": "clerk", "client": "shell"}.items() <= rows[-1].items()  # the shell's, run --as clerk


def test_patient_pages_and_a_page_whose_boxes_fit_its_image(app, archive):
    nhs, page_id = a_patient(archive)
    client = signed_in(app, "dr.patel")
    found = client.get("/api/v1/patients", params={"nhs_number": nhs}).json()["patients"]
    assert [p["nhs_number"] for p in found] == [nhs] and found[0]["pages"] >= 1
    pages = client.get(f"/api/v1/patients/{nhs}/pages").json()["pages"]
    assert pages and all(p["send"] for p in pages)  # no reconciliation yet: every page is sent
    assert {"id", "source", "page", "kind", "blank", "duplicate_of", "unreadable", "dates"} <= set(pages[0])
    page = client.get(f"/api/v1/pages/{page_id}").json()
    image = client.get(f"/api/v1/pages/{page_id}/image")
    assert image.headers["content-type"] == "image/jpeg"
    picture = Image.open(io.BytesIO(image.content))
    assert picture.size == (page["width"], page["height"])
    for e in page["entries"]:
        left, top, right, bottom = e["box"]
        assert 0 <= left < right <= page["width"] and 0 <= top < bottom <= page["height"]
    # A second request is served from the cache, which is private like the rest of the archive.
    cached = list((archive / "cache" / "pages").glob("*.jpg"))
    assert cached and all(p.stat().st_mode & 0o077 == 0 for p in cached)
    assert client.get(f"/api/v1/pages/{page_id}/image").content == image.content
    by_name = client.get("/api/v1/patients", params={"name": found[0]["name"].split()[-1], "dob": found[0]["dob"]})
    assert nhs in [p["nhs_number"] for p in by_name.json()["patients"]]


def test_the_audit_shows_who_saw_what_from_where(app, archive):
    nhs, page_id = a_patient(archive)
    signed_in(app, "dr.patel").get(f"/api/v1/pages/{page_id}")
    auditor = signed_in(app, "auditor")
    events = auditor.get("/api/v1/audit", params={"user": "dr.patel", "patient": nhs}).json()["events"]
    opened = [e for e in events if e["action"] == "open_page"]
    assert opened and opened[-1]["role"] == "clinician" and opened[-1]["client"] == "testclient"
    assert set(opened[-1]) == {"time", "user", "role", "action", "nhs_number", "detail", "client"}
    csv_text = auditor.get("/api/v1/audit", params={"format": "csv", "user": "dr.patel"}).text
    assert csv_text.splitlines()[0] == "time,user,role,action,nhs_number,client,detail" and "open_page" in csv_text
    shell = run_lgd("audit", "--user", "dr.patel", "--json", "--archive", archive, "--as", "auditor")
    assert shell.returncode == 0 and any(e["action"] == "open_page" for e in shell.json["events"])


def test_hostile_requests_get_a_json_4xx(app):
    client = signed_in(app, "clerk")
    cases = {
        "/api/v1/search?q=" + "a" * 600: (400, "bad_query"),
        "/api/v1/search?q=asthma&from=notadate": (400, "bad_date"),
        "/api/v1/search?q=asthma&patient=1234567890": (400, "bad_nhs_number"),
        "/api/v1/search?q=asthma&limit=100000": (400, "bad_limit"),
        '/api/v1/search?q="unclosed AND (': (None, None),
        "/api/v1/pages/..%2F..%2Fetc%2Fpasswd": (404, "no_such_route"),
        "/api/v1/pages/1-1%00.jpg": (400, "bad_page_id"),
        "/api/v1/pages/<script>alert(1)<%2Fscript>x": (404, "no_such_route"),
        "/api/v1/pages/<img src=x onerror=alert(1)>": (400, "bad_page_id"),
        "/api/v1/pages/999999-1": (404, "no_page"),
        "/api/v1/patients/0000000000/pages": (400, "bad_nhs_number"),
        "/api/v1/nothing-here": (404, "no_such_route"),
    }
    for route, (status, code) in cases.items():
        r = client.get(route)
        assert r.headers["content-type"].startswith("application/json"), route
        assert "Traceback" not in r.text and "/lgd-archive" not in r.text, route
        if status is None:
            assert r.status_code in (200, 400), route
        else:
            assert (r.status_code, r.json()["error"]) == (status, code), route
    big = client.post("/api/v1/session", content=b"{" + b" " * 70_000 + b"}",
                      headers={"Content-Type": "application/json"})
    assert big.status_code == 413
    junk = TestClient(client.app).post("/api/v1/session", content=b"not json", headers={"Content-Type": "application/json"})
    assert junk.status_code == 400 and junk.json()["error"] == "bad_request"


def test_the_shell_says_who_it_is_once_the_archive_has_accounts(archive):
    nobody = run_lgd("user", "list", "--archive", archive)
    assert nobody.returncode == 6 and "--as" in nobody.stderr
    clerk = run_lgd("user", "add", "x.y", "--role", "clerk", "--no-password", "--archive", archive, "--as", "clerk")
    assert clerk.returncode == 6 and "may not manage users" in clerk.stderr
    listed = run_lgd("user", "list", "--json", "--archive", archive, env={"LGD_USER": "admin"})
    assert listed.returncode == 0 and {u["name"] for u in listed.json["users"]} >= set(ROLES)
    weak = run_lgd("user", "passwd", "clerk", "--password-file", "/dev/null", "--archive", archive, "--as", "admin")
    assert weak.returncode == 2 and "at least 12" in weak.stderr


def test_every_shell_command_on_an_archive_with_accounts_names_a_permitted_user(archive):
    nhs, _ = a_patient(archive)
    unnamed = run_lgd("search", "asthma", "--archive", archive)
    assert unnamed.returncode == 6 and "--as NAME or LGD_USER" in unnamed.stderr
    stranger = run_lgd("search", "asthma", "--archive", archive, "--as", "nobody")
    assert stranger.returncode == 6 and "no enabled account" in stranger.stderr
    auditor = run_lgd("page", "x.pdf", "1", "--patient", nhs, "--archive", archive, "--as", "auditor")
    assert auditor.returncode == 6 and "may not view" in auditor.stderr
    clerk_decides = run_lgd("reconcile", "--patient", nhs, "--archive", archive, env={"LGD_USER": "clerk"})
    assert clerk_decides.returncode == 6 and "may not decide" in clerk_decides.stderr
    clerk_looks = run_lgd("search", "asthma", "--patient", nhs, "--archive", archive, "--as", "clerk", "--json")
    assert clerk_looks.returncode == 0
    with Catalogue.open(archive, create=False) as catalogue:
        row = catalogue.audit_log(action="search", nhs_number=nhs)[-1]
    assert row.actor == "clerk" and row.detail["role"] == "clerk" and row.detail["client"] == "shell"


def test_people_opening_one_uncached_page_at_once_all_get_the_whole_image(app, archive):
    """Server threads share a process id: each render must write a file of its own (found by the load benchmark)."""
    from concurrent.futures import ThreadPoolExecutor

    from pipelines.service import notes
    from pipelines.service.access import Role, Who

    _, page_id = a_patient(archive)
    for cached in (archive / "cache" / "pages").glob("*"):
        cached.unlink()
    who = Who("dr.patel", Role.clinician, "test")

    def look(_: int) -> bytes:
        with Catalogue.open(archive, create=False) as catalogue:
            return notes.page_image(catalogue, who, archive, page_id)

    with ThreadPoolExecutor(8) as pool:
        images = list(pool.map(look, range(16)))
    assert len(set(images)) == 1 and len(images[0]) > 1000
    assert [p.name for p in (archive / "cache" / "pages").iterdir() if p.suffix == ".part"] == []
