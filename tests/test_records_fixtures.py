"""Every public reference fixture is read (or refused, for the three that are not records) as documented."""

from __future__ import annotations

from tests.conftest import reference_data_dir

from collections import Counter
from pathlib import Path

import pytest

from pipelines.records import RecordError, UnknownRecordFormat, read_record
from pipelines.records.model import FLAGS, record_from_json, record_to_json

REFERENCE = reference_data_dir()
pytestmark = pytest.mark.skipif(not REFERENCE.is_dir(), reason=f"reference data not found at {REFERENCE}")

DOCS = {"README.md", "NOTES.md", "SOURCES.json", "SHA256SUMS"}
# The three files that are not coded records, and why (README.md / NOTES.md of the reference data).
REFUSED = {
    # the ebXML envelope listing a large message's attachments: no EHR extract inside
    "gp2gp-ehr-extract/nia-pss-misc/LARGE_MSG_ebxml.xml": ("unknown_format", "ebXML"),
    # the body text of an absent-attachment placeholder
    "gpconnect-to-gp2gp-pairs/component-test/absent-attachment-test.txt": ("unknown_format", "absent-attachment"),
    # upstream compares it as a string; it is not well-formed (unbound xsi prefix, unclosed <code>)
    "gpconnect-to-gp2gp-pairs/component-test/expected-ehr-extract-response-from-json.xml": ("malformed_xml", "line 741"),
}
FILES = sorted(
    str(p.relative_to(REFERENCE)) for p in REFERENCE.rglob("*") if p.is_file() and p.name not in DOCS
) if REFERENCE.is_dir() else []


def _format(rel: str) -> str:
    if rel.endswith(".xml"):
        return "gp2gp-ehr-extract"
    if rel.startswith("fhir-r4/") and "careconnect-stu3_" not in rel:
        return "fhir-r4"
    return "fhir-stu3"


def test_every_fixture_is_covered():
    assert len(FILES) == 54  # the README's 54 data files (its README, NOTES, SOURCES.json and SHA256SUMS aside)
    assert set(REFUSED) <= set(FILES)


@pytest.mark.parametrize("rel", FILES)
def test_fixture_reads_or_is_refused_as_documented(rel):
    path = REFERENCE / rel
    if rel in REFUSED:
        code, words = REFUSED[rel]
        with pytest.raises(RecordError) as info:
            read_record(path)
        assert info.value.code == code
        assert words in str(info.value)
        return
    record = read_record(path)
    assert record.format == _format(rel)
    assert len(record.sha256) == 64
    for e in record.events:
        assert set(e.flags) <= FLAGS
        assert e.system == "" or e.system.startswith(("http://", "https://", "urn:oid:")), e.system
        assert e.code == e.code.strip()
        assert e.code or "uncoded" in e.flags
    # Every record survives the JSON form that `coded show --json` prints and `coded import` stores.
    again = record_from_json(record_to_json(record), record.sha256)
    assert again.events == record.events and again.nhs_number == record.nhs_number


def test_ebxml_manifest_is_refused_with_what_to_give_instead():
    with pytest.raises(UnknownRecordFormat) as info:
        read_record(REFERENCE / "gp2gp-ehr-extract/nia-pss-misc/LARGE_MSG_ebxml.xml")
    assert "HL7 payload" in str(info.value)
    assert info.value.tried == ("gp2gp-ehr-extract", "fhir-stu3", "fhir-r4", "csv")


# Events per type for a sample of fixtures: a regression net over the reading rules.
EXPECTED_TYPES = {
    "gp2gp-ehr-extract/nia-pss-e2e/PWTP2.xml": {
        "encounter": 9, "observation": 36, "narrative": 9, "problem": 9, "plan": 2, "allergy": 4, "medication": 75,
    },
    "gp2gp-ehr-extract/nia-pss-e2e/PWTP9.xml": {"encounter": 21, "observation": 241, "narrative": 72},
    "gp2gp-ehr-extract/nia-pss-misc/RCMR_IN030000UK06_payload_part.xml": {
        "encounter": 11, "observation": 46, "narrative": 31, "plan": 3, "referral": 3, "medication": 244,
        "immunisation": 2, "allergy": 8, "problem": 1,
    },
    "gpconnect-to-gp2gp-pairs/TC7/9465701262_Meyers_full_20210602.json": {
        "medication": 48, "problem": 15, "allergy": 2, "immunisation": 6, "encounter": 41, "observation": 28,
        "referral": 4, "plan": 4, "narrative": 30,
    },
    "fhir-r4/scr-gp-summary/standard_gp_summary.json": {"problem": 5, "observation": 3},
    "fhir-r4/scr-gp-summary/additional_information_gp_summary_1.json": {"observation": 9, "procedure": 3},
    "gpconnect-stu3/spec-examples/consultations_response1.json": {
        "problem": 4, "encounter": 3, "narrative": 21, "observation": 26, "medication": 10,
    },
}


@pytest.mark.parametrize("rel", sorted(EXPECTED_TYPES))
def test_event_types_per_fixture(rel):
    record = read_record(REFERENCE / rel)
    assert dict(Counter(e.type for e in record.events)) == EXPECTED_TYPES[rel]
