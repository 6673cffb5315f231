"""A patient's digitised notes as a clinician opens them: find the patient, list the pages, open one.

Every look is audited with who, their role and where from, before anything is returned. A
page id is "DOCUMENT-PAGE" (e.g. "12-3"): short enough to type, and it names no patient.
Boxes are [left, top, right, bottom] in the pixels of the page's image, which is the scan's
own size (`width` x `height` at `dpi`), so anyone can draw them over `page_image`.
"""

from __future__ import annotations

import datetime as dt
import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from index import Catalogue, DocumentRow, FullText, PageRow
from index.decisions import current_overrides, latest_reconciliation
from pipelines.atomic import write_atomic
from pipelines.errors import ExitCode, LgdError, NotFound
from pipelines.identity import nhs_number_valid, normalise_nhs_number
from pipelines.search import KINDS, Found, search

from .access import Permission, Who
from .received import page_parts, page_received, received_for_patient

CACHE = Path("cache") / "pages"  # inside the archive: rendered page images, private like the rest
IMAGE_QUALITY = 85
MAX_MATCHES = 50
_PAGE_ID = re.compile(r"^(\d{1,9})-(\d{1,5})$")


def page_id_parts(text: str) -> tuple[int, int] | None:
    """(document id, page number) of a page id such as "12-3", or None if `text` is not one."""
    m = _PAGE_ID.match(text or "")
    return (int(m[1]), int(m[2])) if m else None


@dataclass(frozen=True, slots=True)
class StoredPage:
    document: DocumentRow
    page: PageRow

    @property
    def id(self) -> str:
        return f"{self.document.id}-{self.page.number}"


def valid_nhs_number(value: str) -> str:
    digits = normalise_nhs_number(value)
    if not nhs_number_valid(digits):
        raise LgdError(f"{value[:20]!r} is not a valid NHS number (10 digits, Modulus 11 check)", ExitCode.usage,
                       "bad_nhs_number")
    return digits


MAX_QUERY = 500  # characters of a search
MAX_HITS = 200


def search_notes(catalogue: Catalogue, fulltext: FullText, who: Who, query: str, *, patient: str | None = None,
                 date_from: dt.date | None = None, date_to: dt.date | None = None, kind: str | None = None,
                 limit: int = 10) -> Found:
    """`lgd search` for a signed-in user: the request checked, the role checked, who and from where audited."""
    who.require(Permission.view)
    if not query.strip() or len(query) > MAX_QUERY:
        raise LgdError(f"give a search of 1 to {MAX_QUERY} characters", ExitCode.usage, "bad_query")
    if not 1 <= limit <= MAX_HITS:
        raise LgdError(f"limit must be between 1 and {MAX_HITS}", ExitCode.usage, "bad_limit")
    if kind is not None and kind not in KINDS:
        raise LgdError(f"the page kind must be one of {', '.join(KINDS)}", ExitCode.usage, "bad_kind")
    if date_from and date_to and date_from > date_to:
        raise LgdError("the from date is after the to date", ExitCode.usage, "bad_dates")
    nhs = valid_nhs_number(patient) if patient and patient.strip() else None
    return search(catalogue, fulltext, query, actor=who.name, nhs_number=nhs, date_from=date_from, date_to=date_to,
                  kind=kind, limit=limit, audit_detail=who.audit_detail())


def find_patients(catalogue: Catalogue, who: Who, *, nhs_number: str | None = None, name: str | None = None,
                  dob: dt.date | None = None) -> list[dict[str, Any]]:
    """By NHS number, or by name and date of birth together (a name alone would list strangers)."""
    who.require(Permission.view)
    if nhs_number:
        digits = valid_nhs_number(nhs_number)
        found = [p for p in [catalogue.patient(digits)] if p is not None]
        query: dict[str, Any] = {"by_nhs_number": digits}
    elif name and dob:
        words = name.casefold().split()
        if not words or len(name) > 200:
            raise LgdError("give a name of up to 200 characters", ExitCode.usage, "bad_name")
        found = [p for p in catalogue.patients()
                 if p.born == dob and p.name and all(w in p.name.casefold().split() for w in words)][:MAX_MATCHES]
        query = {"name": name, "dob": dob.isoformat()}
    else:
        raise LgdError("find a patient by NHS number, or by name and date of birth", ExitCode.usage, "bad_query")
    catalogue.audit(who.name, "find_patient", found[0].nhs_number if len(found) == 1 else None,
                    **who.audit_detail(), **query, found=len(found))
    out = []
    for p in found:
        documents = catalogue.documents(nhs_number=p.nhs_number, status="ok")
        out.append({"nhs_number": p.nhs_number, "name": p.name, "dob": p.born.isoformat() if p.born else None,
                    "documents": len(documents), "pages": sum(d.page_count for d in documents)})
    return out


def patient_pages(catalogue: Catalogue, who: Who, nhs_number: str) -> dict[str, Any]:
    """Every page of the patient in order, with what the latest reconciliation would do with it, and the inputs
    of theirs that could not be digitised (`not_digitised`: send the paper)."""
    who.require(Permission.view)
    patient = catalogue.patient(normalise_nhs_number(nhs_number))
    if patient is None:
        raise NotFound(f"no patient with NHS number {nhs_number} in this archive", "no_patient")
    catalogue.audit(who.name, "view_patient", patient.nhs_number, **who.audit_detail())
    decisions = _decisions(catalogue, patient.nhs_number)
    received = received_for_patient(catalogue, patient.nhs_number)  # pages another practice sent: their provenance
    parts = page_parts(received)
    pages = []
    for doc in sorted(catalogue.documents(nhs_number=patient.nhs_number, status="ok"), key=lambda d: (d.part or 0, d.source)):
        entries = catalogue.entries(document_id=doc.id)
        for page in catalogue.pages(doc.id):
            decision = decisions.get((doc.id, page.number))
            pages.append({
                "id": f"{doc.id}-{page.number}", "source": doc.source, "page": page.number, "kind": page.kind,
                "blank": page.blank, "duplicate_of": page.duplicate_of, "unreadable": page.unreadable,
                "dates": sorted({e.date.isoformat() for e in entries if e.page == page.number and e.date}),
                # Reconcile's rule, visible: a page is sent unless a run left it out, and an
                # unreadable page goes on paper whatever was decided.
                "send": decision is None or decision["decision"] == "include" or page.unreadable,
                "decision": decision,
                "received": parts.get((doc.id, page.number)),
            })
    # Inputs that never became pages would otherwise be invisible; a pack's cover names them too.
    failed = [{"source": d.source, "reason": d.reason or d.code or "no reason recorded"}
              for d in catalogue.documents(nhs_number=patient.nhs_number, status="failed")]
    return {"nhs_number": patient.nhs_number, "name": patient.name,
            "dob": patient.born.isoformat() if patient.born else None, "pages": pages, "not_digitised": failed,
            "received": received}


def open_page(catalogue: Catalogue, who: Who, page_id: str) -> dict[str, Any]:
    """One page: size, text, dated entries with boxes and, where a run exists, each entry's status and evidence."""
    who.require(Permission.view)
    ref = _page(catalogue, page_id)
    doc, page = ref.document, ref.page
    catalogue.audit(who.name, "open_page", doc.nhs_number, **who.audit_detail(), source=doc.source, page=page.number)
    decision = _decisions(catalogue, doc.nhs_number or "").get((doc.id, page.number))
    judged = list((decision or {}).get("entries") or [])
    entries = []
    for e in (e for e in catalogue.entries(document_id=doc.id) if e.page == page.number):
        match = next((j for j in judged if j.get("text") == e.text), None)
        if match is not None:
            judged.remove(match)
        entries.append({"date": e.date.isoformat() if e.date else None, "date_text": e.date_text, "text": e.text,
                        "box": list(e.box), "confidence": e.confidence,
                        "status": match.get("status") if match else None,
                        "why": match.get("why") if match else None,
                        "evidence": match.get("evidence", []) if match else []})
    return {"id": ref.id, "nhs_number": doc.nhs_number, "source": doc.source, "page": page.number,
            "kind": page.kind, "width": page.width, "height": page.height, "dpi": page.dpi,
            "blank": page.blank, "unreadable": page.unreadable, "confidence": page.confidence,
            "text": page.text, "words": [list(w) for w in page.words], "entries": entries,
            "send": decision is None or decision["decision"] == "include" or page.unreadable,
            "decision": {k: v for k, v in decision.items() if k != "entries"} if decision else None,
            "received": page_received(catalogue, doc.id, page.number)}


def page_image(catalogue: Catalogue, who: Who, archive: Path, page_id: str) -> bytes:
    """The page as JPEG at the scan's own pixel size, rendered once from the PDF/A and cached."""
    who.require(Permission.view)
    ref = _page(catalogue, page_id)
    doc, page = ref.document, ref.page
    catalogue.audit(who.name, "page_image", doc.nhs_number, **who.audit_detail(), source=doc.source, page=page.number)
    cached = archive / CACHE / f"{doc.sha256}-{page.number}.jpg"
    if cached.is_file():
        return cached.read_bytes()
    pdf = archive / (doc.pdfa_path or "")
    if not doc.pdfa_path or not pdf.is_file():
        raise LgdError(f"the PDF/A of {doc.source} is missing from the archive; restore the pdf/ folder from backup",
                       ExitCode.archive_error, "pdf_missing")
    data = _render(pdf, page)
    cached.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    # Two people opening a page at once each render it; write_atomic gives each its own
    # temporary file (server threads share one process id), and either copy is the same page.
    write_atomic(cached, data, 0o600)
    return data


def _render(pdf: Path, page: PageRow) -> bytes:
    import pypdfium2 as pdfium
    from PIL import Image

    document = pdfium.PdfDocument(str(pdf))
    try:
        bitmap = document[page.number - 1].render(scale=(page.dpi or 150) / 72)
        image = bitmap.to_pil().convert("L" if page.kind != "envelope" else "RGB")
    finally:
        document.close()
    if page.width and page.height and image.size != (page.width, page.height):
        image = image.resize((page.width, page.height), Image.Resampling.LANCZOS)  # boxes are in these pixels
    out = io.BytesIO()
    image.save(out, "JPEG", quality=IMAGE_QUALITY, optimize=True)
    return out.getvalue()


def _page(catalogue: Catalogue, page_id: str) -> StoredPage:
    parts = page_id_parts(page_id)
    if parts is None:
        raise LgdError(f"{page_id[:40]!r} is not a page id; page ids look like 12-3 (document 12, page 3)",
                       ExitCode.usage, "bad_page_id")
    doc = catalogue.document(parts[0])
    page = next((p for p in catalogue.pages(doc.id) if p.number == parts[1]), None) if doc and doc.status == "ok" else None
    if doc is None or page is None:
        raise NotFound(f"there is no page {page_id} in this archive", "no_page")
    return StoredPage(doc, page)


def _decisions(catalogue: Catalogue, nhs_number: str) -> dict[tuple[int, int], dict[str, Any]]:
    """(document id, page) -> the latest run's decision with an override in force applied."""
    run = latest_reconciliation(catalogue, nhs_number) if nhs_number else None
    if run is None:
        return {}
    overrides = current_overrides(catalogue, nhs_number)
    out = {}
    for p in run.pages:
        o = overrides.get((p.document_id, p.page))
        out[(p.document_id, p.page)] = {
            "decision": o.decision if o else p.decision, "reason": o.reason if o else p.reason,
            "reason_code": "override" if o else p.reason_code, "overridden_by": o.actor if o else None,
            "run": run.id, "entries": list(p.entries),
        }
    return out
