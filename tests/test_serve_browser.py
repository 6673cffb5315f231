"""lgd serve in a real browser: a real `lgd serve` process and Debian's headless Chromium, driven by Selenium.

One clinician's visit (sign in, find a patient, search, open a page from a hit, check that the
outlines sit over the matched words at two zooms, read an entry's evidence, sign out) and one
auditor's. A screenshot of each screen goes to a temporary folder, or to the folder named by
LGD_SCREENSHOTS (the README's pictures: LGD_SCREENSHOTS=docs/screenshots).
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from PIL import Image

from index import Catalogue
from index.decisions import latest_reconciliation
from tests.conftest import LGD, REPO, copy_with_accounts, run_lgd

PASSWORD = "correct horse battery staple"
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
PIXELS = 3  # how far a drawn outline may sit from the word's box scaled to the rendered image
WAIT = 20  # seconds for a page or the server to answer


@pytest.fixture(scope="module")
def archive(digitised, tmp_path_factory) -> Path:
    """A copy of the session's archive with a clinician and an auditor, and its first patient reconciled."""
    copy = copy_with_accounts(digitised.archive, tmp_path_factory.mktemp("browser"),
                              {"admin": "practice-admin", "dr.patel": "clinician", "auditor": "auditor"}, PASSWORD)
    first = json.loads(digitised.batch.index.read_text())["patients"][0]
    done = run_lgd("reconcile", "--patient", first["nhs_number"], "--coded", digitised.batch.out / first["coded"]["csv"],
                   "--archive", copy, "--as", "dr.patel")
    assert done.returncode == 0, done.stderr
    return copy


@pytest.fixture(scope="module")
def server(archive, tmp_path_factory):
    """`lgd serve` on a free port, stopped (and its log shown on failure) at the end."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([*LGD, "serve", "--archive", str(archive), "--port", str(port)], cwd=REPO,
                                stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + WAIT
        while True:
            try:
                urllib.request.urlopen(base + "/api/v1/session", timeout=2)
            except urllib.error.HTTPError as e:
                assert e.code == 401
                break
            except OSError:
                assert proc.poll() is None, f"lgd serve exited with {proc.returncode}: {log.read_text()}"
                assert time.monotonic() < deadline, f"lgd serve did not answer in {WAIT} s: {log.read_text()}"
                time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert "Traceback" not in log.read_text(), log.read_text()


def chromium(downloads: Path | None = None):
    """Debian's headless Chromium through its WebDriver; files it downloads go to `downloads` when given."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        pytest.fail(f"{' and '.join(missing)} missing: run scripts/setup.sh (apt packages chromium, chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1280,1500",
                "--hide-scrollbars", "--force-device-scale-factor=1"):
        options.add_argument(arg)
    if downloads is not None:
        options.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                                  "download.prompt_for_download": False})
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    driver.set_page_load_timeout(WAIT)
    if downloads is not None:
        driver.execute_cdp_cmd("Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    return driver


@pytest.fixture(scope="module")
def browser():
    driver = chromium()
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    folder = os.environ.get("LGD_SCREENSHOTS")
    if not folder:
        return tmp_path_factory.mktemp("screenshots")
    path = Path(folder) if Path(folder).is_absolute() else REPO / folder
    path.mkdir(parents=True, exist_ok=True)
    return path


def shoot(driver, folder: Path, name: str) -> None:
    """The window as a PNG of at most 256 colours: a screen of text and a grey scan lose nothing to see."""
    raw = folder / f"{name}.raw.png"
    driver.save_screenshot(str(raw))
    Image.open(raw).convert("RGB").quantize(256).save(folder / f"{name}.png", optimize=True)
    raw.unlink()


def sign_in(driver, base: str, name: str) -> None:
    from selenium.webdriver.common.by import By

    driver.find_element(By.ID, "username").send_keys(name)
    driver.find_element(By.ID, "password").send_keys(PASSWORD)
    driver.find_element(By.CSS_SELECTOR, "form[action='/login'] button").click()


def sign_out(driver) -> None:
    from selenium.webdriver.common.by import By

    driver.find_element(By.CSS_SELECTOR, "form.signout button").click()


def a_covered_entry(archive: Path, nhs: str) -> tuple[str, str, str, int, int, str]:
    """(page id, source, word, width, height, coded display) of a covered entry whose long word the index matches."""
    with Catalogue.open(archive, create=False) as catalogue:
        run = latest_reconciliation(catalogue, nhs)
        docs = {d.id: d for d in catalogue.documents(nhs_number=nhs, status="ok")}
        for p in run.pages:
            for e in p.entries:
                words = re.findall(r"[A-Za-z]{6,}", e["text"])
                if e["status"] == "covered" and e["evidence"] and words:
                    page = next(x for x in catalogue.pages(p.document_id) if x.number == p.page)
                    return (f"{p.document_id}-{p.page}", docs[p.document_id].source, max(words, key=len), page.width,
                            page.height, e["evidence"][0]["display"])
    raise AssertionError(f"no covered entry in the reconciliation of {nhs}")


def outlines_fit(driver, boxes: list[list[int]], width: int) -> int:
    """Each drawn outline against its word's box scaled by the image as rendered; returns how many."""
    from selenium.webdriver.common.by import By

    image = driver.find_element(By.ID, "page-image").rect
    scale = image["width"] / width
    drawn = [r.rect for r in driver.find_elements(By.CSS_SELECTOR, "svg rect.hit")]
    assert len(drawn) == len(boxes) >= 1
    for left, top, right, bottom in boxes:
        want = {"x": image["x"] + left * scale, "y": image["y"] + top * scale,
                "width": (right - left) * scale, "height": (bottom - top) * scale}
        got = min(drawn, key=lambda r: abs(r["x"] - want["x"]) + abs(r["y"] - want["y"]))
        for key in ("x", "y", "width", "height"):
            assert abs(got[key] - want[key]) <= PIXELS, (key, got, want, scale)
    return len(drawn)


def test_a_clinician_finds_searches_reads_a_page_and_its_evidence(archive, server, browser, shots, digitised):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as until
    from selenium.webdriver.support.ui import WebDriverWait

    driver, wait = browser, WebDriverWait(browser, WAIT)
    nhs = json.loads(digitised.batch.index.read_text())["patients"][0]["nhs_number"]
    page_id, source, word, width, height, display = a_covered_entry(archive, nhs)
    found = run_lgd("search", word, "--patient", nhs, "--limit", "200", "--json", "--archive", archive, "--as", "dr.patel")
    boxes = next(h["boxes"] for h in found.json["hits"] if h["source"] == source
                 and h["page"] == int(page_id.split("-")[1]))

    driver.get(server + "/")
    assert driver.current_url.startswith(server + "/login?next=")
    shoot(driver, shots, "01-sign-in")
    sign_in(driver, server, "dr.patel")
    wait.until(until.url_to_be(server + "/"))

    driver.find_element(By.ID, "nhs").send_keys(nhs)
    driver.find_element(By.ID, "find").click()
    link = wait.until(until.element_to_be_clickable((By.CSS_SELECTOR, f"#found a[href='/patients/{nhs}']")))
    shoot(driver, shots, "02-find-a-patient")
    link.click()
    wait.until(until.url_to_be(f"{server}/patients/{nhs}"))
    said = [r.text for r in driver.find_elements(By.CSS_SELECTOR, "tbody td:last-child")]
    assert any(s.startswith("left out: ") for s in said) and any(s.startswith("sent") for s in said)
    shoot(driver, shots, "03-patient-pages")

    driver.find_element(By.ID, "q").send_keys(word)
    driver.find_element(By.CSS_SELECTOR, "form.inline button").click()
    hit = wait.until(until.element_to_be_clickable((By.CSS_SELECTOR, f"a.hit[href^='/pages/{page_id}?']")))
    marks = [m.text for m in driver.find_elements(By.CSS_SELECTOR, "p.snippet mark")]
    assert marks and all(word.casefold() in m.casefold() for m in marks)
    shoot(driver, shots, "04-search-results")

    hit.click()
    wait.until(lambda d: d.find_element(By.ID, "page-image").get_property("naturalWidth") == width)
    drawn = outlines_fit(driver, boxes, width)
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})",
                          driver.find_element(By.CSS_SELECTOR, "svg rect.hit"))
    shoot(driver, shots, "05-page-with-search-outlined")
    fit = driver.find_element(By.ID, "page-image").rect["width"]
    driver.find_element(By.CSS_SELECTOR, "label[for='zoom-200']").click()
    assert abs(driver.find_element(By.ID, "page-image").rect["width"] - 2 * fit) <= 1
    assert outlines_fit(driver, boxes, width) == drawn  # zoom scales the sheet, and the outlines with it
    driver.find_element(By.CSS_SELECTOR, "label[for='zoom-fit']").click()

    entry = driver.find_element(By.CSS_SELECTOR, "ol.entries li.status-covered")
    evidence = entry.find_element(By.CSS_SELECTOR, "table.evidence")
    assert not evidence.is_displayed()
    driver.execute_script("arguments[0].scrollIntoView({block: 'start'})", entry)
    entry.find_element(By.TAG_NAME, "summary").click()
    assert evidence.is_displayed()
    covered = [e for e in driver.find_elements(By.CSS_SELECTOR, "ol.entries li.status-covered table.evidence")
               if e.is_displayed()]
    assert covered and any(display in e.text for e in covered)
    shoot(driver, shots, "06-entry-evidence")

    sign_out(driver)
    wait.until(until.url_to_be(server + "/login"))
    driver.get(server + f"/pages/{page_id}")
    assert driver.current_url.startswith(server + "/login?next=")  # the session is gone
    refused = [e["message"] for e in driver.get_log("browser") if "Content Security Policy" in e["message"]]
    assert not refused, refused  # nothing on the pages needed inline script or style


def test_an_auditor_reads_who_looked(server, browser, shots):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as until
    from selenium.webdriver.support.ui import WebDriverWait

    driver, wait = browser, WebDriverWait(browser, WAIT)
    driver.get(server + "/login")
    sign_in(driver, server, "auditor")
    wait.until(until.url_to_be(server + "/audit"))
    driver.find_element(By.ID, "user").send_keys("dr.patel")
    driver.find_element(By.CSS_SELECTOR, "form.filters button").click()
    wait.until(until.url_contains("user=dr.patel"))
    actions = [td.text for td in driver.find_elements(By.CSS_SELECTOR, "table.audit tbody td:nth-child(4)")]
    assert {"login", "find_patient", "view_patient", "search", "open_page", "page_image", "logout"} <= set(actions)
    assert {td.text for td in driver.find_elements(By.CSS_SELECTOR, "table.audit tbody td:nth-child(2)")} == {"dr.patel"}
    assert "format=csv" in driver.find_element(By.ID, "csv").get_attribute("href")
    shoot(driver, shots, "07-audit-log")
    driver.get(server + "/")
    assert "may not view" in driver.find_element(By.CSS_SELECTOR, ".message").text
    sign_out(driver)
    wait.until(until.url_to_be(server + "/login"))
