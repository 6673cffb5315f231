"""The leavers pages in a real browser: a practice admin and two clinicians take a demo leaver from the
worklist to a verified, received pack, with the four-eyes gate refusing what it should.

A real `lgd serve` (test_serve_browser's `server` fixture over this module's archive) and Debian's
headless Chromium. The admin adds the leaver with its coded record, one clinician reconciles
and leaves out a page lgd would send, cannot confirm their own omission (no control on the
screen, and a forged form is refused), a second clinician confirms it, the first signs off,
the admin builds a 7z pack, downloads it (checked with `lgd verify`), marks it sent and
confirms receipt with the verify result. A clerk sees no omit control, a forged omit is a 403
page, and the clerk lists two more leavers from a CSV. Clicks and seconds from "add leaver" to
"pack downloaded" are printed for the README; screenshots go to LGD_SCREENSHOTS when set. A
second test, over HTTP alone, checks the refusals (4xx pages with their sentence), a large
coded-record upload, escaping, and the bulk actions.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlencode

import pytest

from index import Catalogue
from tests.conftest import REPO, copy_with_accounts, run_lgd
from tests.test_serve_browser import PASSWORD, WAIT, chromium, server, shoot, shots, sign_in  # noqa: F401

ODS, MOVEMENT = "B82005", "PCSE-2026-0042"


@pytest.fixture(scope="module")
def archive(digitised, tmp_path_factory) -> Path:
    return copy_with_accounts(digitised.archive, tmp_path_factory.mktemp("leavers"),
                              {"admin": "practice-admin", "dr.patel": "clinician", "dr.jones": "clinician",
                               "j.clerk": "clerk"}, PASSWORD)


@pytest.fixture(scope="module")
def downloads(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("downloads")


@pytest.fixture(scope="module")
def browser(downloads):
    driver = chromium(downloads)
    try:
        yield driver
    finally:
        driver.quit()


def controls_without_label(html: str) -> list[str]:
    """The form fields of a page that no <label for=...> names (hidden fields and buttons need none)."""
    from html.parser import HTMLParser

    class Fields(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.fields: list[str] = []
            self.labelled: set[str] = set()

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            a = dict(attrs)
            if tag == "label" and a.get("for"):
                self.labelled.add(a["for"])
            elif tag in ("input", "select", "textarea") and a.get("type") not in ("hidden", "submit"):
                self.fields.append(a.get("id") or f"<{tag} name={a.get('name')}> without an id")

    parsed = Fields()
    parsed.feed(html)
    return [f for f in parsed.fields if f not in parsed.labelled]


class Visit:
    """The browser as the people use it: every click counted, waits for the page that follows."""

    def __init__(self, driver, base: str) -> None:
        from selenium.webdriver.support.ui import WebDriverWait

        self.driver, self.base, self.clicks, self.sign_clicks = driver, base, 0, 0  # sign_clicks: in and out
        self.wait = WebDriverWait(driver, WAIT)

    def find(self, css: str):
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.CSS_SELECTOR, css)

    def all(self, css: str) -> list:
        from selenium.webdriver.common.by import By

        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def click(self, css: str) -> None:
        """Click and wait for the next page (the old one going stale)."""
        from selenium.webdriver.support import expected_conditions as until

        from selenium.common.exceptions import WebDriverException

        old = self.find("html")
        self.find(css).click()
        self.clicks += 1

        def left(_driver) -> bool:
            # Chromium sometimes answers a look at a node of a page being replaced with "unhandled
            # inspector error: No node with given id" rather than a stale reference; both mean it is gone.
            try:
                return until.staleness_of(old)(_driver)
            except WebDriverException:
                return True

        self.wait.until(left)
        self.loaded()

    def loaded(self) -> None:
        self.wait.until(lambda d: d.execute_script("return document.readyState") == "complete")

    def type(self, css: str, text: str) -> None:
        self.find(css).clear()
        self.find(css).send_keys(text)

    def sign_in_as(self, name: str, path: str) -> None:
        self.driver.get(f"{self.base}/login?{urlencode({'next': path})}")
        sign_in(self.driver, self.base, name)
        self.clicks += 1
        self.sign_clicks += 1
        # The sign-in answers with a redirect: wait for the page it leads to, whole, not the address alone.
        self.wait.until(lambda d: d.current_url.startswith(self.base + path)
                        and d.find_elements("css selector", "form.signout"))
        self.loaded()

    def sign_out(self) -> None:
        self.click("form.signout button")
        self.sign_clicks += 1

    def forged_post(self, path: str, fields: dict[str, str]) -> tuple[int, str]:
        """A form this person's screen did not offer, posted with their own session and CSRF token."""
        cookies = {c["name"]: c["value"] for c in self.driver.get_cookies()}
        request = urllib.request.Request(self.base + path, data=urlencode(fields | {"csrf": cookies["lgd_csrf"]}).encode(),
                                         headers={"Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items())})
        try:
            with urllib.request.urlopen(request, timeout=WAIT) as answer:
                return answer.status, answer.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()


def test_an_admin_and_two_clinicians_take_a_leaver_to_a_received_pack(archive, server, browser, shots, downloads,
                                                                      digitised, tmp_path):
    from selenium.webdriver.support.ui import Select

    patient = json.loads(digitised.batch.index.read_text())["patients"][1]
    nhs, coded = patient["nhs_number"], digitised.batch.out / patient["coded"]["csv"]
    visit = Visit(browser, server)

    # The practice admin puts the patient on the worklist with their coded record.
    visit.sign_in_as("admin", "/leavers")
    assert not controls_without_label(browser.page_source), controls_without_label(browser.page_source)
    visit.type("#add-nhs", nhs)
    visit.type("#add-ods", ODS.lower())
    visit.type("#add-ref", MOVEMENT)
    visit.find("#add-coded").send_keys(str(coded))
    clicks_before, signing_before, started = visit.clicks, visit.sign_clicks, time.monotonic()
    visit.click("#add-leaver")
    path = browser.current_url.removeprefix(server).split("?")[0]
    assert path.startswith("/leavers/") and visit.find("#state").text == "awaiting coded record"
    leaver_id = int(path.rsplit("/", 1)[1])
    assert not visit.all("#reconcile") and not visit.all("form.decide")  # an admin neither reconciles nor decides
    visit.sign_out()

    # A clinician reconciles and leaves out a page lgd would send: it waits for a second clinician.
    visit.sign_in_as("dr.patel", path)
    visit.click("#reconcile")
    assert visit.find("#state").text == "reconciled"
    assert not controls_without_label(browser.page_source), controls_without_label(browser.page_source)
    sent_before = visit.find("#pages-sent").text
    page = next(a for a in visit.all("article.transfer-send") if a.find_elements("css selector", "ol.entries li"))
    number = page.get_attribute("id").removeprefix("page-")
    assert page.find_elements("css selector", "li.status-paper-only, li.status-uncertain")
    visit.type(f"#reason-{number}", "the same letter is scanned as part 2")
    visit.click(f"#omit-{number}")
    waiting = visit.find(f"#waiting-{number}").text
    assert "waiting for a second clinician" in waiting and not visit.all(f"#confirm-{number}")
    assert visit.find("#pages-sent").text == sent_before  # until confirmed, the page is still sent
    assert not visit.all("#sign-off") and "second clinician" in visit.find("#sign-off-waits").text
    page_id = visit.find(f"#page-{number} form.decide input[name=page]").get_attribute("value")
    status, text = visit.forged_post(f"{path}/confirmations", {"page": page_id})
    assert status == 403 and "a second clinician, signed in as themselves, must confirm it" in text
    entry = visit.find(f"#page-{number} li.status-paper-only")
    entry.find_element("css selector", "summary").click()  # reading the evidence: not a step of the flow
    assert "coded record" in entry.text or "No coded event" in entry.text
    visit.find(f"#page-{number}").location_once_scrolled_into_view
    shoot(browser, shots, "10-leaver-four-eyes")
    visit.sign_out()

    # A second clinician confirms; the first signs off.
    visit.sign_in_as("dr.jones", path)
    visit.click(f"#confirm-{number}")
    assert int(visit.find("#pages-sent").text.split()[0]) == int(sent_before.split()[0]) - 1
    assert "confirmed by dr.jones" in visit.find(f"#page-{number} .decision").text
    visit.sign_out()
    visit.sign_in_as("dr.patel", path)
    sheets = " ".join(visit.find("#totals").text.split())
    shoot(browser, shots, "09-leaver-review")
    visit.click("#sign-off")
    assert visit.find("#state").text == "signed off"
    visit.sign_out()

    # The admin builds a 7z pack, is shown its passphrase once, and downloads it.
    visit.sign_in_as("admin", path)
    assert visit.find("#format-7z").is_selected()
    unlabelled = controls_without_label(browser.page_source)
    assert not unlabelled, unlabelled  # every field named to a screen reader and reachable by its label
    seen = visit.find("input[name=seen]").get_attribute("value")
    visit.click("#build-pack")
    pack_id = int(visit.find("a[id^=download-]").get_attribute("id").removeprefix("download-"))
    passphrase = visit.find(f"#passphrase-{pack_id}").text
    fingerprint = visit.find(f"#fingerprint-{pack_id}").text
    assert len(passphrase) >= 20 and fingerprint.startswith("SHA256:")
    assert len(visit.find(f"#words-{pack_id}").text.replace("/", " ").split()) == 32
    assert "against" in visit.find(f"#download-{pack_id}").find_element("xpath", "../preceding-sibling::p[1]").text
    shoot(browser, shots, "11-pack-handover")
    visit.find(f"#download-{pack_id}").click()
    visit.clicks += 1
    deadline = time.monotonic() + WAIT
    while not (files := [f for f in downloads.iterdir() if f.suffix == ".7z"]):
        assert time.monotonic() < deadline, f"no pack downloaded: {list(downloads.iterdir())}"
        time.sleep(0.1)
    seconds, clicks, signing = time.monotonic() - started, visit.clicks - clicks_before, visit.sign_clicks - signing_before
    print(f"\nleaver {leaver_id}: add leaver -> pack downloaded in {clicks} clicks ({clicks - signing} for the steps, "
          f"{signing} signing three people in and out) and {seconds:.1f} s; {sheets}")
    secret = tmp_path / "passphrase.txt"
    secret.write_text(passphrase + "\n")
    secret.chmod(0o600)
    verified = run_lgd("verify", files[0], "--passphrase-file", secret, "--fingerprint", fingerprint, "--json")
    assert verified.returncode == 0 and verified.json["ok"], verified.stdout
    browser.get(server + path)  # the passphrase is never shown again
    assert passphrase not in browser.page_source
    status, text = visit.forged_post(f"{path}/packs", {"format": "7z", "seen": seen})  # the build form sent again
    assert status == 409 and "nothing was built" in text

    # A clerk sees no control to leave a page out, and a forged one is refused; they list two more leavers.
    visit.sign_out()
    visit.sign_in_as("j.clerk", path)
    assert not visit.all("button[value=omit]") and visit.all("button[value=include]")
    status, text = visit.forged_post(f"{path}/decisions", {"page": page_id, "decision": "omit", "reason": "x"})
    assert status == 403 and "a clerk may not decide" in text and "Traceback" not in text
    others = [p["nhs_number"] for p in json.loads(digitised.batch.index.read_text())["patients"] if p["nhs_number"] != nhs]
    listed = tmp_path / "leavers.csv"
    listed.write_text("nhs_number,ods_code,movement_ref\n" + "".join(f"{n},A81001,PCSE-{i}\n" for i, n in enumerate(others[:2])))
    visit.click("a[href='/leavers']")
    visit.find("#import-csv").send_keys(str(listed))
    visit.click("#import")
    assert len(visit.all("#worklist tbody tr")) == 3 and "awaiting coded record" in visit.find("#worklist tbody").text
    visit.sign_out()

    # The admin marks it sent and records the receiving practice's verify result.
    visit.sign_in_as("admin", path)
    visit.type("#sent-note", "Royal Mail Special Delivery")
    visit.click("#mark-sent")
    visit.find("#verify-json").send_keys(verified.stdout)
    visit.click("#confirm-receipt")
    assert visit.find("#state").text == "receipt confirmed"
    visit.click("a[href='/leavers']")
    assert not visit.all(f"#worklist a[href='{path}']")  # the worklist shows what is still to finish
    Select(visit.find("#show")).select_by_value("all")
    visit.click("#filter")
    row = visit.find(f"#worklist a[href='{path}']").find_element("xpath", "../..")
    assert "receipt confirmed" in row.text and ODS in row.text and MOVEMENT in row.text
    shoot(browser, shots, "08-leavers-worklist")
    refused = [e["message"] for e in browser.get_log("browser") if "Content Security Policy" in e["message"]]
    assert not refused, refused

    with Catalogue.open(archive, create=False) as catalogue:
        steps = [(e.actor, e.action) for e in catalogue.audit_log(nhs_number=nhs)]
    for step in (("admin", "leaver_added"), ("dr.patel", "leaver_reconciled"), ("dr.patel", "leaver_in_review"),
                 ("dr.patel", "leaver_signed_off"), ("admin", "leaver_packed"), ("admin", "pack_downloaded"),
                 ("admin", "leaver_sent"), ("admin", "leaver_receipt_confirmed")):
        assert step in steps, (step, steps)


def test_the_pages_refuse_bad_input_with_a_message_and_escape_what_people_typed(archive, server, digitised, request):
    """Without the browser: each refusal is a page of its own with a 4xx status and a sentence, never a traceback."""
    import httpx

    from index.coded import latest_coded_record

    patient = json.loads(digitised.batch.index.read_text())["patients"][3]
    nhs, xml = patient["nhs_number"], digitised.batch.out / patient["coded"]["gp2gp"]

    def person(name: str) -> httpx.Client:
        client = httpx.Client(base_url=server, timeout=WAIT)
        request.addfinalizer(client.close)  # an open keep-alive connection holds up the server's shutdown
        assert client.post("/api/v1/session", json={"username": name, "password": PASSWORD}).status_code == 200
        return client

    def refused(answer: httpx.Response, status: int, words: str) -> None:
        assert answer.status_code == status and answer.headers["content-type"].startswith("text/html"), answer.text
        assert words in answer.text and "Traceback" not in answer.text

    admin, clerk, clinician = person("admin"), person("j.clerk"), person("dr.jones")
    csrf = admin.cookies["lgd_csrf"]
    # Bulk actions with nothing to do (or, after the walk above, only leavers without a coded record).
    bulk = clinician.post("/leavers/reconcile-all", data={"csrf": clinician.cookies["lgd_csrf"]})
    assert bulk.status_code == 200 and ("No leaver was waiting" in bulk.text or "skipped: no coded record" in bulk.text)
    bulk = admin.post("/leavers/pack-all", data={"csrf": csrf, "format": "7z"})
    assert bulk.status_code == 200 and "No leaver was waiting" in bulk.text
    assert bulk.headers["cache-control"].startswith("no-store")
    refused(admin.post("/leavers/reconcile-all", data={"csrf": csrf}), 403, "may not decide")
    refused(admin.get("/leavers", params={"state": "lost"}), 400, "is not a leaver state")
    refused(admin.get("/leavers/99999"), 404, "there is no leaver 99999")
    refused(admin.post("/leavers", data={"nhs": nhs, "ods": "A81001"}), 403, "did not come from one of lgd")
    refused(admin.post("/leavers", data={"csrf": csrf, "nhs": "1234567890", "ods": "A81001"}), 400,
            "is not a valid NHS number")
    refused(admin.post("/leavers", data={"csrf": csrf, "nhs": nhs, "ods": "NOPE"}), 400, "is not a GP practice ODS code")
    bad_csv = f"nhs_number,ods_code\n{nhs},A81001\n9434765918,A81001\n".encode()
    refused(admin.post("/leavers/import", data={"csrf": csrf}, files={"csv": ("leavers.csv", bad_csv, "text/csv")}),
            400, "line 3")

    # An upload over the pages' limit is refused from its Content-Length, before a byte is read, with a page.
    import http.client

    connection = http.client.HTTPConnection(server.removeprefix("http://"), timeout=WAIT)
    connection.putrequest("POST", "/leavers")
    connection.putheader("Content-Length", str(40 * 1024 * 1024))
    connection.endheaders()
    answer = connection.getresponse()
    assert answer.status == 413 and "The upload was refused" in answer.read().decode()
    connection.close()

    # A GP2GP extract is several times the API's 64 KB body limit; the page's upload takes it.
    assert xml.stat().st_size > 64 * 1024
    with xml.open("rb") as upload:
        added = admin.post("/leavers", data={"csrf": csrf, "nhs": nhs, "ods": "A81001"},
                           files={"coded": (xml.name, upload, "application/xml")})
    assert added.status_code == 303, added.text
    path = added.headers["location"].split("?")[0]
    with Catalogue.open(archive, create=False) as catalogue:
        assert latest_coded_record(catalogue, nhs).format.startswith("gp2gp")

    reason = '<script>alert("rescan")</script> pages 2 & 3'
    assert clerk.post(f"{path}/return", data={"csrf": clerk.cookies["lgd_csrf"], "reason": reason}).status_code == 303
    shown = clerk.get(path)
    assert shown.headers["cache-control"].startswith("no-store") and "returned for rescan" in shown.text
    assert "&lt;script&gt;alert(&#34;rescan&#34;)&lt;/script&gt; pages 2 &amp; 3" in shown.text and "<script>" not in shown.text
    refused(clerk.post(f"{path}/sign-off", data={"csrf": clerk.cookies["lgd_csrf"]}), 403, "may not decide")
    refused(clerk.get(f"{path}/packs/1"), 403, "may not pack")


def test_the_bulk_results_page_shows_every_shape_of_result():
    """Reconcile all and pack all return differently shaped rows; each renders (the templates are strict)."""
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(REPO / "pipelines" / "web" / "templates"),
                             undefined=jinja2.StrictUndefined, autoescape=True)
    results = [{"id": 1, "ok": True, "leaver": {"id": 1}},  # reconciled
               {"id": 2, "ok": False, "skipped": True, "error": {"code": "awaiting_coded_record",
                                                                  "message": "no coded record yet"}},
               {"id": 3, "ok": False, "error": {"code": "illegal_transition", "message": "not <now>"}},
               {"id": 4, "ok": True, "handover": {"format": "7z", "pack_id": 9}},  # packed
               {"id": 5, "ok": False, "nhs_number": "9434765919", "message": "pack refused"}]
    html = env.get_template("leavers_bulk.html").render(action="Reconcile all", results=results, handovers=[],
                                                         who=None, csrf="", may_view=False, may_audit=False)
    assert "skipped: no coded record yet" in html and "not &lt;now&gt;" in html
    assert "done: 7z pack 9" in html and "pack refused" in html and html.count(">done<") + html.count(">done:") >= 1
