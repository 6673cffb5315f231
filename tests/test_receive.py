"""`lgd receive` end to end: a real pack from the digitised sample, received into a second archive with accounts.

The sending archive is a copy of the session's digitised sample with one patient reconciled and
packed by the real `lgd pack` (7z); the receiving archive starts empty with a clerk and a
clinician. Real 7zz, Tesseract/OCRmyPDF, SQLite and Whoosh throughout; the web page and the JSON
API are read through the real application (FastAPI's TestClient).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
import sqlite3
from pathlib import Path

import lxml.html
import pytest
from fastapi.testclient import TestClient

from index import Catalogue
from index.received import received_packs
from index.rows import DocumentRow, PatientRow
from index.store import sha256_file
from pipelines.service import accounts as service
from pipelines.service.access import Role, Who
from pipelines.transfer.receive_read import read_texts
from tests.conftest import run_lgd

pytestmark = pytest.mark.skipif(shutil.which("7zz") is None, reason="7zz not installed: run scripts/setup.sh")

PASSPHRASE = "correct horse battery staple orbit lantern"
PASSWORD = "correct horse battery staple"
PRACTICE = "Riverside Surgery"
DESTINATION, MOVEMENT = "B82005", "PCSE-MOV-0042"


def _empty_archive(folder: Path, accounts: dict[str, str]) -> Path:
    archive = folder / "lgd-archive"
    with Catalogue.open(archive) as catalogue:
        for name, role in accounts.items():
            service.add_user(catalogue, Who("test-setup", Role.owner), name, role, PASSWORD)
    return archive


@pytest.fixture(scope="module")
def sent(digitised, tmp_path_factory):
    """(the pack's .7z, its passphrase file, the signer's fingerprint, the patient as the batch made them)."""
    root = tmp_path_factory.mktemp("sender")
    archive = root / "archive"
    shutil.copytree(digitised.archive, archive)
    patient = json.loads(digitised.batch.index.read_text())["patients"][0]
    coded = digitised.batch.out / patient["coded"]["gp2gp"]
    from pipelines.service import leavers

    with Catalogue.open(archive, create=False) as catalogue:  # leaving for another practice: the pack says where
        leavers.add(catalogue, Who("test-setup", Role.owner), patient["nhs_number"], DESTINATION, MOVEMENT)
    secret = root / "pass.txt"
    secret.write_text(PASSPHRASE + "\n")
    secret.chmod(0o600)
    proc = run_lgd("pack", "--patient", patient["nhs_number"], "--coded", coded, "--format", "7z", "--out",
                   root / "out", "--archive", archive, "--passphrase-file", secret, "--practice", PRACTICE, "--json")
    assert proc.returncode == 0, proc.stderr
    return Path(proc.json["outputs"][0]), secret, proc.json["fingerprint"], patient, proc.json


@pytest.fixture(scope="module")
def received(sent, tmp_path_factory):
    """A new archive (a clerk and a clinician) that received the pack once, as the clerk."""
    pack, secret, fingerprint, patient, _ = sent
    archive = _empty_archive(tmp_path_factory.mktemp("receiver"), {"clerk1": "clerk", "dr.jones": "clinician"})
    proc = run_lgd("receive", pack, "--passphrase-file", secret, "--fingerprint", fingerprint, "--archive", archive,
                   "--as", "clerk1", "--json")
    assert proc.returncode == 0, proc.stderr
    return archive, proc.json


def _state(archive: Path) -> dict:
    """Everything a refused receive must leave as it was: rows of every table, the files under pdf/ and tmp/."""
    con = sqlite3.connect(f"file:{archive / 'catalogue.sqlite'}?mode=ro", uri=True)
    try:
        tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        rows = {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables}
    finally:
        con.close()
    files = sorted(str(p.relative_to(archive)) for d in ("pdf", "tmp") for p in (archive / d).rglob("*"))
    return {"rows": rows, "files": files}


def test_a_received_pack_is_filed_with_its_pages_entries_search_and_provenance(sent, received):
    _, _, fingerprint, patient, pack = sent
    archive, doc = received
    nhs = patient["nhs_number"]
    assert doc["status"] == "received" and doc["patient"] == nhs
    assert doc["pages"] == pack["pack"]["pages"] and doc["record_pages"] == pack["pages_included"]
    assert doc["pages_omitted_by_sender"] == pack["pages_omitted"]
    assert doc["provenance"] == "signed"  # read from the pack's provenance.json, not its cover
    assert {k: doc["sender"][k] for k in ("practice", "ods_code", "signer_fingerprint", "trusted_by")} == {
        "practice": PRACTICE, "ods_code": None, "signer_fingerprint": fingerprint,
        "trusted_by": f"--fingerprint {fingerprint}"}
    assert doc["sender"]["pack_id"] >= 1 and len(doc["sender"]["pack_uuid"]) == 36 and doc["sender"]["built_by"]
    with Catalogue.open(archive, create=False) as catalogue:
        stored = catalogue.patient(nhs)
        assert (stored.name, stored.born) == (patient["name"], dt.date.fromisoformat(patient["dob"]))
        (row,) = received_packs(catalogue, nhs)
        document = catalogue.document(row.document_id)
        pages = catalogue.pages(document.id)
        entries = catalogue.entries(document_id=document.id)
        audit = catalogue.audit_log(nhs_number=nhs, action="receive_pack")
        unindexed = catalogue.unindexed_documents()
    # The pack as signed is kept byte for byte beside the manifest that names its hash.
    assert row.pack_sha256 == sha256_file(archive / row.pack_pdf) == row.manifest_json["files"][0]["sha256"]
    assert row.manifest_json["patient"] == nhs and row.signer_fingerprint == fingerprint
    assert not unindexed and len(pages) == doc["pages"] and all(p.words for p in pages if not p.blank)
    parts = {p["pack_page"]: p for p in row.provenance["pages"]}
    assert [parts[n]["part"] for n in (1, 2)] == ["cover", "omitted_index"]
    # Dated entries come from the record pages only, never the cover, the index or the strip's date of birth.
    born = dt.date.fromisoformat(patient["dob"])
    assert entries and all(parts[e.page]["part"] == "record" for e in entries)
    assert all(e.date != born for e in entries)
    # Provenance: every page the sender left out, with the sender's reason; who received it, audited.
    omitted = row.provenance["omitted"]
    assert len(omitted) == pack["pages_omitted"] and all(o["omission"] and o["source"].endswith(".pdf") for o in omitted)
    assert row.provenance["source"] == "signed" and "cover" not in row.provenance  # the cover was not read
    # The signed file is kept as it came, so its SHA-256 can be checked against the signed manifest again.
    signed = {f["name"]: f["sha256"] for f in row.manifest_json["files"]}
    assert hashlib.sha256(row.provenance["provenance_json"].encode("utf-8")).hexdigest() == signed["provenance.json"]
    assert row.provenance["pack"]["coded"]["sha256"] == pack["reconciliation"]["coded_sha256"]
    assert row.actor == "clerk1" and len(audit) == 1 and audit[0].actor == "clerk1"
    assert audit[0].detail["sender_practice"] == PRACTICE and audit[0].detail["role"] == "clerk"
    # Search finds the received pages like any scan's.
    record_words = next(w[0] for p in pages if parts[p.number]["part"] == "record" for w in p.words if len(w[0]) > 6
                        and w[0].isalpha())
    found = run_lgd("search", record_words, "--patient", nhs, "--archive", archive, "--as", "dr.jones", "--json")
    assert found.returncode == 0, found.stderr
    assert any(h["source"] == document.source for h in found.json["hits"]), found.json


def test_the_page_viewer_and_api_show_where_received_pages_came_from(sent, received):
    from pipelines.web.app import create_app

    _, _, _, patient, pack = sent
    archive, doc = received
    client = TestClient(create_app(archive), follow_redirects=False)
    form = client.get("/login")
    token = lxml.html.fromstring(form.text).xpath("//input[@name='token']/@value")[0]
    assert client.post("/login", data={"username": "dr.jones", "password": PASSWORD, "token": token,
                                       "next": "/"}).status_code == 303
    api = client.get(f"/api/v1/patients/{patient['nhs_number']}/pages").json()
    (block,) = api["received"]
    assert block["sender"]["practice"] == PRACTICE and block["received_by"] == "clerk1"
    assert block["counts"]["pages_omitted"] == pack["pages_omitted"] == len(block["omitted"])
    record = [p for p in api["pages"] if (p["received"] or {}).get("part") == "record"]
    assert len(record) == pack["pages_included"] and all(p["received"]["source"].endswith(".pdf") for p in record)
    html = lxml.html.fromstring(client.get(f"/patients/{patient['nhs_number']}").text)
    section = html.get_element_by_id(f"received-{doc['document_id']}")
    assert PRACTICE in section.text_content()
    assert len(section.xpath(".//table[@class='omitted']/tbody/tr")) == pack["pages_omitted"]
    card = next(p for p in record if p["kind"] == "card")
    opened = client.get(f"/api/v1/pages/{card['id']}").json()
    assert opened["words"] and opened["entries"]
    assert opened["received"]["part"] == "record" and opened["received"]["source"] == card["received"]["source"]
    assert opened["received"]["sender"]["practice"] == PRACTICE
    viewer = lxml.html.fromstring(client.get(f"/pages/{card['id']}").text).get_element_by_id("received")
    assert f"the sender's {card['received']['source']}, page {card['received']['page']}" in viewer.text_content()
    cover = lxml.html.fromstring(client.get(f"/pages/{doc['document_id']}-1").text).get_element_by_id("received")
    assert "the pack's cover, not a page of the record" in " ".join(cover.text_content().split())


def test_receiving_the_same_pack_again_stores_nothing_and_says_so(sent, received):
    pack, secret, fingerprint, _, _ = sent
    archive, first = received
    before = _state(archive)
    again = run_lgd("receive", pack, "--passphrase-file", secret, "--fingerprint", fingerprint, "--archive", archive,
                    "--as", "clerk1", "--json")
    assert again.returncode == 0, again.stderr
    assert again.json["status"] == "already_received" and again.json["document_id"] == first["document_id"]
    assert again.json["received_by"] == "clerk1"
    assert _state(archive) == before


def test_a_tampered_or_untrusted_pack_is_refused_and_nothing_is_written(sent, received, tmp_path):
    pack, secret, fingerprint, _, _ = sent
    archive, _ = received
    before = _state(archive)
    tampered = tmp_path / "lgd-pack.7z"
    data = bytearray(pack.read_bytes())
    data[-1] ^= 0xFF  # the (encrypted) header's last byte: its CRC fails before 7-Zip is asked
    tampered.write_bytes(bytes(data))
    bad = run_lgd("receive", tampered, "--passphrase-file", secret, "--fingerprint", fingerprint, "--archive",
                  archive, "--as", "clerk1", "--json")
    assert bad.returncode == 5 and bad.json["error"]["code"] == "verify_failed", bad.stderr
    assert "archive_corrupt" in bad.json["error"]["message"] and "nothing was stored" in bad.stderr
    # Signed, intact, but by a key nobody vouched for: the pack's own claim about its signer is not trust.
    untrusted = run_lgd("receive", pack, "--passphrase-file", secret, "--archive", archive, "--as", "clerk1", "--json")
    assert untrusted.returncode == 5 and "untrusted_signer" in untrusted.json["error"]["message"]
    assert _state(archive) == before


def test_a_conflicting_patient_or_a_clinician_is_refused(sent, tmp_path):
    pack, secret, fingerprint, patient, _ = sent
    archive = _empty_archive(tmp_path, {"clerk1": "clerk", "dr.jones": "clinician"})
    nhs = patient["nhs_number"]
    with Catalogue.open(archive, create=False) as catalogue:  # the same NHS number, someone else's name and birth
        catalogue.record_failure(PatientRow(nhs, "Somebody Else", dt.date(1990, 1, 1)),
                                 DocumentRow("scan.pdf", "ef" * 32, nhs, 0, "failed", None, False, None, None,
                                             "unreadable", "unreadable_input", 10))
    before = _state(archive)
    args = ("receive", pack, "--passphrase-file", secret, "--fingerprint", fingerprint, "--archive", archive, "--json")
    clinician = run_lgd(*args, "--as", "dr.jones")
    assert clinician.returncode == 6 and clinician.json["error"]["code"] == "not_permitted", clinician.stderr
    conflict = run_lgd(*args, "--as", "clerk1")
    assert conflict.returncode == 1 and conflict.json["error"]["code"] == "identity_conflict", conflict.stderr
    assert "Somebody Else" in conflict.stderr and "nothing was stored" in conflict.stderr
    assert _state(archive) == before


def test_the_cover_and_index_are_read_as_the_pack_builder_writes_them():
    cover = "\n".join([
        "Lloyd George record: transfer pack", "Patient Ann O'Neil-Smith", "NHS number 943 476 5919",
        "Date of birth 03-Jul-1928", "Sending practice not given", "Pack date 01-Dec-2026",
        "Coded record SHA-256 " + "ab" * 32,
        "Ann O'Neil-Smith · NHS 943 476 5919 · born 03-Jul-1928 · Cover sheet, page 1 of 1"])
    index = "\n".join([
        "Pages omitted from this pack", "2 page(s) were left out: 1 every entry coded, 1 clinician decision.",
        "card.pdf, page 2", "Reason: every entry on it was found in the coded record, each matched by date and",
        "meaning", "Paper entry 2001-03-12 [coded]: asthma review", "covered by: Asthma annual review — SNOMED 270442000",
        "card.pdf, page 5", "Reason: clinician decision by dr.a confirmed by dr.b: duplicate of page 4",
        "No dated entries were read on this page.", "Clinician overrides in force",
        "• card.pdf, page 5: omit (machine decision: include), by dr.a on 01-Dec-2026",
        "Ann O'Neil-Smith · NHS 943 476 5919 · born 03-Jul-1928 · Pages omitted from this pack, page 1 of 1"])
    record = "12/03/2001 asthma review\nAnn O'Neil-Smith · NHS 943 476 5919 · born 03-Jul-1928 page 1 of 1\n" \
             "source: card.pdf, page 1 of 5"
    reading = read_texts([cover, index, record, "This page is intentionally blank."])
    assert (reading.nhs_number, reading.name, reading.born) == ("9434765919", "Ann O'Neil-Smith", dt.date(1928, 7, 3))
    assert reading.cover["practice"] == "not given" and reading.cover["coded_sha256"] == "ab" * 32
    assert [p.part for p in reading.parts] == ["cover", "omitted_index", "record", "blank"]
    assert (reading.parts[2].source, reading.parts[2].page, reading.parts[2].number) == ("card.pdf", 1, 1)
    first, second = reading.omitted
    assert (first.source, first.page) == ("card.pdf", 2)
    assert first.reason.endswith("matched by date and meaning") and first.detail[1].startswith("covered by: Asthma")
    assert (second.page, second.reason) == (5, "clinician decision by dr.a confirmed by dr.b: duplicate of page 4")
    assert second.detail == ("No dated entries were read on this page.",)


def test_a_pack_whose_provenance_cannot_be_stored_leaves_no_document_pages_or_audit(tmp_path):
    """The document, its pages and entries, the provenance row and the audit record commit together or not at all."""
    from index.received import ReceivedPack, record_received
    from index.rows import EntryRow, PageRow

    nhs = "9434765919"
    archive = _empty_archive(tmp_path, {})
    page = PageRow(1, 1500, 2192, 300, 0, 0.0, False, "0" * 16, None, 90.0, False, "card", "12/03/2001 asthma",
                   (("asthma", 10, 10, 90, 40, 90.0, 1, 1),))
    entry = EntryRow(1, dt.date(2001, 3, 12), "12/03/2001", "asthma", (10, 10, 90, 40), 90.0)
    document = DocumentRow("received-pack.pdf", "ab" * 32, nhs, 1, "ok", "pdf/x.pdf", True, None, None, None, None, 10)
    broken = ReceivedPack("not a sha-256", nhs, "pdf/y.pdf", "SHA256:x", "--fingerprint SHA256:x", b"{}", b"sig")
    before = _state(archive)
    with Catalogue.open(archive, create=False) as catalogue, pytest.raises(sqlite3.IntegrityError):
        record_received(catalogue, PatientRow(nhs, "Ann Smith", dt.date(1950, 1, 1)), document, [page], [entry],
                        broken, actor="clerk1", at=dt.datetime.now(dt.timezone.utc))
    assert _state(archive) == before


def _opened(sent, into: Path):
    """The sent pack verified and unpacked into `into` (the receiver's first step), and its manifest."""
    from pipelines.transfer.verify import trusted_keys, unpack

    pack, _, fingerprint, _, _ = sent
    result = unpack(pack, PASSPHRASE, into, trusted_keys(None, None, fingerprint))
    assert result.ok, result.problems
    return result.manifest


def _repacked(folder: Path, out: Path) -> Path:
    """Every file of an unpacked pack folder in a new encrypted .7z, as lgd's media writer makes it."""
    from pipelines.transfer.sevenzip import create

    create(out, [(p.name, p) for p in sorted(folder.iterdir())], PASSPHRASE, stage_in=out.parent)
    return out


def test_a_pack_carries_signed_provenance_matching_the_catalogues_decisions_and_its_cover(sent, tmp_path):
    from index.decisions import latest_reconciliation, packs
    from pipelines.transfer.receive_read import page_texts, read_texts

    pack, _, _, patient, built = sent
    manifest = _opened(sent, tmp_path / "open")
    names = {f["name"] for f in manifest["files"]}
    assert names == {"pack.pdf", "provenance.json"}  # listed, so the manifest's signature covers it
    prov = json.loads((tmp_path / "open" / "provenance.json").read_text())
    assert (prov["schema"], prov["version"]) == ("lgd-pack-provenance", 1)
    nhs = patient["nhs_number"]
    assert prov["patient"] == {"nhs_number": nhs, "name": patient["name"], "born": patient["dob"]}
    assert prov["sender"]["practice"] == PRACTICE and prov["sender"]["ods_code"] is None
    assert (prov["destination"]["ods_code"], prov["destination"]["movement_ref"]) == (DESTINATION, MOVEMENT)
    with Catalogue.open(pack.parent.parent / "archive", create=False) as catalogue:
        row = packs(catalogue, nhs)[-1]
        run = latest_reconciliation(catalogue, nhs)
        sources = {d.id: d.source for d in catalogue.documents(nhs)}
    # The pack names the catalogue's own row for it, and the row the pack's uuid.
    assert (prov["pack"]["id"], prov["pack"]["uuid"]) == (row.id, row.detail["uuid"]) and row.id == built["pack_id"]
    assert prov["sender"]["built_by"] == row.actor and prov["reconciliation"]["run"] == run.id
    assert prov["reconciliation"]["coded"]["sha256"] == built["reconciliation"]["coded_sha256"]
    assert prov["reconciliation"]["rules"]["fingerprint"] == run.settings["fingerprint"]
    # Every page of the record, with the decision and reason code the catalogue holds for it.
    decided = {(sources[d.document_id], d.page): d for d in run.pages}
    listed = {(p["source"], p["page"]): p for p in prov["record_pages"]}
    assert listed.keys() == decided.keys() and len(listed) == built["pages_total"]
    for key, d in decided.items():
        assert listed[key]["reason_code"] == (d.reason_code or None), key
        assert listed[key]["decision"] == ("sent" if d.effective == "include" else "omitted"), key
    omitted = [p for p in prov["record_pages"] if p["decision"] == "omitted"]
    assert len(omitted) == built["pages_omitted"] > 0
    assert all(p["omission"] in ("blank", "rescan", "covered", "entries_covered", "clinician") for p in omitted)
    covered = [p for p in omitted if p["omission"] == "covered"]
    assert all(e["covered_by"] and all(c["code"] and c["date"] for c in e["covered_by"])
               for p in covered for e in p["evidence"])
    # The cover (for people) and the provenance (for programs) say the same: pages and omissions.
    reading = read_texts(page_texts(tmp_path / "open" / "pack.pdf"))
    assert [(o.source, o.page) for o in reading.omitted] == [(p["source"], p["page"]) for p in omitted]
    assert [p.to_json() for p in reading.parts] == [
        {k: v for k, v in p.items() if k in ("pack_page", "part", "source", "page", "record_page")}
        for p in prov["pack_pages"]]


def test_a_changed_provenance_fails_verification(sent, tmp_path):
    from pipelines.transfer.verify import trusted_keys, verify

    _, _, fingerprint, _, _ = sent
    _opened(sent, tmp_path / "open")
    path = tmp_path / "open" / "provenance.json"
    text = path.read_text()
    # An omitted page said to be sent, in a file of the same size (so only its SHA-256 can tell).
    changed = text.replace('"decision": "omitted"', '"decision": "sent"   ', 1)
    assert changed != text and len(changed) == len(text) and json.loads(changed)
    path.write_text(changed)
    result = verify(_repacked(tmp_path / "open", tmp_path / "lgd-pack.7z"), PASSPHRASE,
                    trusted_keys(None, None, fingerprint))
    assert not result.ok and [p.code.value for p in result.problems] == ["file_mismatch"]
    assert "provenance.json is not the file that was signed" in result.problems[0].message


def test_an_old_pack_without_provenance_still_verifies_and_is_read_from_its_cover(sent, tmp_path):
    """Packs made before provenance.json: re-signed without it, they verify; the receiver falls back to the cover."""
    from pipelines.transfer.receive_provenance import COVER_TEXT, said_by_pack
    from pipelines.transfer.signing import FileEntry, build_manifest, load_private
    from pipelines.transfer.verify import trusted_keys, verify

    pack, secret, fingerprint, patient, built = sent
    manifest = _opened(sent, tmp_path / "open")
    folder = tmp_path / "open"
    (folder / "provenance.json").unlink()
    key = load_private(pack.parent.parent / "archive" / "keys" / "pack-signing.key")
    pdf = folder / "pack.pdf"
    fields = {k: manifest[k] for k in ("patient", "created", "coded", "counts")}
    data, signature = build_manifest(fields, [FileEntry("pack.pdf", pdf.stat().st_size, sha256_file(pdf))], key)
    (folder / "manifest.json").write_bytes(data)
    (folder / "manifest.sig").write_bytes(signature)
    old = _repacked(folder, tmp_path / "lgd-pack.7z")
    result = verify(old, PASSPHRASE, trusted_keys(None, None, fingerprint))
    assert result.ok, result.problems
    said = said_by_pack(folder, result.manifest)
    assert said.source == COVER_TEXT and said.nhs_number == patient["nhs_number"]
    assert said.sender["practice"] == PRACTICE and said.sender["pack_id"] is None
    assert len(said.omitted) == built["pages_omitted"] and all(o["reason"] for o in said.omitted)
    # Received end to end, it says where the sender's facts came from.
    archive = _empty_archive(tmp_path / "receiver", {"clerk1": "clerk"})
    done = run_lgd("receive", old, "--passphrase-file", secret, "--fingerprint", fingerprint, "--archive", archive,
                   "--as", "clerk1", "--json")
    assert done.returncode == 0, done.stderr
    assert done.json["provenance"] == COVER_TEXT and done.json["sender"]["practice"] == PRACTICE
    assert done.json["record_pages"] == built["pages_included"]
    assert done.json["pages_omitted_by_sender"] == built["pages_omitted"]


def _signed_in(archive: Path, name: str) -> TestClient:
    from pipelines.web.app import create_app

    client = TestClient(create_app(archive), follow_redirects=False)
    token = lxml.html.fromstring(client.get("/login").text).xpath("//input[@name='token']/@value")[0]
    assert client.post("/login", data={"username": name, "password": PASSWORD, "token": token,
                                       "next": "/"}).status_code == 303
    return client


def test_a_clerk_receives_a_pack_in_the_browser_and_sees_its_signed_provenance(sent, tmp_path):
    pack, _, fingerprint, patient, built = sent
    archive = _empty_archive(tmp_path, {"clerk1": "clerk", "dr.jones": "clinician"})
    upload = {"pack": ("lgd-pack.7z", pack.read_bytes(), "application/x-7z-compressed")}
    # A clinician may view received pages but not add to the archive: refused before the upload is kept.
    doctor = _signed_in(archive, "dr.jones")
    assert doctor.get("/receive").status_code == 403
    refused = doctor.post("/api/v1/received-packs", files=upload, data={"passphrase": PASSPHRASE, "fingerprint":
                          fingerprint}, headers={"x-csrf-token": doctor.cookies.get("lgd_csrf")})
    assert refused.status_code == 403 and refused.json()["error"] == "not_permitted"
    clerk = _signed_in(archive, "clerk1")
    form = lxml.html.fromstring(clerk.get("/receive").text)
    csrf = form.xpath("//form[@action='/receive']//input[@name='csrf']/@value")[0]
    before = _state(archive)
    wrong = clerk.post("/receive", files=upload, data={"csrf": csrf, "passphrase": "not the passphrase at all, sorry",
                                                       "fingerprint": fingerprint})
    message = lxml.html.fromstring(wrong.text).get_element_by_id("refused").text_content()
    assert wrong.status_code == 422 and "wrong_passphrase" in message and "nothing was stored" in message
    assert _state(archive) == before  # nothing stored, and the upload's private folder is gone
    done = clerk.post("/receive", files=upload, data={"csrf": csrf, "passphrase": PASSPHRASE,
                                                      "fingerprint": fingerprint})
    assert done.status_code == 200, done.text
    page = lxml.html.fromstring(done.text)
    nhs = patient["nhs_number"]
    assert page.get_element_by_id("patient-link").get("href") == f"/patients/{nhs}"
    said = " ".join(page.get_element_by_id("provenance").text_content().split())
    assert PRACTICE in said and "the pack's signed provenance" in said
    assert f"fingerprint {fingerprint} typed by clerk1 in lgd serve" in said  # who vouched for the key
    assert all(c == "passed" for c in page.xpath("//table[@class='checks']/tbody/tr/td[1]/text()"))
    assert not list((archive / "tmp").glob("upload-pack-*"))
    # The list (JSON) and the patient's page show who sent it, who built it and the sender's pack id.
    (listed,) = clerk.get("/api/v1/received-packs").json()["received"]
    assert listed["patient"] == nhs and listed["provenance"] == "signed" and listed["received_by"] == "clerk1"
    assert listed["sender"]["pack_id"] >= 1 and listed["sender"]["built_by"] and listed["sender"]["practice"] == PRACTICE
    assert len(listed["omitted"]) == built["pages_omitted"] and all(o["reason"] for o in listed["omitted"])
    shown = " ".join(lxml.html.fromstring(clerk.get(f"/patients/{nhs}").text).get_element_by_id(
        f"received-{listed['document_id']}").text_content().split())
    assert f"Pack {listed['sender']['pack_id']} ({listed['sender']['pack_uuid']})" in shown
    assert f"by {listed['sender']['built_by']}" in shown and "signed provenance" in shown
    assert f"Sent to {DESTINATION}, movement reference {MOVEMENT}" in shown
    with Catalogue.open(archive, create=False) as catalogue:
        (audit,) = catalogue.audit_log(nhs_number=nhs, action="receive_pack")
    assert audit.detail["pack_file"] == "uploaded lgd-pack.7z" and PASSPHRASE not in json.dumps(audit.detail)
    # The same pack through the API: received before, nothing stored twice.
    again = clerk.post("/api/v1/received-packs", files=upload, data={"passphrase": PASSPHRASE, "fingerprint":
                       fingerprint}, headers={"x-csrf-token": clerk.cookies.get("lgd_csrf")})
    assert again.status_code == 201 and again.json()["status"] == "already_received"
    assert again.json()["link"] == f"/patients/{nhs}"


def test_a_signed_provenance_that_is_not_lgds_or_contradicts_the_manifest_is_refused():
    from pipelines.transfer.provenance import ProvenanceInvalid, read_provenance

    manifest = {"patient": "9434765919", "files": [{"name": "pack.pdf", "sha256": "ab" * 32}]}
    good = {"schema": "lgd-pack-provenance", "version": 1, "pack": {"id": 3, "uuid": "u", "pack_pdf_sha256": "ab" * 32},
            "sender": {"practice": "X"}, "patient": {"nhs_number": "9434765919", "name": "A", "born": "1950-01-02"},
            "reconciliation": {"coded": {"sha256": "cd" * 32}},
            "record_pages": [{"source": "a.pdf", "page": 1, "decision": "sent"}],
            "pack_pages": [{"pack_page": 1, "part": "cover"}, {"pack_page": 2, "part": "record", "source": "a.pdf",
                                                                "page": 1}]}
    assert read_provenance(json.dumps(good).encode(), manifest)["pack"]["id"] == 3
    for bad, why in ((good | {"version": 2}, "newer lgd"),
                     (good | {"patient": {"nhs_number": "9434765927"}}, "the signed manifest for 9434765919"),
                     (good | {"pack": good["pack"] | {"pack_pdf_sha256": "ef" * 32}}, "another pack.pdf"),
                     (good | {"pack_pages": [{"pack_page": 2, "part": "cover"}]}, "not a page of the pack"),
                     (good | {"record_pages": [{"source": "a.pdf", "decision": "maybe"}]}, "without a source and a"),
                     (good | {"patient": good["patient"] | {"name": ["A"]}}, "patient.name is not text"),
                     (good | {"patient": good["patient"] | {"born": "15-Jun-1935"}}, "is not a date")):
        with pytest.raises(ProvenanceInvalid, match=why):
            read_provenance(json.dumps(bad).encode(), manifest)


def test_an_uploaded_zip_is_opened_to_the_pack_inside_and_refused_when_it_is_not_one(sent, tmp_path):
    import zipfile

    from pipelines.errors import LgdError
    from pipelines.service.receiving import _unzipped, upload_name
    from pipelines.transfer.verify import trusted_keys, verify

    pack, _, fingerprint, _, _ = sent
    assert [upload_name(n) for n in ("lgd-pack-7.zip", "LGD-PACK-001.ISO", "lgd-pack.7z.001")] == [
        "upload.zip", "lgd-pack-001.iso", "lgd-pack.7z"]
    with pytest.raises(LgdError, match="is not a pack"):
        upload_name("record.pdf")
    good = tmp_path / "good" / "upload.zip"
    good.parent.mkdir()
    with zipfile.ZipFile(good, "w") as z:  # as the leavers page downloads a pack of several files
        z.write(pack, "lgd-pack.7z")
    inside = _unzipped(good)
    assert inside.name == "lgd-pack.7z" and verify(inside, PASSPHRASE, trusted_keys(None, None, fingerprint)).ok
    for name in ("../lgd-pack.7z", "a/b/lgd-pack.7z", ".hidden"):
        bad = tmp_path / name.replace("/", "_") / "upload.zip"
        bad.parent.mkdir()
        with zipfile.ZipFile(bad, "w") as z:
            z.writestr(name, b"x")
        with pytest.raises(LgdError, match="not a name lgd gives"):
            _unzipped(bad)
        assert not (tmp_path / "lgd-pack.7z").exists()


def test_provenance_names_each_persons_decision_and_the_receiver_renders_it_from_codes():
    """Pure: a page omitted because a clinician named the coded events covering its entries, confirmed by a second."""
    from index.entry_covers import CoveredBy, EntryCoverRow
    from index.rows import OverrideRow
    from pipelines.transfer.document import PackDocument, PackPage, PackSection
    from pipelines.transfer.plan import PackPlan, PlannedDocument, PlannedPage
    from pipelines.transfer.provenance import build_provenance, to_bytes
    from pipelines.transfer.receive_provenance import from_provenance, omitted_evidence, omitted_reason

    at = dt.datetime(2026, 12, 1, 10, tzinfo=dt.timezone.utc)
    override = OverrideRow(7, "9434765919", 1, 2, "omit", "every entry is in the coded record", "dr.a", at,
                           True, "dr.b", at)
    event = CoveredBy("cd" * 32, "http://snomed.info/sct", "195967001", "Asthma", "2019-03-04")
    cover = EntryCoverRow(1, "9434765919", 1, 2, 0, "ef" * 32, "uncertain", event, 7, "same visit, other words",
                          "dr.a", at)
    entry = {"date": "2019-03-04", "text": "asthma rev", "status": "uncertain", "evidence": []}
    pages = (PlannedPage(1, "card.pdf", 1, "pdf/x.pdf", "include", "include", "", kind="card",
                         reason_code="entries_not_covered", reason_detail={"entries": 1, "paper-only": 1}),
             PlannedPage(1, "card.pdf", 2, "pdf/x.pdf", "omit", "include", "", (entry,), override, "card",
                         "entries_not_covered", {"entries": 1, "uncertain": 1}, entry_covers=(cover,)))
    plan = PackPlan("9434765919", "Ann Smith", dt.date(1950, 1, 2), 3, at, "gp2gp-ehr-extract", "cd" * 32, 10,
                    (PlannedDocument(1, "card.pdf", "pdf/x.pdf", "ab" * 32, 2, None, None, at),), pages)
    document = PackDocument(Path("pack.pdf"), "ab" * 32, 1, 3, (PackSection("cover", "Cover sheet", 1, 1),
                            PackSection("omitted_index", "Pages omitted", 2, 1)), (PackPage(3, 1, "card.pdf", 1),),
                            0, False, None, "PDF/A-2b: pass")
    prov = build_provenance(plan, document, pack_id=5, pack_uuid="u", format="7z", created=at.isoformat(),
                            practice="Riverside", ods_code="A81001", built_by="admin1", destination=None)
    sent, left = prov["record_pages"]
    assert (sent["decision"], left["decision"], left["omission"]) == ("sent", "omitted", "entries_covered")
    assert left["override"]["by"] == "dr.a" and left["override"]["confirmed_by"] == "dr.b"
    assert left["entry_covers"][0]["entry"] == 1 and left["entry_covers"][0]["event"]["code"] == "195967001"
    assert [p["part"] for p in prov["pack_pages"]] == ["cover", "omitted_index", "record"]
    said = from_provenance(prov, to_bytes(prov))
    (item,) = said.omitted
    assert omitted_reason(item) == ("every entry covered, some as a clinician named it: entry 1 by dr.a as Asthma "
                                    "(2019-03-04), confirmed by dr.b")
    assert "entry 1 covered by dr.a's choice: Asthma — SNOMED CT 195967001" in " ".join(omitted_evidence(item))
    assert said.sender == {"practice": "Riverside", "ods_code": "A81001", "built_by": "admin1", "pack_id": 5,
                           "pack_uuid": "u"}
