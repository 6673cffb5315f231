"""The coded-record readers on small, hand-made inputs: dates, code systems, flags, identity, CSV, refusals."""

from __future__ import annotations

from tests.conftest import reference_data_dir

import json
from datetime import date
from pathlib import Path

import pytest

from pipelines.records import RecordError, UnknownRecordFormat, detect, read_record
from pipelines.records import plain_csv
from pipelines.records.fhir_common import fhir_date
from pipelines.records.hl7 import ts
from pipelines.records.model import CodedEvent, CodedRecord, Coding
from pipelines.records.systems import CTV3, READ_V2, SNOMED, from_fhir, from_oid

REFERENCE = reference_data_dir()
needs_reference = pytest.mark.skipif(not REFERENCE.is_dir(), reason=f"reference data not found at {REFERENCE}")

HL7 = 'xmlns="urn:hl7-org:v3" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"'


def extract(body: str, patient: str = '<id root="2.16.840.1.113883.2.1.4.1" extension="9434765919"/>') -> str:
    """A minimal RCMR_IN030000UK06 holding one ehrComposition with `body` inside."""
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<RCMR_IN030000UK06 {HL7}>
 <ControlActEvent><subject><EhrExtract>
  <recordTarget><patient>{patient}</patient></recordTarget>
  <component><ehrFolder><component>
   <ehrComposition>
    <id root="C1"/>
    <code code="25671000000102" codeSystem="2.16.840.1.113883.2.1.3.2.4.15" displayName="Surgery Consultation Note"/>
    <effectiveTime><center nullFlavor="NI"/></effectiveTime>
    <availabilityTime value="20100323"/>
    {body}
   </ehrComposition>
  </component></ehrFolder></component>
 </EhrExtract></subject></ControlActEvent>
</RCMR_IN030000UK06>"""


def write(tmp_path: Path, name: str, text: str | bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    return path


# -- dates ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2009", (date(2009, 1, 1), "year")),
        ("200903", (date(2009, 3, 1), "month")),
        ("20090315", (date(2009, 3, 15), "day")),
        ("200903151230", (date(2009, 3, 15), "day")),
        ("20090315123059.123+0100", (date(2009, 3, 15), "day")),
        ("20091301", None),
        ("2009-03-15", None),
        ("", None),
    ],
)
def test_hl7_timestamp_precision(value, expected):
    assert ts(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2004", (date(2004, 1, 1), "year")),
        ("2018-12", (date(2018, 12, 1), "month")),
        ("2010-01-18", (date(2010, 1, 18), "day")),
        ("2010-01-18T11:41:00+00:00", (date(2010, 1, 18), "day")),
        ("2020-11-25T13:54:31.527Z", (date(2020, 11, 25), "day")),
        ("2010-02-30", None),
        ("18/01/2010", None),
    ],
)
def test_fhir_date_precision(value, expected):
    assert fhir_date(value) == expected


def test_gp2gp_date_falls_back_from_null_center_to_availability_then_to_the_composition(tmp_path):
    body = """
    <component><ObservationStatement><id root="O1"/>
      <code code="G30..00" codeSystem="2.16.840.1.113883.2.1.6.2" displayName="Heart attack"/>
      <effectiveTime><center nullFlavor="NI"/></effectiveTime><availabilityTime value="20091102"/>
    </ObservationStatement></component>
    <component><ObservationStatement><id root="O2"/>
      <code code="G30..00" codeSystem="2.16.840.1.113883.2.1.6.2" displayName="Heart attack"/>
      <effectiveTime><center value="200911"/></effectiveTime><availabilityTime value="20091102"/>
    </ObservationStatement></component>
    <component><ObservationStatement><id root="O3"/>
      <code code="G30..00" codeSystem="2.16.840.1.113883.2.1.6.2" displayName="Heart attack"/>
      <effectiveTime><center nullFlavor="UNK"/></effectiveTime><availabilityTime nullFlavor="UNK"/>
      <value xsi:type="IVL_PQ"><low value="0.100"/><high value="2"/></value>
    </ObservationStatement></component>"""
    record = read_record(write(tmp_path, "x.xml", extract(body)))
    by = {e.source_ref: e for e in record.events}
    assert (by["O1"].date, by["O1"].precision) == (date(2009, 11, 2), "day")
    assert (by["O2"].date, by["O2"].precision) == (date(2009, 11, 1), "month")
    # no date of its own: the composition's availabilityTime, never the reference range's low/high
    assert (by["O3"].date, by["O3"].precision) == (date(2010, 3, 23), "day")


def test_bare_ehr_extract_without_namespace_is_read(tmp_path):
    text = """<EhrExtract><recordTarget><patient><id root="2.16.840.1.113883.2.1.4.1" extension="9434765919"/></patient></recordTarget>
      <component><ehrFolder><component><ehrComposition><id root="C1"/><availabilityTime value="201812"/>
        <component><PlanStatement><id root="P1"/><code code="390906007" codeSystem="2.16.840.1.113883.2.1.3.2.4.15"
          displayName="Follow-up encounter"/></PlanStatement></component>
      </ehrComposition></component></ehrFolder></component></EhrExtract>"""
    record = read_record(write(tmp_path, "bare.xml", text))
    assert record.format == "gp2gp-ehr-extract" and record.nhs_number == "9434765919"
    plan = next(e for e in record.events if e.type == "plan")
    assert (plan.code, plan.date, plan.precision) == ("390906007", date(2018, 12, 1), "month")


def test_events_refuse_unknown_types_and_flags():
    with pytest.raises(ValueError):
        CodedEvent(None, None, "", "", "x", "diagnosis")
    with pytest.raises(ValueError):
        CodedEvent(None, None, "", "", "x", "other", ("omit",))
    with pytest.raises(ValueError):
        CodedEvent(date(2009, 1, 1), None, "", "", "x", "other")


# -- code systems ---------------------------------------------------------------------------


def test_code_systems_are_canonical_uris():
    assert from_oid("2.16.840.1.113883.2.1.3.2.4.15") == SNOMED
    assert from_oid("2.16.840.1.113883.2.1.6.2") == READ_V2
    assert from_oid("2.16.840.1.113883.2.1.3.2.4.14") == CTV3
    assert from_oid("2.16.840.1.113883.2.1.6.3") == "urn:oid:2.16.840.1.113883.2.1.6.3"
    assert from_fhir("https://fhir.hl7.org.uk/Id/emis-drug-codes") == "urn:oid:2.16.840.1.113883.2.1.6.9"
    assert from_fhir("https://fhir.hl7.org.uk/Id/egton-codes") == "urn:oid:2.16.840.1.113883.2.1.6.3"
    assert from_fhir("urn:oid:2.16.840.1.113883.2.1.3.2.4.15") == SNOMED
    assert from_fhir(" http://snomed.info/sct ") == SNOMED


def test_snomed_is_preferred_and_the_senders_code_kept_as_translation(tmp_path):
    body = """<component><ObservationStatement><id root="O1"/>
      <code code="14L.." codeSystem="2.16.840.1.113883.2.1.3.2.4.14" displayName="H/O: drug allergy">
        <translation code="416098002" codeSystem="2.16.840.1.113883.2.1.3.2.4.15" displayName="Allergy to drug"/>
        <translation code="14L..00" codeSystem="2.16.840.1.113883.2.1.6.2" displayName="H/O: drug allergy"/>
      </code><availabilityTime value="20230918"/>
      <value xsi:type="CD" code="00254001" codeSystem="2.16.840.1.113883.2.1.6.4" displayName="Azelaic acid 20% cream"/>
    </ObservationStatement></component>"""
    (event,) = [e for e in read_record(write(tmp_path, "x.xml", extract(body))).events if e.type != "encounter"]
    assert (event.system, event.code, event.type) == (SNOMED, "416098002", "allergy")
    assert "translation_only" in event.flags
    assert Coding(CTV3, "14L..", "H/O: drug allergy") in event.translations
    assert Coding(READ_V2, "14L..00", "H/O: drug allergy") in event.translations
    assert Coding("urn:oid:2.16.840.1.113883.2.1.6.4", "00254001", "Azelaic acid 20% cream") in event.translations
    assert "Azelaic acid" in event.text


@needs_reference
def test_fhir_codes_are_stripped_and_systems_normalised():
    record = read_record(REFERENCE / "gpconnect-stu3/spec-examples/uncategorised_response1.json")
    assert any(e.code == "86290005" and e.system == SNOMED for e in record.events)  # was " 86290005"


@needs_reference
def test_immunisation_code_comes_from_the_vaccination_procedure_extension():
    record = read_record(REFERENCE / "fhir-translations/nia-pss-e2e/PWTP6-output.json")
    jabs = [e for e in record.events if e.type == "immunisation"]
    assert len(jabs) == 8 and all(e.code and "uncoded" not in e.flags for e in jabs)
    assert any(c.system == READ_V2 and c.code == "65a0.00" for e in jabs for c in e.translations)


@needs_reference
def test_null_flavour_vaccine_code_is_replaced_by_the_procedure_code():
    record = read_record(REFERENCE / "gpconnect-stu3/spec-examples/immunizations_response2.json")
    assert [(e.code, e.flags) for e in record.events] == [("170378007", ()), ("6041000175108", ("not_given",))]


# -- degraded and absent attachments --------------------------------------------------------


@needs_reference
def test_degraded_codes_are_flagged_with_the_real_meaning_in_text():
    record = read_record(REFERENCE / "gpconnect-to-gp2gp-pairs/TC7/9465701483_Dougill_full_20210602.xml")
    degraded = [e for e in record.events if "degraded" in e.flags]
    assert len(degraded) == 6
    assert {e.code for e in degraded} == {"196411000000103"}
    assert {"BOTH", "LEFT"} <= {e.text for e in degraded}
    r4 = read_record(REFERENCE / "fhir-r4/scr-gp-summary/additional_information_gp_summary_1.json")
    assert [e.type for e in r4.events if "degraded" in e.flags] == ["procedure"] * 3
    allergies = read_record(REFERENCE / "gpconnect-stu3/spec-examples/allergies_response1.json")
    assert [e.code for e in allergies.events if "degraded" in e.flags] == ["196461000000101"]


@needs_reference
@pytest.mark.parametrize(
    ("rel", "absent", "documents"),
    [
        ("gpconnect-to-gp2gp-pairs/TC7/9465700193_Birdi_full_20210602.xml", 9, 33),
        ("gpconnect-to-gp2gp-pairs/TC7/9465701262_Meyers_full_20210602.xml", 7, 20),
        ("gp2gp-ehr-extract/nia-pss-misc/RCMR_IN030000UK06_payload_part.xml", 1, 4),
        # GP Connect: two letters over the 5 MB limit were sent without a URL
        ("gpconnect-to-gp2gp-pairs/TC7/9465700193_Birdi_full_20210602.json", 2, 33),
    ],
)
def test_absent_attachment_placeholders_are_flagged(rel, absent, documents):
    record = read_record(REFERENCE / rel)
    assert sum("absent_attachment" in e.flags for e in record.events) == absent
    assert sum("attachment" in e.flags for e in record.events) == documents


# -- NHS numbers ----------------------------------------------------------------------------


def test_gp2gp_nhs_number_from_the_record_target(tmp_path):
    record = read_record(write(tmp_path, "x.xml", extract("")))
    assert record.nhs_number == "9434765919" and record.warnings == ()


def test_test_numbers_failing_modulus_11_are_kept_and_reported(tmp_path):
    record = read_record(write(tmp_path, "x.xml", extract("", '<id root="2.16.840.1.113883.2.1.4.1" extension="1234567890"/>')))
    assert record.nhs_number == "1234567890"
    assert any("Modulus 11" in w for w in record.warnings)


def test_a_local_patient_id_is_not_an_nhs_number(tmp_path):
    record = read_record(write(tmp_path, "x.xml", extract("", '<id root="2.16.840.1.113883.2.1.3.2.4.9" extension="Test Harness"/>')))
    assert record.nhs_number is None
    assert any("Test Harness" in w for w in record.warnings)


@needs_reference
@pytest.mark.parametrize(
    ("rel", "nhs"),
    [
        ("gp2gp-ehr-extract/nia-pss-misc/LARGE_MSG_payload.xml", "9446363101"),
        ("fhir-r4/scr-gp-summary/standard_gp_summary.json", "9995000180"),
        ("gpconnect-stu3/spec-examples/pathology_response1.json", "9432003812"),
        ("gp2gp-ehr-extract/nia-pss-e2e/PWTP2.xml", None),
        ("gp2gp-ehr-extract/nia-pss-misc/RCMR_IN030000UK06_payload_part.xml", None),  # "{{nhsNumber}}"
    ],
)
def test_nhs_numbers_of_the_fixtures(rel, nhs):
    assert read_record(REFERENCE / rel).nhs_number == nhs


def test_fhir_bundle_with_two_patients_is_refused(tmp_path):
    patient = lambda n: {"resource": {"resourceType": "Patient", "id": n, "meta": {"profile": ["https://fhir.nhs.uk/STU3/StructureDefinition/CareConnect-GPC-Patient-1"]},  # noqa: E731
                                     "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": n}]}}
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [patient("9434765919"), patient("9446363101")]}
    with pytest.raises(RecordError) as info:
        read_record(write(tmp_path, "b.json", json.dumps(bundle)))
    assert info.value.code == "nhs_mismatch"


# -- CSV ------------------------------------------------------------------------------------


def test_csv_round_trip(tmp_path):
    events = (
        CodedEvent(date(2009, 3, 15), "day", SNOMED, "22298006", "Myocardial infarction", "problem", ("inactive",), source_ref="a"),
        CodedEvent(date(2009, 3, 1), "month", READ_V2, "G30..00", "Heart attack", "observation", source_ref="b", text="seen, with a comma"),
        CodedEvent(date(2009, 1, 1), "year", "urn:oid:2.16.840.1.113883.2.1.6.3", "EMISQDO6", "Local code", "other", source_ref="c"),
        CodedEvent(None, None, "", "", "Letter from cardiology", "narrative", ("uncoded",), source_ref="d", text="Letter from cardiology"),
    )
    record = CodedRecord("csv", "9434765919", events)
    path = tmp_path / "r.csv"
    plain_csv.write(record, path)
    assert detect(path).name == "csv"
    again = read_record(path)
    assert again.events == events and again.nhs_number == "9434765919"


def test_plain_five_column_csv(tmp_path):
    path = write(tmp_path, "r.csv", "\ufeffdate,system,code,display,type\n2018-12,SNOMED,22298006,Myocardial infarction,problem\n"
                 ",,,Letter seen,narrative\n2004,http://read.info/readv2,G30..00,Heart attack,Observation\n")
    record = read_record(path)
    assert [(e.date, e.precision, e.system, e.type) for e in record.events] == [
        (date(2018, 12, 1), "month", SNOMED, "problem"), (None, None, "", "narrative"), (date(2004, 1, 1), "year", READ_V2, "observation"),
    ]
    assert record.nhs_number is None


@pytest.mark.parametrize(
    ("row", "where"),
    [("15/03/2009,SNOMED,1,x,problem", "line 3, column date"), ("2009-02-30,SNOMED,1,x,problem", "line 3, column date"),
     ("2009,SNOMED,1,x,diagnosis", "line 3, column type"), ("2009,SNOMED,,x,problem", "line 3, column code")],
)
def test_bad_csv_rows_are_refused_naming_line_and_column(tmp_path, row, where):
    path = write(tmp_path, "r.csv", f"date,system,code,display,type\n2009,SNOMED,1,ok,problem\n{row}\n")
    with pytest.raises(RecordError) as info:
        read_record(path)
    assert info.value.code == "malformed_csv" and where in str(info.value) and info.value.line == 3


# -- hostile and malformed input ------------------------------------------------------------

LAUGHS = "".join(f'<!ENTITY lol{i} "{"&lol%d;" % (i - 1) * 10}">' for i in range(1, 10))
BILLION_LAUGHS = f"""<?xml version="1.0"?>
<!DOCTYPE RCMR_IN030000UK06 [<!ENTITY lol0 "lol">{LAUGHS}]>
<RCMR_IN030000UK06 xmlns="urn:hl7-org:v3">&lol9;</RCMR_IN030000UK06>"""
EXTERNAL = """<?xml version="1.0"?>
<!DOCTYPE EhrExtract [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<EhrExtract xmlns="urn:hl7-org:v3"><recordTarget><patient><id extension="&xxe;"/></patient></recordTarget></EhrExtract>"""
LONG_DTD = '<?xml version="1.0"?>\n<!DOCTYPE x [' + '<!ENTITY a "b">' * 1000 + "]><RCMR_IN030000UK06/>"


@pytest.mark.parametrize("text", [BILLION_LAUGHS, EXTERNAL, LONG_DTD], ids=["billion-laughs", "external-entity", "dtd-beyond-head"])
def test_hostile_xml_is_refused(tmp_path, text):
    with pytest.raises(RecordError) as info:
        read_record(write(tmp_path, "evil.xml", text))
    assert info.value.code == "hostile_xml"


def test_hostile_utf16_xml_is_refused(tmp_path):
    with pytest.raises(RecordError) as info:
        read_record(write(tmp_path, "evil.xml", EXTERNAL.replace('version="1.0"', 'version="1.0" encoding="UTF-16"').encode("utf-16")))
    assert info.value.code == "hostile_xml"


def test_malformed_xml_names_the_line(tmp_path):
    text = extract("<component><ObservationStatement><id root='O1'/>\n<code code='x'>\n</ObservationStatement></component>")
    line = text.splitlines().index("</ObservationStatement></component>") + 1
    with pytest.raises(RecordError) as info:
        read_record(write(tmp_path, "bad.xml", text))
    assert info.value.code == "malformed_xml" and info.value.line == line
    assert f"line {line}" in str(info.value) and "bad.xml" in str(info.value)


def test_malformed_json_names_the_line(tmp_path):
    text = '{\n  "resourceType": "Bundle",\n  "meta": {"profile": ["https://fhir.nhs.uk/STU3/StructureDefinition/GPConnect-StructuredRecord-Bundle-1"]},\n  "entry": [\n    {"resource": {"resourceType": "Observation",}}\n  ]\n}\n'
    with pytest.raises(RecordError) as info:
        read_record(write(tmp_path, "bad.json", text))
    assert info.value.code == "malformed_json" and info.value.line == 5 and "line 5" in str(info.value)


def test_unknown_format_lists_the_formats_tried(tmp_path):
    with pytest.raises(UnknownRecordFormat) as info:
        read_record(write(tmp_path, "notes.txt", "Seen today. BP 120/80.\n"))
    assert info.value.tried == ("gp2gp-ehr-extract", "fhir-stu3", "fhir-r4", "csv")
    for name in info.value.tried:
        assert name in str(info.value)


def test_empty_file_is_refused(tmp_path):
    with pytest.raises(RecordError) as info:
        read_record(write(tmp_path, "empty.xml", "\ufeff \n"))
    assert info.value.code == "empty"


def test_fhir_without_version_markers_is_a_tie_not_a_guess(tmp_path):
    path = write(tmp_path, "b.json", '{"resourceType": "Bundle", "type": "collection", "entry": []}')
    with pytest.raises(RecordError) as info:
        detect(path)
    assert info.value.code == "ambiguous_format"
    assert "fhir-stu3" in str(info.value) and "fhir-r4" in str(info.value)


@needs_reference
def test_stu3_and_r4_versions_of_one_allergy_are_told_apart():
    stu3 = read_record(REFERENCE / "fhir-r4/stu3-to-r4-allergy/careconnect-stu3_AllergyIntolerance_000.json")
    r4 = read_record(REFERENCE / "fhir-r4/stu3-to-r4-allergy/ukcore-r4_AllergyIntolerance_000.json")
    assert (stu3.format, r4.format) == ("fhir-stu3", "fhir-r4")
    # same clinical content either way: year-only onset, ended allergy
    assert [(e.code, e.date, e.precision, e.flags) for e in stu3.events] == [(e.code, e.date, e.precision, e.flags) for e in r4.events]
    assert stu3.events[0].precision == "year" and "inactive" in stu3.events[0].flags


@needs_reference
def test_an_allergys_recorded_reaction_is_read_with_it():
    """GP Connect's reaction.manifestation (coded Vomiting, described as Emesis) travels with the allergy."""
    record = read_record(REFERENCE / "gpconnect-stu3/spec-examples/allergies_response1.json")
    reactions = [e.text for e in record.events if e.type == "allergy" and "reaction:" in e.text]
    assert reactions and any("reaction: Vomiting" in t and "reaction: Emesis" in t for t in reactions)
