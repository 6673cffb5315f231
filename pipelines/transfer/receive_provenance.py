"""What a received pack says about itself: its signed provenance.json, or (packs made before it existed) its cover's text.

    said_by_pack(folder, manifest) -> PackSays

A pack built since provenance.json existed carries the sender's decisions as signed data: the
patient, the sending practice and who built the pack, its catalogue id, every record page with
its decision and reason code, the evidence for each omitted page, and what each page of
pack.pdf is. That is read, and the cover is not.

Only a pack without provenance.json (made by an lgd before it) falls back to receive_read,
which reads the cover's and the strips' text; the result says which (`source`), so the
receiver can tell a signed fact from a sentence read back. The fallback is kept for those old
packs only and is not to grow: anything new a receiver needs goes into provenance.json.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipelines.reconcile.decide import render_reason

from .provenance import NAME, read_provenance
from .receive_read import PackPagePart, read_pack
from .render import day_text, system_name

SIGNED = "signed"
COVER_TEXT = "cover text (old pack)"


@dataclass(frozen=True, slots=True)
class PackSays:
    """The pack's own account of itself, from whichever of its two forms it has."""

    source: str  # SIGNED | COVER_TEXT
    nhs_number: str | None
    name: str | None
    born: dt.date | None
    coded_sha256: str | None
    sender: dict[str, Any]  # practice, ods_code, built_by, pack_id, pack_uuid (the last four None for old packs)
    parts: tuple[PackPagePart, ...]
    omitted: tuple[dict[str, Any], ...]
    kept: dict[str, Any] = field(default_factory=dict)  # what else to keep as provenance (the file, or cover text)


def said_by_pack(folder: Path, manifest: dict[str, Any]) -> PackSays:
    """Read the unpacked, verified pack in `folder` (see the module docstring).

    Raises:
        ProvenanceInvalid: provenance.json is there but is not lgd's, or contradicts the manifest.
    """
    path = folder / NAME
    if path.is_file():
        data = path.read_bytes()
        return from_provenance(read_provenance(data, manifest), data)
    return from_cover(folder / "pack.pdf")


def from_provenance(doc: dict[str, Any], data: bytes) -> PackSays:
    patient, sender, pack = doc["patient"], doc["sender"], doc["pack"]
    born = dt.date.fromisoformat(patient["born"]) if patient.get("born") else None
    parts = tuple(PackPagePart(p["pack_page"], p["part"], p.get("source"), p.get("page"), p.get("record_page"))
                  for p in doc["pack_pages"])
    omitted = tuple({"source": p["source"], "page": p.get("page"), "omission": p.get("omission"),
                     "reason_code": p.get("reason_code"), "reason_detail": p.get("reason_detail") or {},
                     "override": p.get("override"), "evidence": p.get("evidence") or [],
                     "entry_covers": p.get("entry_covers") or []}
                    for p in doc["record_pages"] if p.get("decision") == "omitted")
    return PackSays(
        SIGNED, patient.get("nhs_number"), patient.get("name"), born,
        ((doc["reconciliation"].get("coded") or {}).get("sha256")),
        {"practice": sender.get("practice"), "ods_code": sender.get("ods_code"), "built_by": sender.get("built_by"),
         "pack_id": pack.get("id"), "pack_uuid": pack.get("uuid")},
        parts, omitted,
        # The file as signed (its text is UTF-8, so it encodes back to the bytes the manifest hashes).
        {"provenance_json": data.decode("utf-8"), "reconciliation": doc["reconciliation"],
         "destination": doc.get("destination")})


def from_cover(pdf: Path) -> PackSays:
    """Old packs only (no provenance.json): what their cover and strips say, read back from the PDF's text."""
    reading = read_pack(pdf)
    practice = reading.cover.get("practice")
    return PackSays(
        COVER_TEXT, reading.nhs_number, reading.name, reading.born, reading.cover.get("coded_sha256"),
        {"practice": None if practice in (None, "", "not given") else practice, "ods_code": None, "built_by": None,
         "pack_id": None, "pack_uuid": None},
        reading.parts, tuple(o.to_json() for o in reading.omitted),
        {"cover": dict(reading.cover), "texts": dict(reading.texts)})


def omitted_reason(item: dict[str, Any]) -> str:
    """The sentence for one omitted page of a signed provenance, rendered here from its codes (an old pack's is kept)."""
    if "omission" not in item:
        return str(item.get("reason") or "")
    o = item.get("override") or {}
    confirmed = f", confirmed by {o['confirmed_by']}" if o.get("confirmed_by") else ""
    when = f" on {day_text(dt.datetime.fromisoformat(o['at']).date())}" if o.get("at") else ""
    if item["omission"] == "clinician":
        return f"left out by {o.get('by')}'s decision{when}{confirmed}: {o.get('reason')}"
    if item["omission"] == "entries_covered":
        named = "; ".join(f"entry {c.get('entry')} by {c.get('by')} as {(c.get('event') or {}).get('display')} "
                          f"({(c.get('event') or {}).get('date') or 'undated'})" for c in item.get("entry_covers") or [])
        return (f"every entry covered, some as a clinician named it: {named or 'by lgd'}"
                f"{confirmed or ', not yet confirmed'}")
    try:
        text = render_reason(item.get("reason_code") or "", item.get("reason_detail") or {})
    except (ValueError, KeyError, TypeError):
        text = f"reason {item.get('reason_code') or 'not recorded'}"
    if o.get("decision") == "omit":
        text += f"; confirmed by {o.get('by')}'s decision{when}: {o.get('reason')}"
    return text


def omitted_evidence(item: dict[str, Any]) -> list[str]:
    """One line per paper entry of an omitted page and per coded event covering it (an old pack's lines are kept)."""
    if "omission" not in item:
        return list(item.get("detail") or [])
    lines = []
    for e in item.get("evidence") or []:
        status = f" [{e['status']}]" if e.get("status") else ""
        lines.append(f"Paper entry {e.get('date') or 'undated'}{status}: {e.get('text') or '(no text read)'}")
        for c in e.get("covered_by") or []:
            lines.append(f"covered by: {c.get('display') or '(no display)'} — {system_name(c.get('system') or '')} "
                         f"{c.get('code') or ''}, dated {c.get('date') or 'undated'}")
    for c in item.get("entry_covers") or []:
        event = c.get("event") or {}
        lines.append(f"entry {c.get('entry')} covered by {c.get('by')}'s choice: {event.get('display') or '(no display)'}"
                     f" — {system_name(event.get('system') or '')} {event.get('code') or ''}, dated "
                     f"{event.get('date') or 'undated'}: {c.get('reason')}")
    return lines or ["No dated entries were read on this page."]
