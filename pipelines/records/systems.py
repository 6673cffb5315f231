"""Code systems: HL7 OIDs and FHIR system URLs mapped to one canonical URI each, and the degraded-code set."""

from __future__ import annotations

import re

SNOMED = "http://snomed.info/sct"
READ_V2 = "http://read.info/readv2"
CTV3 = "http://read.info/ctv3"

# OIDs as the HL7 extracts write them (NOTES.md section 4). Anything else becomes urn:oid:<oid>,
# which is also how the PS adaptor writes EMIS drug codes in FHIR, so both formats agree.
OID_SNOMED = "2.16.840.1.113883.2.1.3.2.4.15"
OID_READ_V2 = "2.16.840.1.113883.2.1.6.2"
OID_CTV3 = "2.16.840.1.113883.2.1.3.2.4.14"
OID_EGTON = "2.16.840.1.113883.2.1.6.3"
OID_EMIS_DRUG = "2.16.840.1.113883.2.1.6.9"
OID_NHS_NUMBER = "2.16.840.1.113883.2.1.4.1"

_OID_URIS = {OID_SNOMED: SNOMED, OID_READ_V2: READ_V2, OID_CTV3: CTV3}

# FHIR system URLs seen in the fixtures (or their obvious variants) for the same systems.
_URL_URIS = {
    "http://snomed.info/sct": SNOMED,
    "https://snomed.info/sct": SNOMED,
    "http://read.info/readv2": READ_V2,
    "https://read.info/readv2": READ_V2,
    "http://read.info/ctv3": CTV3,
    "https://read.info/ctv3": CTV3,
    "https://fhir.hl7.org.uk/id/emis-drug-codes": f"urn:oid:{OID_EMIS_DRUG}",
    "https://fhir.hl7.org.uk/id/egton-codes": f"urn:oid:{OID_EGTON}",
}

NULL_FLAVOR_SYSTEMS = frozenset(
    {"http://hl7.org/fhir/v3/nullflavor", "http://terminology.hl7.org/codesystem/v3-nullflavor"}
)

NHS_NUMBER_SYSTEMS = frozenset({"https://fhir.nhs.uk/id/nhs-number", "http://fhir.nhs.net/id/nhs-number"})

# SNOMED "Transfer-degraded ..." concepts a sender substitutes when a code cannot travel. The first
# four occur in the fixtures (NOTES.md section 5); the others complete the UK family. Marking an
# entry degraded only ever makes reconcile include more, never omit more.
DEGRADED_CODES = frozenset(
    {
        "196411000000103",  # record entry
        "196421000000109",  # medication entry
        "196431000000106",  # referral
        "196441000000102",  # request
        "196451000000104",  # plan
        "196461000000101",  # drug allergy
        "196471000000108",  # non-drug allergy
    }
)

_OID = re.compile(r"[0-2](\.(0|[1-9][0-9]*))+")


def from_oid(oid: str) -> str:
    """The canonical URI for an HL7 `codeSystem` OID."""
    oid = oid.strip()
    return _OID_URIS.get(oid) or f"urn:oid:{oid}"


def from_fhir(system: str) -> str:
    """The canonical URI for a FHIR coding system: known URLs and OIDs mapped, others only trimmed.

    Lenient on purpose: the fixtures have trailing spaces, bare OIDs and http/https variants.
    """
    text = system.strip().rstrip("/")
    key = text.lower()
    if key in _URL_URIS:
        return _URL_URIS[key]
    if key.startswith("urn:oid:"):
        return from_oid(text[8:])
    if _OID.fullmatch(text):
        return from_oid(text)
    return text


def is_null_flavor(system: str) -> bool:
    return system.strip().rstrip("/").lower() in NULL_FLAVOR_SYSTEMS


def is_nhs_number_system(system: str) -> bool:
    return system.strip().rstrip("/").lower() in NHS_NUMBER_SYSTEMS


def is_degraded(system: str, code: str, display: str = "") -> bool:
    """True for a Transfer-degraded SNOMED code (or, from a sender we do not know, its term)."""
    if system == SNOMED and code.strip() in DEGRADED_CODES:
        return True
    return display.strip().lower().startswith("transfer-degraded")
