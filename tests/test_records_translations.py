"""GP2GP extracts read against their FHIR translations: same entries, same dates, differences explained.

The PS adaptor keeps HL7 statement ids as FHIR resource ids (a MedicationStatement gets the
authorisation's id plus "-MS"), so the two readings can be compared entry by entry, not only counted.
"""

from __future__ import annotations

from tests.conftest import reference_data_dir

from collections import Counter
from pathlib import Path

import pytest

from pipelines.records import read_record

REFERENCE = reference_data_dir()
pytestmark = pytest.mark.skipif(not REFERENCE.is_dir(), reason=f"reference data not found at {REFERENCE}")

PWTP = ["PWTP2", "PWTP3", "PWTP4", "PWTP5", "PWTP6", "PWTP7_vis", "PWTP9", "PWTP10", "PWTP11"]
GENERATED = "00000000-0000-0000-0000-"  # ids the PS adaptor makes up for resources with no HL7 statement

# GP2GP entries with no FHIR resource of their own, by type (and flag), and why.
ONLY_IN_EXTRACT = {
    # ehrSupplyDiscontinue: the adaptor only marks the course stopped; we keep the stop as an event
    "PWTP4": {"medication/discontinued": 11},
    # a LinkSet ("Unspecified problem") naming a RequestStatement; the adaptor makes no Condition of it
    "PWTP7_vis": {"problem": 1},
    # pathology: 54 comment NarrativeStatements become notes on reports/results; of 96 CLUSTER/BATTERY
    # groups, 22 become Specimen resources and 37 are folded into their report or result
    "PWTP9": {"narrative": 54, "observation/group": 59},
}
# Resources the adaptor generated (GENERATED ids), by type: plans/statements for issues it regrouped,
# and free-text Observations it split off.
GENERATED_IN_TRANSLATION = {"PWTP2": {"medication": 1}, "PWTP4": {"medication": 4}, "PWTP9": {"narrative": 4}}
# Same entry, different type: the adaptor turned a "Referral to G.P." RequestStatement into an Observation.
TYPE_CHANGED = {"PWTP7_vis": {("referral", "observation"): 1}}


def _key(e) -> str:
    marks = [f for f in e.flags if f in ("group", "discontinued")]
    return e.type + ("/" + ",".join(marks) if marks else "")


def _readings(name: str):
    extract = read_record(REFERENCE / f"gp2gp-ehr-extract/nia-pss-e2e/{name}.xml")
    translation = read_record(REFERENCE / f"fhir-translations/nia-pss-e2e/{name}-output.json")
    assert (extract.format, translation.format) == ("gp2gp-ehr-extract", "fhir-stu3")
    by_id = {e.source_ref: e for e in extract.events}
    fhir = {e.source_ref.split("/", 1)[1].removesuffix("-MS"): e for e in translation.events}
    return extract, translation, by_id, fhir


@pytest.mark.parametrize("name", PWTP)
def test_entries_match_the_translation_one_to_one(name):
    _, _, by_id, fhir = _readings(name)
    generated = {i for i in fhir if i.startswith(GENERATED)}
    assert set(fhir) - generated <= set(by_id), "every translated resource comes from an extract entry"
    assert dict(Counter(_key(fhir[i]) for i in generated)) == GENERATED_IN_TRANSLATION.get(name, {})
    only = Counter(_key(e) for i, e in by_id.items() if i not in fhir)
    assert dict(only) == ONLY_IN_EXTRACT.get(name, {})
    changed = Counter((by_id[i].type, fhir[i].type) for i in fhir if i in by_id and by_id[i].type != fhir[i].type)
    assert dict(changed) == TYPE_CHANGED.get(name, {})


@pytest.mark.parametrize("name", PWTP)
def test_dates_and_precision_agree_with_the_translation(name):
    # The adaptor applies the same fallback (center, low, availabilityTime, enclosing statement)
    # and keeps the precision; a disagreement here would mean a wrong date rule.
    _, _, by_id, fhir = _readings(name)
    shared = [i for i in fhir if i in by_id]
    assert shared
    differ = [(i, by_id[i].date, by_id[i].precision, fhir[i].date, fhir[i].precision) for i in shared
              if (by_id[i].date, by_id[i].precision) != (fhir[i].date, fhir[i].precision)]
    assert differ == []


@pytest.mark.parametrize("name", PWTP)
def test_counts_per_resource_type(name):
    extract, translation, _, _ = _readings(name)
    g = Counter(_key(e) for e in extract.events)
    f = Counter(e.source_ref.split("/")[0] for e in translation.events)
    generated = GENERATED_IN_TRANSLATION.get(name, {})
    only = ONLY_IN_EXTRACT.get(name, {})
    # Condition resources = LinkSet problem headers that name a problem entry.
    assert f["Condition"] == g["problem"] - only.get("problem", 0)
    # MedicationStatement = authorised courses; MedicationRequest(order) = issues.
    assert f["MedicationStatement"] == sum(1 for e in extract.events if "authorisation" in e.flags) + generated.get("medication", 0)
    issues = sum(1 for e in translation.events if e.source_ref.startswith("MedicationRequest/") and "issue" in e.flags)
    assert issues == sum(1 for e in extract.events if "issue" in e.flags)
    # Observation + Immunization + AllergyIntolerance = ObservationStatements, NarrativeStatements
    # (bar attachments, which become DocumentReferences) and BATTERY/CLUSTER groups.
    observed = sum(n for k, n in g.items() if k.split("/")[0] in ("observation", "immunisation", "allergy", "narrative"))
    observed -= sum(1 for e in extract.events if "attachment" in e.flags)
    fhir_observed = f["Observation"] + f["Immunization"] + f["AllergyIntolerance"] + f["DiagnosticReport"]
    explained = (
        sum(n for k, n in only.items() if k.split("/")[0] in ("observation", "narrative"))
        - generated.get("narrative", 0)
        - sum(n for (a, b), n in TYPE_CHANGED.get(name, {}).items() if b == "observation")
    )
    assert fhir_observed == observed - explained
    # Batteries and pathology clusters on one side, test groups and reports on the other.
    groups = sum(1 for e in translation.events if "group" in e.flags)
    assert groups == g["observation/group"] - only.get("observation/group", 0)
    assert f["DocumentReference"] == sum(1 for e in extract.events if "attachment" in e.flags)
    assert f["Encounter"] == g["encounter"]
    assert f["Immunization"] == g["immunisation"]
    assert f["AllergyIntolerance"] == g["allergy"]


TC7 = ["9465698679_Gainsford", "9465700193_Birdi", "9465701262_Meyers", "9465701483_Dougill", "9465701718_Guerra"]


@pytest.mark.parametrize("name", TC7)
def test_gp_connect_and_its_gp2gp_translation_agree(name):
    """GP Connect STU3 (EMIS) against the GP2GP adaptor's HL7 for the same patient (new ids, so counts only)."""
    source = read_record(REFERENCE / f"gpconnect-to-gp2gp-pairs/TC7/{name}_full_20210602.json")
    target = read_record(REFERENCE / f"gpconnect-to-gp2gp-pairs/TC7/{name}_full_20210602.xml")
    a, b = Counter(e.type for e in source.events), Counter(e.type for e in target.events)
    for kind in ("problem", "allergy", "medication", "immunisation", "plan", "referral"):
        assert a[kind] == b[kind], kind
    flags_a = Counter(f for e in source.events for f in e.flags)
    flags_b = Counter(f for e in target.events for f in e.flags)
    assert flags_a["inactive"] == flags_b["inactive"]
    assert flags_a["attachment"] == flags_b["attachment"]
    # The adaptor also turns documents it could not fetch into absent-attachment placeholders.
    assert flags_a["absent_attachment"] <= flags_b["absent_attachment"]
    # Both sides use the test number the adaptor writes (README: it replaces the NHS number).
    assert source.nhs_number == target.nhs_number == "1234567890"
