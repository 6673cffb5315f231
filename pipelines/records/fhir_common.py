"""What FHIR STU3 and R4 share: safe JSON loading, version sniffing, codings, dates, references and the patient."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from .errors import RecordError, RecordErrorCode
from .events import patient_number
from .model import Coding, Precision
from .systems import from_fhir, is_nhs_number_system, is_null_flavor

MAX_BYTES = 512 * 1024 * 1024
Resource = dict[str, Any]

_RESOURCE = re.compile(r'"resourceType"\s*:\s*"[A-Z][A-Za-z]+"')
# (pattern, weight): profile namespaces and fhirVersion are strong evidence, element shapes weak.
# Presence counts, not occurrences: a UK Core R4 file still cites a few STU3 extension URLs.
_STU3_MARKERS = (
    (r"/STU3/", 3), (r'"fhirVersion"\s*:\s*"3\.', 3), (r'"assertedDate"', 1), (r'"clinicalStatus"\s*:\s*"', 1),
    (r'"verificationStatus"\s*:\s*"', 1), (r"hl7\.org/fhir/v[23]/", 1), (r'"notGiven"', 1),
    (r'"resourceType"\s*:\s*"(ProcedureRequest|ReferralRequest)"', 2),
)
_R4_MARKERS = (
    (r"/R4/", 3), (r'"fhirVersion"\s*:\s*"4\.', 3), (r"UKCore", 3), (r'"recordedDate"', 1),
    (r'"clinicalStatus"\s*:\s*\{', 1), (r'"verificationStatus"\s*:\s*\{', 1), (r"terminology\.hl7\.org/CodeSystem", 1),
    (r'"resourceType"\s*:\s*"ServiceRequest"', 2),
)
_FHIR_DATE = re.compile(r"(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T[0-9:.]+(?:Z|[+-]\d{2}:?\d{2})?)?)?)?")


def version_evidence(head: bytes) -> tuple[int, int] | None:
    """(STU3 score, R4 score) for a JSON FHIR resource, or None when `head` is not one."""
    text = head.decode("utf-8", errors="replace").lstrip("\ufeff").lstrip()
    if not text.startswith("{") or not _RESOURCE.search(text):
        return None
    score = lambda markers: sum(w for pattern, w in markers if re.search(pattern, text))  # noqa: E731
    return score(_STU3_MARKERS), score(_R4_MARKERS)


def sniff_for(head: bytes, version: str) -> int | None:
    """The score of the STU3 ("stu3") or R4 ("r4") reader: high when its markers win, 20 when none decide."""
    evidence = version_evidence(head)
    if evidence is None:
        return None
    mine, theirs = evidence if version == "stu3" else evidence[::-1]
    if mine > theirs:
        return 60 + min(mine - theirs, 30)
    if mine == theirs:
        return 20  # both readers say 20: detect() reports the tie instead of guessing
    return None


def load(file: Path) -> tuple[dict[str, Any], bytes]:
    """The parsed JSON object and the raw bytes.

    Raises:
        RecordError: too_large; malformed_json with the line and column; not_a_record when the
            JSON is not a FHIR resource.
    """
    if file.stat().st_size > MAX_BYTES:
        raise RecordError(RecordErrorCode.too_large, f"{file.name} is over {MAX_BYTES >> 20} MB; no FHIR record is that big")
    data = file.read_bytes()
    try:
        doc = json.loads(data.decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise RecordError(RecordErrorCode.malformed_json, f"{file.name} is not UTF-8 text (byte {exc.start}); FHIR JSON must be UTF-8") from exc
    except json.JSONDecodeError as exc:
        raise RecordError(
            RecordErrorCode.malformed_json,
            f"{file.name} is not valid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}. The file is "
            "damaged or was cut short; ask the sender to resend it.",
            line=exc.lineno,
        ) from exc
    except RecursionError as exc:
        raise RecordError(RecordErrorCode.malformed_json, f"{file.name} nests JSON too deeply to be a FHIR record") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("resourceType"), str):
        raise RecordError(RecordErrorCode.not_a_record, f"{file.name} is JSON but not a FHIR resource (no resourceType)")
    return doc, data


def resources(doc: dict[str, Any], name: str, warnings: list[str]) -> list[tuple[str, Resource]]:
    """(fullUrl, resource) of every entry of a Bundle, or the one resource of a bare resource file."""
    if doc["resourceType"] != "Bundle":
        warnings.append(f"{name}: a single {doc['resourceType']}, not a Bundle; read as a record of one resource")
        return [("", doc)]
    out = []
    for n, entry in enumerate(doc.get("entry") or [], 1):
        if not isinstance(entry, dict):
            warnings.append(f"{name}: Bundle entry {n} is not an object; skipped")
            continue
        res = entry.get("resource")
        if res is None and isinstance(entry.get("resourceType"), str):
            # The GP Connect diary example has entries without the `resource` wrapper.
            warnings.append(f"{name}: Bundle entry {n} ({entry['resourceType']}) has no 'resource' wrapper; read as the resource")
            res = entry
        if not isinstance(res, dict) or not isinstance(res.get("resourceType"), str):
            warnings.append(f"{name}: Bundle entry {n} holds no resource; skipped")
            continue
        out.append((str(entry.get("fullUrl") or ""), res))
    return out


class Index:
    """Resources of a bundle by `Type/id` and by fullUrl, so references resolve inside the bundle."""

    def __init__(self, entries: list[tuple[str, Resource]]) -> None:
        self._by: dict[str, Resource] = {}
        for full_url, r in entries:
            if r.get("id"):
                self._by[f"{r['resourceType']}/{r['id']}"] = r
            if full_url:
                self._by[full_url] = r

    def resolve(self, ref: Any, within: Resource | None = None) -> Resource | None:
        target = ref.get("reference") if isinstance(ref, dict) else None
        if not isinstance(target, str):
            return None
        if target.startswith("#") and within is not None:
            return next((c for c in within.get("contained") or [] if c.get("id") == target[1:]), None)
        if target in self._by:
            return self._by[target]
        # An absolute URL whose tail is Type/id (https://server/fhir/Medication/123).
        tail = "/".join(target.rstrip("/").split("/")[-2:])
        return self._by.get(tail)


def get(resource: Any, dotted: str) -> Any:
    """The value at `dotted` ('effectivePeriod.start'), or None."""
    for part in dotted.split("."):
        if not isinstance(resource, dict):
            return None
        resource = resource.get(part)
    return resource


def fhir_date(value: Any) -> tuple[date, Precision] | None:
    """A FHIR date/dateTime string as a date and its precision from its length: YYYY, YYYY-MM or a full date."""
    if not isinstance(value, str):
        return None
    m = _FHIR_DATE.fullmatch(value.strip())
    if not m:
        return None
    try:
        if m.group(3):
            return date(int(m.group(1)), int(m.group(2)), int(m.group(3))), "day"
        if m.group(2):
            return date(int(m.group(1)), int(m.group(2)), 1), "month"
        return date(int(m.group(1)), 1, 1), "year"
    except ValueError:
        return None


def concept(cc: Any) -> tuple[list[Coding], list[str]]:
    """Codings of a CodeableConcept (null flavours dropped) and its texts (`text`, SNOMED description terms)."""
    if not isinstance(cc, dict):
        return [], []
    found, texts = [], []
    for c in cc.get("coding") or []:
        if not isinstance(c, dict) or not isinstance(c.get("code"), str) or not isinstance(c.get("system"), str):
            continue
        if is_null_flavor(c["system"]):
            continue
        found.append(Coding(from_fhir(c["system"]), c["code"], str(c.get("display") or "")))
        term = _description_term(c)
        if term and term != c.get("display"):
            texts.append(term)
    if isinstance(cc.get("text"), str):
        texts.insert(0, cc["text"])
    return found, texts


def _description_term(coding: dict[str, Any]) -> str:
    # The sctdescid extension is spelt several ways in the fixtures (NOTES.md section 7).
    for ext in coding.get("extension") or []:
        url = str(ext.get("url", "")).lower() if isinstance(ext, dict) else ""
        if "sctdescid" in url or "sctdecsid" in url:
            for sub in ext.get("extension") or []:
                if isinstance(sub, dict) and str(sub.get("url", "")).lower() == "descriptiondisplay":
                    return str(sub.get("valueString") or "")
    return ""


def status_code(value: Any) -> str:
    """A status given as a plain code (STU3) or as a CodeableConcept (R4), lower-cased."""
    if isinstance(value, str):
        return value.strip().lower()
    if isinstance(value, dict):
        for c in value.get("coding") or []:
            if isinstance(c, dict) and c.get("code"):
                return str(c["code"]).strip().lower()
        return str(value.get("text") or "").strip().lower()
    return ""


def notes(resource: Resource) -> list[str]:
    return [n["text"] for n in resource.get("note") or [] if isinstance(n, dict) and isinstance(n.get("text"), str)]


def extensions(resource: Resource, fragment: str) -> Iterator[dict[str, Any]]:
    fragment = fragment.lower()
    return (e for e in resource.get("extension") or [] if isinstance(e, dict) and fragment in str(e.get("url", "")).lower())


def patient_nhs_number(entries: list[tuple[str, Resource]], name: str) -> tuple[str | None, list[str]]:
    """The NHS number of the bundle's Patient.

    Raises:
        RecordError: nhs_mismatch when the bundle names more than one NHS number.
    """
    numbers = []
    for _, r in entries:
        if r.get("resourceType") != "Patient":
            continue
        for ident in r.get("identifier") or []:
            if isinstance(ident, dict) and is_nhs_number_system(str(ident.get("system", ""))):
                value = str(ident.get("value") or "").strip()
                if value not in numbers:
                    numbers.append(value)
    if len(numbers) > 1:
        raise RecordError(
            RecordErrorCode.nhs_mismatch,
            f"{name} names more than one patient NHS number ({', '.join(numbers)}); a coded record must be "
            "for one patient. Ask the sender for a record of one patient.",
        )
    if not numbers:
        return None, [f"{name}: no Patient with an NHS number (system https://fhir.nhs.uk/Id/nhs-number)"]
    return patient_number(numbers[0], name)


@dataclass(frozen=True, slots=True)
class Spec:
    """How one resource type becomes an event in one FHIR version: its type, code fields and date fields in order."""

    type: str
    codes: tuple[str, ...]
    dates: tuple[str, ...]
    flags: tuple[str, ...] = ()
