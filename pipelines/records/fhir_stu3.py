"""Reader for GP Connect Access Record: Structured (FHIR STU3) bundles and other STU3 resources."""

from __future__ import annotations

from pathlib import Path

from .fhir_bundle import read_bundle
from .fhir_common import Spec, sniff_for
from .model import CodedRecord

NAME = "fhir-stu3"

# Clinical date fields in order of preference, as NOTES.md section 7 lists them per resource.
SPECS = {
    "Condition": Spec("problem", ("code",), ("onsetDateTime", "onsetPeriod.start", "assertedDate")),
    "AllergyIntolerance": Spec("allergy", ("code",), ("onsetDateTime", "onsetPeriod.start", "assertedDate")),
    "Observation": Spec("observation", ("code",), ("effectiveDateTime", "effectivePeriod.start", "@report", "issued")),
    "DiagnosticReport": Spec("observation", ("code",), ("effectiveDateTime", "effectivePeriod.start", "issued"), ("group",)),
    "MedicationStatement": Spec(
        "medication", ("medicationReference", "medicationCodeableConcept"),
        ("effectivePeriod.start", "effectiveDateTime", "dateAsserted"), ("authorisation",),
    ),
    "MedicationRequest": Spec(
        "medication", ("medicationReference", "medicationCodeableConcept"),
        ("authoredOn", "dispenseRequest.validityPeriod.start"),
    ),
    "Immunization": Spec("immunisation", ("vaccineCode",), ("date",)),
    "Procedure": Spec("procedure", ("code",), ("performedDateTime", "performedPeriod.start")),
    "ProcedureRequest": Spec("plan", ("code",), ("occurrenceDateTime", "occurrencePeriod.start", "occurrence", "authoredOn")),
    "ReferralRequest": Spec("referral", ("reasonCode", "serviceRequested", "type"), ("authoredOn", "occurrenceDateTime", "occurrencePeriod.start")),
    "Encounter": Spec("encounter", ("type",), ("period.start",)),
    "DocumentReference": Spec("narrative", ("type",), ("created", "indexed"), ("attachment",)),
}


def sniff(head: bytes) -> int | None:
    return sniff_for(head, "stu3")


def read(file: Path) -> CodedRecord:
    """Read an STU3 bundle (or one STU3 resource) into a CodedRecord; see fhir_bundle.read_bundle."""
    return read_bundle(Path(file), NAME, SPECS)
