"""HL7v3 XML basics for the GP2GP reader: safe parsing, element lookup by local name, codes and TS dates."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date

from lxml import etree

from .errors import RecordError, RecordErrorCode
from .model import Coding, Precision
from .systems import from_oid

# A DOCTYPE can only sit in the prolog, before the root element; ENTITY declarations only inside it.
_PROLOG_ITEM = re.compile(r"\s*(<\?.*?\?>|<!--.*?-->)", re.S)
_DOCTYPE = re.compile(r"\s*<!\s*(DOCTYPE|ENTITY)", re.I)
_TS = re.compile(r"(\d{4})(\d{2})?(\d{2})?(\d{2,6}(\.\d+)?)?([+-]\d{4})?")


def _text_head(data: bytes) -> str:
    """The start of the document as text, honouring a UTF-16 byte-order mark."""
    head = data[:65536]
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return head.decode("utf-16", errors="replace")
    return head.decode("utf-8", errors="replace").lstrip("\ufeff")


def prolog_rest(data: bytes) -> str:
    """The document text from its first element (or DOCTYPE) on: the prolog's declaration, PIs and comments skipped."""
    text = _text_head(data)
    pos = 0
    while m := _PROLOG_ITEM.match(text, pos):
        pos = m.end()
    return text[pos:].lstrip()


def has_doctype(data: bytes) -> bool:
    return bool(_DOCTYPE.match(prolog_rest(data)))


def parse(data: bytes, name: str) -> etree._Element:
    """The root element of `data`, parsed safely.

    Raises:
        RecordError: hostile_xml for any DOCTYPE or ENTITY declaration (entity bombs and external
            entities are refused outright rather than defused); malformed_xml, naming the line and
            column, when the XML is not well formed.
    """
    hostile = RecordError(
        RecordErrorCode.hostile_xml,
        f"{name} declares a DOCTYPE or entities; coded records never need them and they can hide "
        "entity-expansion bombs or reads of local files, so the file is refused. Ask the sender for "
        "the plain GP2GP extract.",
    )
    if has_doctype(data):
        raise hostile
    parser = etree.XMLParser(
        resolve_entities=False, no_network=True, huge_tree=False, load_dtd=False, dtd_validation=False,
        remove_comments=True, remove_pis=True, collect_ids=False,
    )
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        line, column = exc.position if exc.position else (None, None)
        where = f"line {line}, column {column}" if line else "an unknown line"
        raise RecordError(
            RecordErrorCode.malformed_xml,
            f"{name} is not well-formed XML at {where}: {_bare(exc.msg)}. The file is damaged or is not a "
            "GP2GP extract; ask the sender to resend it.",
            line=line,
        ) from exc
    # Belt and braces: the prolog check above reads only UTF-8/UTF-16 text.
    tree = root.getroottree()
    if tree.docinfo.doctype or tree.docinfo.internalDTD is not None:
        raise hostile
    return root


def local(el: etree._Element) -> str:
    # Clark notation "{namespace}name": slicing it is several times faster than etree.QName,
    # and this runs for every element of an extract (half a million for 5,000 events).
    tag = el.tag
    return tag.rpartition("}")[2] if isinstance(tag, str) else ""


def child(el: etree._Element | None, name: str) -> etree._Element | None:
    if el is None:
        return None
    for c in el:
        if local(c) == name:
            return c
    return None


def children(el: etree._Element, name: str) -> Iterator[etree._Element]:
    return (c for c in el if local(c) == name)


def path(el: etree._Element | None, *names: str) -> etree._Element | None:
    for n in names:
        el = child(el, n)
    return el


def descendants(el: etree._Element, name: str) -> Iterator[etree._Element]:
    return (d for d in el.iter() if local(d) == name)


def text_of(el: etree._Element | None) -> str:
    return " ".join("".join(el.itertext()).split()) if el is not None else ""


def ident(el: etree._Element) -> str:
    """The statement's id (`id/@root`, with `@extension` when present)."""
    i = child(el, "id")
    if i is None:
        return ""
    root, ext = i.get("root", ""), i.get("extension")
    return f"{root}:{ext}" if ext else root


def codings(code: etree._Element | None) -> list[Coding]:
    """The (system, code) pairs of a `code`-like element and its `translation`s, the sender's own first."""
    if code is None:
        return []
    found = []
    if code.get("code") and code.get("codeSystem") and not code.get("nullFlavor"):
        found.append(Coding(from_oid(code.get("codeSystem")), code.get("code"), code.get("displayName", "")))
    for t in children(code, "translation"):
        found.extend(codings(t))
    return found


def original_text(code: etree._Element | None) -> str:
    return text_of(child(code, "originalText"))


def ts(value: str | None) -> tuple[date, Precision] | None:
    """An HL7 TS value as a date and its precision ('2009' year, '200903' month, '20090315...' day).

    None when the value is not a valid TS or names an impossible date.
    """
    if not value:
        return None
    m = _TS.fullmatch(value.strip())
    if not m:
        return None
    year, month, day = m.group(1), m.group(2), m.group(3)
    if m.group(4) and not day:
        return None  # hours without a day
    try:
        if day:
            return date(int(year), int(month), int(day)), "day"
        if month:
            return date(int(year), int(month), 1), "month"
        return date(int(year), 1, 1), "year"
    except ValueError:
        return None


def own_time(el: etree._Element) -> str | None:
    """The statement's own clinical TS, by NOTES.md section 3: effectiveTime center, low or @value, else availabilityTime.

    Any nullFlavor means "no date here"; `low`/`high` count only directly under effectiveTime
    (reference ranges use them too).
    """
    et = child(el, "effectiveTime")
    if et is not None:
        for sub in (child(et, "center"), child(et, "low"), et):
            if sub is not None and sub.get("value") and not sub.get("nullFlavor"):
                return sub.get("value")
    at = child(el, "availabilityTime")
    if at is not None and at.get("value") and not at.get("nullFlavor"):
        return at.get("value")
    return None


def _bare(message: str) -> str:
    """libxml2's message without its trailing ', line N, column M' (the caller states the place)."""
    return re.sub(r",\s*line \d+, column \d+\s*$", "", message or "not well-formed")
