"""One FHIR bundle (STU3 or R4) to coded events, driven by each version's table of resource Specs."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import Any

from . import fhir_common as fc
from .events import make_event
from .fhir_common import Resource, Spec
from .model import CodedEvent, CodedRecord, Coding, Precision

COMMENT_NOTE = "37331000000100"  # GP Connect "Comment note": a free-text entry, like an HL7 NarrativeStatement
_INACTIVE = frozenset({"inactive", "resolved", "remission"})
_UNCERTAIN = frozenset({"unconfirmed", "provisional", "differential"})
_NOT_A_FACT = frozenset({"entered-in-error", "refuted"})
_ISSUE_INTENTS = frozenset({"order", "original-order", "instance-order", "reflex-order", "filler-order"})


def read_bundle(file: Path, format_name: str, specs: Mapping[str, Spec]) -> CodedRecord:
    """Read a FHIR JSON bundle (or a single resource) with the resource table of one FHIR version.

    Raises:
        RecordError: see fhir_common.load and fhir_common.patient_nhs_number.
    """
    file = Path(file)
    doc, data = fc.load(file)
    warnings: list[str] = []
    entries = fc.resources(doc, file.name, warnings)
    nhs, patient_warnings = fc.patient_nhs_number(entries, file.name)
    bundle = _Bundle(file.name, entries, specs, warnings)
    events = bundle.events()
    return CodedRecord(format_name, nhs, tuple(events), tuple(patient_warnings + warnings), hashlib.sha256(data).hexdigest())


class _Bundle:
    def __init__(self, name: str, entries: list[tuple[str, Resource]], specs: Mapping[str, Spec], warnings: list[str]) -> None:
        self.name = name
        self.entries = entries
        self.specs = specs
        self.warnings = warnings
        self.index = fc.Index(entries)
        self.undated = 0
        self.empty: dict[str, int] = {}
        # A plan MedicationRequest that a MedicationStatement is based on is the same course.
        self.courses = {
            ref["reference"].split("/")[-1]
            for _, r in entries if r.get("resourceType") == "MedicationStatement"
            for ref in r.get("basedOn") or [] if isinstance(ref, dict) and isinstance(ref.get("reference"), str)
        }
        self.report_dates = self._report_dates()

    def _report_dates(self) -> dict[str, Any]:
        """Observation id -> its DiagnosticReport's date, for results with no effective[x] of their own."""
        found: dict[str, Any] = {}
        for _, r in self.entries:
            if r.get("resourceType") != "DiagnosticReport":
                continue
            when = r.get("effectiveDateTime") or fc.get(r, "effectivePeriod.start") or r.get("issued")
            todo = list(r.get("result") or [])
            while todo:
                obs = self.index.resolve(todo.pop())
                if obs is None or obs.get("id") in found:
                    continue
                found[obs.get("id")] = when
                # Test-group Observations list their results: R4 hasMember, STU3 related has-member.
                todo.extend(obs.get("hasMember") or [])
                todo.extend(
                    m.get("target") for m in obs.get("related") or []
                    if isinstance(m, dict) and m.get("type", "has-member") == "has-member"
                )
        return found

    def events(self) -> list[CodedEvent]:
        out: list[CodedEvent] = []
        for _, r in self.entries:
            out.extend(self._event(r, f"{r['resourceType']}/{r.get('id', '')}"))
            for c in r.get("contained") or []:
                if isinstance(c, dict) and isinstance(c.get("resourceType"), str):
                    out.extend(self._event(c, f"{r['resourceType']}/{r.get('id', '')}#{c.get('id', '')}"))
        if self.undated:
            self.warnings.append(f"{self.name}: {self.undated} entries have no usable date")
        for kind, n in sorted(self.empty.items()):
            self.warnings.append(f"{self.name}: {n} {kind} resources carry no code and no text; skipped")
        return out

    def _event(self, r: Resource, ref: str) -> list[CodedEvent]:
        kind = r["resourceType"]
        spec = self.specs.get(kind)
        if spec is None:
            return []
        status = {fc.status_code(r.get("status")), fc.status_code(r.get("verificationStatus"))}
        if status & _NOT_A_FACT:
            self.warnings.append(f"{self.name}: {ref} is marked {'/'.join(sorted(status & _NOT_A_FACT))}; not read as a fact")
            return []
        if kind == "MedicationRequest" and r.get("intent") == "plan" and r.get("id") in self.courses:
            return []
        found, texts = self._codes(r, spec)
        flags = list(spec.flags) + self._flags(r, kind, status)
        type_ = spec.type
        if kind == "Observation" and any(c.code == COMMENT_NOTE for c in found):
            type_ = "narrative"
        texts += fc.notes(r) + self._more_text(r)
        if not found and not any(t.strip() for t in texts):
            self.empty[kind] = self.empty.get(kind, 0) + 1
            return []  # nothing to show or match: the SCR Encounters and the spec skeleton's stubs
        return [make_event(found, type_, self._when(r, spec, ref), source_ref=ref, text=texts, flags=flags)]

    def _codes(self, r: Resource, spec: Spec) -> tuple[list[Coding], list[str]]:
        found: list[Coding] = []
        texts: list[str] = []
        for field in spec.codes:
            value = r.get(field)
            if field == "medicationReference":
                med = self.index.resolve(value, within=r)
                if med is None and value:
                    self.warnings.append(f"{self.name}: {r['resourceType']}/{r.get('id')} refers to a Medication not in the bundle")
                value = med.get("code") if med else None
            for v in value if isinstance(value, list) else [value]:
                f, t = fc.concept(v)
                found += f
                texts += t
            if found or texts:
                break
        if not found and r["resourceType"] == "Immunization":
            # GP Connect sends vaccineCode as a null flavour ("Unknown") and the real code in an extension.
            for ext in fc.extensions(r, "VaccinationProcedure"):
                f, t = fc.concept(ext.get("valueCodeableConcept"))
                if f:
                    return f, t
        return found, texts

    def _flags(self, r: Resource, kind: str, status: set[str]) -> list[str]:
        flags = []
        if kind in ("Condition", "AllergyIntolerance"):
            if fc.status_code(r.get("clinicalStatus")) in _INACTIVE or any(fc.extensions(r, "AllergyIntoleranceEnd")):
                flags.append("inactive")
        # Only for problems: GP Connect fixes AllergyIntolerance.verificationStatus to "unconfirmed"
        # for every allergy, so there it says nothing.
        if kind == "Condition" and status & _UNCERTAIN:
            flags.append("uncertain")
        if kind == "Immunization" and (r.get("notGiven") is True or fc.status_code(r.get("status")) == "not-done"):
            flags.append("not_given")
        if kind == "MedicationRequest":
            flags.append("authorisation" if r.get("intent") == "plan" else "issue" if r.get("intent") in _ISSUE_INTENTS else "")
        if kind == "Observation" and (r.get("hasMember") or any(
            isinstance(m, dict) and m.get("type", "has-member") == "has-member" for m in r.get("related") or []
        )):
            flags.append("group")  # a test group or battery heading its results, like an HL7 CLUSTER/BATTERY
        if kind == "DocumentReference":
            attachments = [c.get("attachment") or {} for c in r.get("content") or [] if isinstance(c, dict)]
            if not attachments or any(
                not a.get("url") or "absentattachment" in (str(a.get("url")) + str(a.get("title", ""))).lower()
                for a in attachments
            ):
                flags.append("absent_attachment")
        return [f for f in flags if f]

    @staticmethod
    def _reactions(reaction: Any) -> list[str]:
        """What an AllergyIntolerance records the patient had: each manifestation's term, else the description."""
        if not isinstance(reaction, dict):
            return []
        shown = []
        for manifestation in reaction.get("manifestation") or []:
            found, texts = fc.concept(manifestation)
            shown += [t for t in dict.fromkeys([*(c.display for c in found), *texts]) if t and t not in shown]
        if not shown and isinstance(reaction.get("description"), str):
            shown.append(reaction["description"])
        return shown

    def _more_text(self, r: Resource) -> list[str]:
        texts = []
        for key in ("comment", "description"):
            if isinstance(r.get(key), str):
                texts.append(r[key])
        for key in ("dosage", "dosageInstruction"):
            texts += [f"dose: {d['text']}" for d in r.get(key) or [] if isinstance(d, dict) and isinstance(d.get("text"), str)]
        for reaction in r.get("reaction") or [] if r.get("resourceType") == "AllergyIntolerance" else []:
            texts += [f"reaction: {t}" for t in self._reactions(reaction)]
        q = r.get("valueQuantity")
        if isinstance(q, dict) and q.get("value") is not None:
            texts.append(f"value: {q['value']} {q.get('unit') or q.get('code') or ''}".strip())
        if isinstance(r.get("valueString"), str):
            texts.append(f"value: {r['valueString']}")
        if isinstance(r.get("valueCodeableConcept"), dict):
            _, t = fc.concept(r["valueCodeableConcept"])
            shown = t[0] if t else next((c.get("display") for c in r["valueCodeableConcept"].get("coding") or [] if isinstance(c, dict)), "")
            if shown:
                texts.append(f"value: {shown}")
        for c in r.get("content") or []:
            title = fc.get(c, "attachment.title")
            if isinstance(title, str):
                texts.append(f"document: {title}")
        return texts

    def _when(self, r: Resource, spec: Spec, ref: str) -> tuple[date | None, Precision | None]:
        for field in spec.dates:
            value = self.report_dates.get(r.get("id")) if field == "@report" else fc.get(r, field)
            if isinstance(value, dict):
                value = value.get("start")  # a Period where a dateTime was expected (GP Connect diary example)
            if value is None:
                continue
            parsed = fc.fhir_date(value)
            if parsed is None:
                self.warnings.append(f"{self.name}: {ref} has an invalid {field} {value!r}; ignored")
                continue
            return parsed
        self.undated += 1
        return None, None
