"""Reader for GP2GP HL7v3 EHR extracts (`RCMR_IN030000UK06`, or a bare `EhrExtract`)."""

from __future__ import annotations

import hashlib
import re
from datetime import date
from pathlib import Path
from urllib.parse import unquote

from lxml import etree

from . import hl7
from .errors import RecordError, RecordErrorCode
from .events import make_event, patient_number
from .hl7 import child, children, codings, ident, local, original_text, path, text_of
from .model import CodedEvent, CodedRecord, Coding, Precision
from .systems import CTV3, OID_NHS_NUMBER, READ_V2

NAME = "gp2gp-ehr-extract"
MAX_BYTES = 512 * 1024 * 1024

_ROOT = re.compile(r"<(?:[\w.-]+:)?([\w.-]+)[\s/>]")
_DOCTYPE_DECL = re.compile(r"<!\s*DOCTYPE[^\[>]*(\[.*?\]\s*)?>", re.S | re.I)

# Allergy entries sit under a CATEGORY coded "H/O: drug allergy" or "non-drug allergy" (NOTES.md s2).
_ALLERGY_CODES = frozenset({(READ_V2, "14L..00"), (READ_V2, "SN53.00"), (CTV3, "14L.."), (CTV3, "SN53.")})
_INACTIVE_PROBLEM = "394775005"
# Compositions that only carry data, not a consultation: the PS adaptor makes no Encounter of the
# first two, and the GP2GP adaptor wraps each problem header in the third.
_NON_CONSULTATION = frozenset({"196401000000100", "196391000000103", "109341000000100"})
_VACCINE = re.compile(r"vaccin|vaccn|immunis|immuniz", re.I)
_NOT_GIVEN = re.compile(r"\b(no|not|declin\w*|refus\w*|contraindicat\w*|dissent)\b", re.I)
_SUPPLY_FLAGS = {"ehrSupplyAuthorise": "authorisation", "ehrSupplyPrescribe": "issue", "ehrSupplyDiscontinue": "discontinued"}
_ENTRIES = frozenset(
    {"ObservationStatement", "NarrativeStatement", "PlanStatement", "RequestStatement", "MedicationStatement",
     "LinkSet", "CompoundStatement"}
)


def sniff(head: bytes) -> int | None:
    """100 for an RCMR_IN030000UK06 root, 90 for another RCMR_IN0300 version, 85 for a bare EhrExtract."""
    rest = hl7.prolog_rest(head)
    declared = _DOCTYPE_DECL.match(rest)
    if declared:
        rest = rest[declared.end():].lstrip()
    elif hl7.has_doctype(head):
        return 10  # a DOCTYPE longer than the head: let read() refuse it as hostile XML
    m = _ROOT.match(rest)
    if not m:
        return None
    name = m.group(1)
    if name == "RCMR_IN030000UK06":
        return 100
    if name.startswith("RCMR_IN0300"):
        return 90
    if name == "EhrExtract":
        return 85
    return None


def read(file: Path) -> CodedRecord:
    """Read a GP2GP extract into a CodedRecord.

    Raises:
        RecordError: too_large, hostile_xml, malformed_xml (with the line), or not_a_record when
            the XML holds no EhrExtract.
    """
    file = Path(file)
    if file.stat().st_size > MAX_BYTES:
        raise RecordError(RecordErrorCode.too_large, f"{file.name} is over {MAX_BYTES >> 20} MB; no GP2GP extract is that big")
    data = file.read_bytes()
    root = hl7.parse(data, file.name)
    extract = root if local(root) == "EhrExtract" else next(hl7.descendants(root, "EhrExtract"), None)
    if extract is None:
        raise RecordError(
            RecordErrorCode.not_a_record,
            f"{file.name} is XML with root <{local(root)}> but holds no EhrExtract; give the GP2GP "
            "RCMR_IN030000UK06 payload, not the ebXML envelope or an acknowledgement.",
        )
    reader = _Extract(extract, file.name)
    events = reader.events()
    nhs, warnings = reader.patient()
    return CodedRecord(NAME, nhs, tuple(events), tuple(warnings + reader.warnings), hashlib.sha256(data).hexdigest())


class _Extract:
    """One pass over an EhrExtract; collects warnings as it goes."""

    def __init__(self, extract: etree._Element, name: str) -> None:
        self.extract = extract
        self.name = name
        self.warnings: list[str] = []
        self.undated = 0
        self.by_id = {}
        for el in extract.iter():
            if local(el) in _ENTRIES:
                i = child(el, "id")
                if i is not None and i.get("root"):
                    self.by_id[i.get("root")] = el

    def patient(self) -> tuple[str | None, list[str]]:
        patient = path(self.extract, "recordTarget", "patient")
        ids = list(children(patient, "id")) if patient is not None else []
        for i in ids:
            if i.get("root") == OID_NHS_NUMBER:
                return patient_number(i.get("extension"), self.name)
        shown = ", ".join(f"{i.get('extension')} ({i.get('root')})" for i in ids) or "none"
        return None, [f"{self.name}: recordTarget has no NHS number identifier (found: {shown})"]

    def events(self) -> list[CodedEvent]:
        out: list[CodedEvent] = []
        handlers = {
            "ehrComposition": self._encounter,
            "ObservationStatement": self._observation,
            "NarrativeStatement": self._narrative,
            "CompoundStatement": self._group,
            "PlanStatement": lambda el: [self._simple(el, "plan")],
            "RequestStatement": lambda el: [self._simple(el, "referral")],
            "MedicationStatement": self._medication,
            "LinkSet": self._problem,
        }
        for el in self.extract.iter():
            handler = handlers.get(local(el))
            if handler is not None:
                out.extend(handler(el))
        if self.undated:
            self.warnings.append(f"{self.name}: {self.undated} entries have no usable date")
        return out

    # -- dates ---------------------------------------------------------------------------

    def _when(self, *elements: etree._Element, count: bool = True) -> tuple[date | None, Precision | None]:
        """The first usable date of the elements given, then of the enclosing statements and composition.

        `count` False when the caller has another place to look, so the undated tally stays true.
        """
        chain = list(elements)
        for a in elements[-1].iterancestors():
            if local(a) in ("CompoundStatement", "MedicationStatement", "ehrComposition"):
                chain.append(a)
            if local(a) == "ehrComposition":
                break
        for el in chain:
            value = hl7.own_time(el)
            if value is None:
                continue
            parsed = hl7.ts(value)
            if parsed is None:
                self.warnings.append(f"{self.name}: {local(el)} {ident(el)} has an invalid date {value!r}; ignored")
                continue
            return parsed
        self.undated += count
        return None, None

    # -- entries -------------------------------------------------------------------------

    def _annotations(self, el: etree._Element) -> list[str]:
        return [text_of(a) for a in hl7.descendants(el, "pertinentAnnotation")]

    def _code_texts(self, code: etree._Element | None) -> list[str]:
        """originalText when it says more than the term (what the clinician saw or typed)."""
        shown = original_text(code)
        term = (code.get("displayName") or "") if code is not None else ""
        return [shown] if shown and shown != term else []

    def _value(self, el: etree._Element) -> tuple[list[Coding], list[str]]:
        value = child(el, "value")
        if value is None:
            return [], []
        kind = value.get("{http://www.w3.org/2001/XMLSchema-instance}type", "") or value.get("type", "")
        if kind.endswith("CD") or value.get("codeSystem"):
            shown = value.get("displayName") or original_text(value)
            return codings(value), [f"value: {shown}"] if shown else []
        if kind.endswith("PQ") and value.get("value"):
            unit = original_text(child(value, "translation")) or ("" if value.get("unit") in (None, "1") else value.get("unit"))
            return [], [f"value: {value.get('value')} {unit}".strip()]
        if kind.endswith("IVL_PQ"):
            low, high = child(value, "low"), child(value, "high")
            parts = [f"{b.get('value')}" for b in (low, high) if b is not None and b.get("value")]
            return [], [f"value: {' to '.join(parts)}"] if parts else []
        shown = text_of(value)
        return [], [f"value: {shown}"] if shown else []

    def _observation(self, el: etree._Element) -> list[CodedEvent]:
        code = child(el, "code")
        found = codings(code)
        value_codes, value_text = self._value(el)
        flags = ["uncertain"] if child(el, "uncertaintyCode") is not None else []
        return [
            make_event(
                found + value_codes, self._observation_type(el, found), self._when(el), source_ref=ident(el),
                text=self._code_texts(code) + value_text + self._annotations(el), flags=flags,
                display=original_text(code),
            )
        ]

    def _observation_type(self, el: etree._Element, found: list[Coding]) -> str:
        heads = [found] + [codings(child(a, "code")) for a in el.iterancestors() if local(a) == "CompoundStatement"]
        if any((c.system, c.code) in _ALLERGY_CODES for group in heads for c in group):
            return "allergy"
        # The PS adaptor uses a SNOMED list we do not have; Read chapter 65 and the terms agree with
        # it on every fixture. Refusals ("no consent for immunisation") stay observations.
        terms = " ".join(c.display for c in found)
        if any(c.system == READ_V2 and c.code.startswith("65") for c in found) or (
            _VACCINE.search(terms) and not _NOT_GIVEN.search(terms)
        ):
            return "immunisation"
        return "observation"

    def _narrative(self, el: etree._Element) -> list[CodedEvent]:
        text = text_of(child(el, "text"))
        doc = path(el, "reference", "referredToExternalDocument")
        if doc is None:
            return [make_event([], "narrative", self._when(el), source_ref=ident(el), text=[text])]
        ref = path(doc, "text", "reference")
        file_name = unquote((ref.get("value") or "") if ref is not None else "").rsplit("/", 1)[-1]
        flags = ["attachment"]
        if file_name.startswith("AbsentAttachment"):
            flags.append("absent_attachment")
        return [
            make_event(
                codings(child(doc, "code")), "narrative", self._when(el), source_ref=ident(el),
                text=[text, f"document: {file_name}" if file_name else ""], flags=flags, display=text[:200],
            )
        ]

    def _group(self, el: etree._Element) -> list[CodedEvent]:
        # TOPIC and CATEGORY are headings of a consultation; batteries (BP) and clusters (pathology)
        # are results in their own right, as the PS adaptor's Observations show.
        if el.get("classCode") not in ("BATTERY", "CLUSTER"):
            return []
        code = child(el, "code")
        if not codings(code) and not original_text(code):
            return []
        return [
            make_event(
                codings(code), "observation", self._when(el), source_ref=ident(el),
                text=self._code_texts(code) + self._annotations(el), flags=["group"], display=original_text(code),
            )
        ]

    def _simple(self, el: etree._Element, type_: str) -> CodedEvent:
        code = child(el, "code")
        return make_event(
            codings(code), type_, self._when(el), source_ref=ident(el),
            text=self._code_texts(code) + [text_of(child(el, "text"))] + self._annotations(el),
            display=original_text(code),
        )

    def _medication(self, el: etree._Element) -> list[CodedEvent]:
        drug = path(el, "consumable", "manufacturedProduct", "manufacturedMaterial", "code")
        found = codings(drug)
        dose = text_of(path(el, "pertinentInformation", "pertinentMedicationDosage", "text"))
        texts = self._code_texts(drug) + ([f"dose: {dose}"] if dose else [])
        # A statement holding only a discontinuation is the record that a course was stopped.
        supplies = [
            (s, _SUPPLY_FLAGS[local(s)]) for c in children(el, "component") for s in c if local(s) in _SUPPLY_FLAGS
        ]
        if not supplies:
            return [make_event(found, "medication", self._when(el), source_ref=ident(el), text=texts, display=original_text(drug))]
        return [
            make_event(
                found, "medication", self._when(s, el), source_ref=ident(s), text=texts, flags=[flag],
                display=original_text(drug),
            )
            for s, flag in supplies
        ]

    def _problem(self, el: etree._Element) -> list[CodedEvent]:
        ref = path(el, "conditionNamed", "namedStatementRef", "id")
        named = self.by_id.get(ref.get("root")) if ref is not None else None
        if named is None:
            # Its linked entries are events of their own; a problem with no name adds nothing.
            why = "names no problem entry" if ref is None else f"names entry {ref.get('root')}, which is not in the extract"
            self.warnings.append(f"{self.name}: problem header (LinkSet) {ident(el)} {why}; skipped")
            return []
        code = child(named, "code")
        if local(named) == "MedicationStatement":
            code = path(named, "consumable", "manufacturedProduct", "manufacturedMaterial", "code")
        flags = ["inactive"] if child(el, "code") is not None and child(el, "code").get("code") == _INACTIVE_PROBLEM else []
        when = self._when(el, count=False)
        if when[0] is None:
            when = self._when(named)
        return [
            make_event(
                codings(code), "problem", when, source_ref=ident(el),
                text=self._code_texts(code) + [original_text(child(el, "code"))], flags=flags,
                display=original_text(code),
            )
        ]

    def _encounter(self, el: etree._Element) -> list[CodedEvent]:
        code = child(el, "code")
        found = codings(code)
        if any(c.code in _NON_CONSULTATION for c in found):
            return []
        if not any(local(s) in _ENTRIES for c in children(el, "component") for s in c):
            return []
        place = text_of(path(el, "location", "locatedEntity", "locatedPlace", "name"))
        return [
            make_event(
                found, "encounter", self._when(el), source_ref=ident(el),
                text=self._code_texts(code) + ([f"at: {place}"] if place else []), display=original_text(code),
            )
        ]
