"""Building coded events the same way in every reader: preferred coding, degraded and uncoded flags, NHS numbers."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date

from pipelines.identity import nhs_number_valid

from .model import CodedEvent, Coding, Precision
from .systems import SNOMED, is_degraded


def _clean(text: str | None) -> str:
    return " ".join((text or "").split())


def make_event(
    codings: Iterable[Coding],
    type_: str,
    when: tuple[date | None, Precision | None],
    *,
    source_ref: str,
    text: Iterable[str | None] = (),
    flags: Iterable[str] = (),
    display: str = "",
) -> CodedEvent:
    """A CodedEvent from the codings as the record lists them (the sender's own code first).

    The preferred coding is the first SNOMED one, wherever it appears (NOTES.md section 4);
    `translation_only` says it was not the sender's own code. Codes are stripped (a spec example
    has " 86290005"); duplicates are dropped. With no coding at all the event is `uncoded` and
    `display` (or the text) names it.
    """
    seen: set[tuple[str, str]] = set()
    unique: list[Coding] = []
    for c in codings:
        code = c.code.strip()
        if not code or (c.system, code) in seen:
            continue
        seen.add((c.system, code))
        unique.append(Coding(c.system, code, _clean(c.display)))
    flag_list = list(flags)
    texts = []
    for t in text:
        t = (t or "").strip()
        if t and t not in texts:
            texts.append(t)
    joined = "\n".join(texts)
    if unique:
        pick = next((i for i, c in enumerate(unique) if c.system == SNOMED), 0)
        main = unique[pick]
        rest = tuple(unique[:pick] + unique[pick + 1:])
        if pick:
            flag_list.append("translation_only")
        if any(is_degraded(c.system, c.code, c.display) for c in unique):
            flag_list.append("degraded")
        system, code, shown = main.system, main.code, main.display or _clean(display)
    else:
        rest = ()
        system, code = "", ""
        shown = _clean(display) or _clean(texts[0] if texts else "")[:200]
        flag_list.append("uncoded")
    return CodedEvent(
        date=when[0],
        precision=when[1],
        system=system,
        code=code,
        display=shown,
        type=type_,
        flags=tuple(dict.fromkeys(flag_list)),
        translations=rest,
        source_ref=source_ref,
        text=joined,
    )


def patient_number(raw: str | None, where: str) -> tuple[str | None, list[str]]:
    """The record's NHS number and any warnings about it.

    Ten digits that fail Modulus 11 are kept (and warned about) so the user sees what the record
    says; `lgd coded import` refuses them. Anything else is not an NHS number: None.
    """
    if raw is None or not raw.strip():
        return None, [f"{where}: the record names no NHS number"]
    digits = re.sub(r"[\s-]", "", raw)
    if not re.fullmatch(r"[0-9]{10}", digits):
        return None, [f"{where}: patient identifier {raw.strip()!r} is not an NHS number"]
    if not nhs_number_valid(digits):
        return digits, [
            f"{where}: NHS number {digits} fails the Modulus 11 check (a test or placeholder number); "
            "it cannot be matched to an archive patient"
        ]
    return digits, []
