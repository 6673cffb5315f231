"""Reader for FHIR R4 bundles (GP Summary documents, UK Core resources)."""

from __future__ import annotations

from pathlib import Path

from .fhir_bundle import read_bundle
from .fhir_common import Spec, sniff_for
from .fhir_stu3 import SPECS as STU3_SPECS
from .model import CodedRecord

NAME = "fhir-r4"

# R4 renames a few elements (assertedDate -> recordedDate, Immunization.date -> occurrenceDateTime,
# DocumentReference.created -> date) and folds ProcedureRequest/ReferralRequest into ServiceRequest.
SPECS = {
    **{k: v for k, v in STU3_SPECS.items() if k not in ("ProcedureRequest", "ReferralRequest")},
    "Condition": Spec("problem", ("code",), ("onsetDateTime", "onsetPeriod.start", "recordedDate")),
    "AllergyIntolerance": Spec("allergy", ("code",), ("onsetDateTime", "onsetPeriod.start", "recordedDate")),
    "Immunization": Spec("immunisation", ("vaccineCode",), ("occurrenceDateTime", "recorded")),
    "ServiceRequest": Spec("plan", ("code", "reasonCode"), ("occurrenceDateTime", "occurrencePeriod.start", "authoredOn")),
    "DocumentReference": Spec("narrative", ("type",), ("date", "context.period.start"), ("attachment",)),
}


def sniff(head: bytes) -> int | None:
    return sniff_for(head, "r4")


def read(file: Path) -> CodedRecord:
    """Read an R4 bundle (or one R4 resource) into a CodedRecord; see fhir_bundle.read_bundle."""
    return read_bundle(Path(file), NAME, SPECS)
