"""What a queue worker hands back, as JSON: one document's page facts (a worker.Done) to text and back.

JSON, never pickle: a result crosses machines and sits in a shared folder, and unpickling a
file someone else could write would run their code on the archive node.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from digitise.model import DatePrecision, Entry, Page, PageKind, PageText, ScanDoc, Word
from pipelines.ingest.worker import Done

VERSION = 1


def _date(value: dt.date | None) -> str | None:
    return value.isoformat() if value else None


def _word(w: Word) -> list:
    return [w.text, list(w.box), w.confidence, w.line, w.block]


def _entry(e: Entry) -> dict[str, Any]:
    return {"date": _date(e.date), "date_text": e.date_text, "text": e.text, "box": list(e.box),
            "confidence": e.confidence, "precision": str(e.precision)}


def _page(p: Page) -> dict[str, Any]:
    return {
        "number": p.number, "width": p.width, "height": p.height, "dpi": p.dpi, "rotation": p.rotation,
        "skew": p.skew, "blank": p.blank, "phash": p.phash, "duplicate_of": p.duplicate_of,
        "text": None if p.text is None else {"engine": p.text.engine, "words": [_word(w) for w in p.text.words]},
        "unreadable": p.unreadable, "kind": str(p.kind), "entries": [_entry(e) for e in p.entries],
    }


class NotWhole(ValueError):
    """The PDF/A beside a result is not the one the result describes (being replaced by a second delivery)."""


def dump_done(done: Done, engine: str, pdfa_name: str | None) -> str:
    """The result of one document; its PDF/A travels beside it as the file `pdfa_name`, named by checksum."""
    from index import sha256_file

    scan = done.doc
    body: dict[str, Any] = {"version": VERSION, "code": done.code, "reason": done.reason, "engine": engine}
    if scan is not None:
        body["doc"] = {
            "source": scan.source, "born": _date(scan.born), "pages": [_page(p) for p in scan.pages],
            "pdfa": pdfa_name, "pdfa_valid": scan.pdfa_valid, "pdfa_findings": list(scan.pdfa_findings),
            # The writer stores only the PDF/A that was validated, never one a late delivery is replacing.
            "pdfa_sha256": sha256_file(scan.pdfa) if scan.pdfa is not None else None,
        }
    return json.dumps(body, ensure_ascii=False)


def _load_page(p: dict[str, Any]) -> Page:
    text = p["text"]
    return Page(
        number=p["number"], width=p["width"], height=p["height"], dpi=p["dpi"], rotation=p["rotation"],
        skew=p["skew"], blank=p["blank"], phash=p["phash"], duplicate_of=p["duplicate_of"],
        text=None if text is None else PageText(
            words=tuple(Word(w[0], tuple(w[1]), w[2], w[3], w[4]) for w in text["words"]), engine=text["engine"]),
        unreadable=p["unreadable"], kind=PageKind(p["kind"]),
        entries=tuple(Entry(date=dt.date.fromisoformat(e["date"]) if e["date"] else None, date_text=e["date_text"],
                            text=e["text"], box=tuple(e["box"]), confidence=e["confidence"],
                            precision=DatePrecision(e["precision"])) for e in p["entries"]),
    )


def load_done(text: str, key: int, inputs: tuple[Path, ...], folder: Path) -> Done:
    """The Done that dump_done wrote (with the worker's engine); the PDF/A is looked for in `folder`.

    Raises NotWhole when the PDF/A is not (yet) the one described, ValueError on a result this
    version cannot read (a bad or foreign file in the store).
    """
    from index import sha256_file

    try:
        body = json.loads(text)
        if body.get("version") != VERSION:
            raise ValueError(f"result version {body.get('version')!r}, this lgd reads {VERSION}")
        raw = body.get("doc")
        doc = None
        if raw is not None and raw["pdfa"] and ("/" in raw["pdfa"] or raw["pdfa"].startswith(".")):
            raise ValueError(f"the PDF/A name {raw['pdfa']!r} is not a file in the store's results folder")
        if raw is not None:
            doc = ScanDoc(
                source=raw["source"], inputs=inputs, born=dt.date.fromisoformat(raw["born"]) if raw["born"] else None,
                pages=tuple(_load_page(p) for p in raw["pages"]),
                pdfa=folder / raw["pdfa"] if raw["pdfa"] else None, pdfa_valid=bool(raw["pdfa_valid"]),
                pdfa_findings=tuple(raw["pdfa_findings"]),
            )
            if doc.pdfa is not None:
                try:
                    whole = sha256_file(doc.pdfa) == raw.get("pdfa_sha256")
                except OSError:
                    whole = False
                if not whole:
                    raise NotWhole(f"{doc.pdfa} is not the PDF/A its result describes")
        return Done(key, doc, str(body.get("code", "")), str(body.get("reason", "")), str(body.get("engine", "")))
    except (KeyError, TypeError, IndexError, json.JSONDecodeError) as e:
        raise ValueError(f"unreadable result: {type(e).__name__}: {e}") from e
