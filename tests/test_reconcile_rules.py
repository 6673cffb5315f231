"""Reconciliation's matching and page rules on hand-written entries and coded events (pure, fast).

Each test names the clinical-safety control it shows (docs/hazard-log.md).
"""

from __future__ import annotations

import datetime as dt

import pytest

from pipelines.clinical import default_reader
from pipelines.clinical.evidence import CodedIndex, PaperEntry, assess
from pipelines.reconcile.decide import PaperPage, decide_page, decide_record
from pipelines.reconcile.settings import Settings
from pipelines.records.model import CodedEvent

D = dt.date
SETTINGS = Settings()


def event(day, display, type_="problem", precision="day", flags=(), text=""):
    return CodedEvent(day, precision if day else None, "http://snomed.info/sct", "1", display, type_, tuple(flags),
                      text=text)


def entry(text, day=D(1990, 3, 14), confidence=90.0, precision="day"):
    return PaperEntry(day, precision, text, confidence)


def status(text, events, factless_ok=False, **kw):
    reader = default_reader()
    return assess(entry(text, **kw), reader, CodedIndex(tuple(events), reader),
                  min_confidence=SETTINGS.entry_min_confidence, factless_ok=factless_ok)


def test_an_entry_whose_every_fact_is_coded_that_day_is_covered():
    found = status("HTN r/v. BP 160/90. atenolol 50mg od cont", [
        event(D(1990, 3, 14), "Essential hypertension"),
        event(D(1990, 3, 14), "O/E - blood pressure reading", "observation", text="value: 160/90 mmHg"),
        event(D(1990, 3, 14), "Atenolol 50mg tablets", "medication")])
    assert found.status == "covered"
    assert {e.fact for e in found.evidence} == {"hypertension", "blood pressure", "atenolol"}
    assert all(e.date_match == "day" for e in found.evidence)


def test_one_uncoded_fact_makes_the_entry_paper_only():  # H15: several facts, every one needed
    found = status("HTN r/v. BP 160/90. atenolol 50mg od cont", [
        event(D(1990, 3, 14), "Essential hypertension"),
        event(D(1990, 3, 14), "O/E - blood pressure reading", "observation", text="value: 160/90 mmHg")])
    assert found.status == "paper-only" and found.uncovered == ("atenolol",)


def test_a_reading_is_covered_only_by_the_same_value():  # H36
    coded = [event(D(1990, 3, 14), "Essential hypertension")]
    for text in ("", "value: 150/90 mmHg"):
        found = status("HTN r/v. BP 160/90", [*coded, event(D(1990, 3, 14), "Blood pressure", "observation", text=text)])
        assert found.status == "paper-only" and found.uncovered == ("blood pressure",)


@pytest.mark.parametrize("coded, precision, how", [
    (D(1990, 3, 1), "month", "month"),
    (D(1990, 1, 1), "year", "year"),
    (D(1990, 1, 1), "day", "year (1 January)"),
])
def test_month_and_year_dates_cover_any_day_inside_them_and_say_so(coded, precision, how):
    found = status("Dx Asthma", [event(coded, "Asthma", precision=precision)])
    assert found.status == "covered" and found.evidence[0].date_match == how


@pytest.mark.parametrize("coded, precision", [
    (D(1991, 3, 14), "day"),  # same concept, another year
    (D(1990, 4, 1), "month"),  # another month
    (D(1990, 3, 15), "day"),  # the next day
    (D(1989, 1, 1), "year"),
])
def test_the_same_concept_at_another_date_is_not_coverage(coded, precision):
    assert status("Dx Asthma", [event(coded, "Asthma", precision=precision)]).status == "paper-only"


def test_another_concept_on_the_same_day_is_not_coverage():
    assert status("Dx Asthma", [event(D(1990, 3, 14), "Eczema")]).status == "paper-only"


@pytest.mark.parametrize("flag", ["degraded", "absent_attachment"])
def test_degraded_codes_and_absent_attachments_never_cover(flag):  # H9
    found = status("Dx Asthma", [event(D(1990, 3, 14), "Asthma", flags=(flag,))])
    assert found.status == "paper-only"


def test_an_allergy_is_covered_only_by_a_coded_allergy():  # H16
    on_paper = "Allergic to penicillin - rash"
    assert status(on_paper, [event(D(1990, 3, 14), "Phenoxymethylpenicillin 250mg tablets", "medication"),
                             event(D(1990, 3, 14), "Penicillin", "medication")]).status == "paper-only"
    # The reaction is a fact of its own: covered only where the coded allergy also says it (H16).
    assert status(on_paper, [event(D(1990, 3, 14), "Penicillin allergy", "allergy")]).status == "paper-only"
    assert status(on_paper, [event(D(1990, 3, 14), "Allergy to penicillin", "allergy",
                                   text="reaction: rash")]).status == "covered"


def test_a_coded_allergy_does_not_cover_a_prescription():
    assert status("Rx amoxicillin 250mg tds", [event(D(1990, 3, 14), "Amoxicillin allergy", "allergy")]).status == "paper-only"


def test_synonyms_shorthand_and_brand_names_bridge_paper_and_code():
    found = status("Ventolin prn", [event(D(1990, 3, 14), "Salbutamol 100micrograms/dose inhaler", "medication")])
    assert found.status == "covered" and found.evidence[0].how == "synonym"


def test_a_specific_code_covers_the_general_note_but_not_the_reverse():
    assert status("# R wrist", [event(D(1990, 3, 14), "Fracture of wrist")]).status == "covered"
    assert status("Fracture of wrist", [event(D(1990, 3, 14), "Fracture")]).status == "paper-only"


@pytest.mark.parametrize("kw, why", [
    ({"day": None}, "date"),
    ({"confidence": 35.0}, "confidence"),
])
def test_undated_or_poorly_read_entries_are_uncertain(kw, why):  # H3, H5
    found = status("Dx Asthma", [event(D(1990, 3, 14), "Asthma")], **kw)
    assert found.status == "uncertain" and why in found.why


def test_words_nobody_can_vouch_for_make_the_entry_uncertain():  # H17
    found = status("Dx Asthma. Sister has cystic brumblosis", [event(D(1990, 3, 14), "Asthma")])
    assert found.status == "uncertain" and "brumblosis" in found.why


def test_a_card_entry_with_no_recognised_fact_is_uncertain():
    assert status("Seen today", []).status == "uncertain"
    assert status("Seen today", [], factless_ok=True).status == "covered"  # a letter's sign-off


def test_examination_findings_are_read_like_any_other_words():  # H17: no clause is skipped
    found = status("C/O cough 3/7. O/E creps L base. LRTI. Rx amoxicillin 250mg tds", [
        event(D(1990, 3, 14), "Cough"), event(D(1990, 3, 14), "Lower respiratory tract infection"),
        event(D(1990, 3, 14), "Amoxicillin 250mg capsules", "medication")])
    assert found.status != "covered" and "crepitations" in found.uncovered
    found = status("C/O cough 2/52. O/E breast lump L 2cm hard. Rx amoxicillin 500mg tds", [
        event(D(1990, 3, 14), "Cough"), event(D(1990, 3, 14), "Amoxicillin 500mg capsules", "medication")])
    assert found.status == "paper-only" and "breast lump" in found.uncovered


def test_an_ocr_misreading_is_matched_only_through_confusion_classes_of_one_concept():  # H18
    found = status("Rx arnoxici11in 250mg tds", [event(D(1990, 3, 14), "Amoxicillin 250mg capsules", "medication")])
    assert found.status == "covered" and found.evidence[0].how.endswith("+ocr")
    # A dropped letter is a spelling, not a confusion: no generic edit distance.
    assert status("Rx amoxicilin 250mg tds", [event(D(1990, 3, 14), "Amoxicillin 250mg capsules",
                                                    "medication")]).status != "covered"


@pytest.mark.parametrize("paper, coded", [
    ("hypotension", "Hypertension"), ("Salactol", "Salbutamol 100micrograms inhaler"),
    ("escitalopram", "Citalopram 20mg tablets"), ("mastitis", "Urinary tract infection"),
    ("concussion", "Seizure"), ("prednisone", "Prednisolone 5mg tablets"), ("carbimazole", "Carbamazepine 200mg tablets"),
])
def test_a_near_miss_word_is_never_taken_for_a_coded_concept(paper, coded):  # H18
    kind = "medication" if "tablets" in coded or "inhaler" in coded else "problem"
    assert status(f"Dx {paper}", [event(D(1990, 3, 14), coded, kind)]).status != "covered"


def test_a_year_written_in_the_entry_matches_a_code_in_that_year():
    found = status("Tonsillectomy 1948", [event(D(1948, 1, 1), "Tonsillectomy", "procedure", "year")],
                   day=D(1955, 1, 1))
    assert found.status == "covered" and found.evidence[0].date_match == "year (paper)"


# -- page rules ----------------------------------------------------------------------------


def page(number=2, kind="card", entries=(), **kw):
    fields = dict(document_id=1, source="a.pdf", number=number, kind=kind, blank=False, duplicate_of=None,
                  unreadable=False, confidence=90.0, text=" ".join(e.text for e in entries), entries=tuple(entries))
    fields.update(kw)
    return PaperPage(**fields)


ASTHMA = [event(D(1990, 3, 14), "Asthma")]


def decide(p, events=ASTHMA):
    reader = default_reader()
    return decide_page(p, CodedIndex(tuple(events), reader), reader, SETTINGS)


def test_a_page_whose_entries_are_all_covered_is_omitted_with_evidence():
    d = decide(page(entries=[entry("Dx Asthma")]))
    assert d.decision == "omit" and d.findings[0].evidence[0].event.display == "Asthma"


@pytest.mark.parametrize("p, reason", [
    (page(kind="envelope", entries=[entry("Dx Asthma")]), "envelope"),
    (page(unreadable=True, entries=[entry("Dx Asthma")]), "could not be read"),
    (page(confidence=40.0, entries=[entry("Dx Asthma")]), "confidence"),
    (page(entries=[]), "no dated entries"),
    (page(entries=[entry("Dx Asthma"), entry("Dx Eczema")]), "paper-only"),
    (page(entries=[entry("Dx Asthma")], text="Dx Asthma Mother died of porphyria"), "outside any dated entry"),
])
def test_pages_without_positive_evidence_are_included(p, reason):  # H1-H5
    d = decide(p)
    assert d.decision == "include" and reason in d.reason


def test_blank_pages_are_omitted():
    assert decide(page(kind="blank", blank=True)).decision == "omit"


def test_a_rescan_is_omitted_only_when_its_original_is_sent():
    reader = default_reader()
    index = CodedIndex(tuple(ASTHMA), reader)
    sent = [page(1, entries=[entry("Dx Eczema")]), page(2, duplicate_of=1, entries=[entry("Dx Eczema")])]
    assert [d.decision for d in decide_record(sent, index, reader, SETTINGS)] == ["include", "omit"]
    # Original omitted: the rescan is judged on its own reading (here a worse one) and sent.
    omitted = [page(1, entries=[entry("Dx Asthma")]), page(2, duplicate_of=1, entries=[entry("Dx Asthrna", confidence=30)])]
    assert [d.decision for d in decide_record(omitted, index, reader, SETTINGS)] == ["omit", "include"]


@pytest.mark.parametrize("display", ["Family history of asthma", "FH: asthma", "Asthma screening",
                                     "No history of asthma", "Suspected asthma"])
def test_coded_terms_about_someone_else_or_uncertain_never_cover(display):  # H25
    assert status("Dx Asthma", [event(D(1990, 3, 14), display)]).status == "paper-only"


def test_a_formal_coded_term_bridges_to_paper_shorthand():
    found = status("MMR given", [event(D(1990, 3, 14), "Measles, mumps and rubella vaccination", "immunisation")])
    assert found.status == "covered"


def test_an_allergy_in_a_letter_does_not_hide_the_letters_other_facts():  # H16
    letter = ("He was admitted under my care and underwent vasectomy under general anaesthetic. Please note that "
              "he is allergic to sulphonamides, which causes urticaria.")
    allergy_only = [event(D(1990, 3, 14), "Sulphonamide allergy", "allergy")]
    found = status(letter, allergy_only)
    assert found.status == "paper-only" and "vasectomy" in found.uncovered


def test_a_drug_prescribed_beside_an_allergy_is_still_a_prescription():
    found = status("Rx amoxicillin 250mg tds. Allergic to penicillin - rash", [
        event(D(1990, 3, 14), "Penicillin allergy", "allergy"), event(D(1990, 3, 14), "Amoxicillin allergy", "allergy")])
    assert found.status == "paper-only" and "amoxicillin" in found.uncovered


def test_a_page_flagged_as_a_rescan_that_reads_differently_is_judged_on_its_own():  # H6, H15
    """Two letters on one hospital's template can look alike to the image hash."""
    reader = default_reader()
    index = CodedIndex(tuple(ASTHMA), reader)
    first = page(1, kind="letter", entries=[entry("I saw him in clinic. Diagnosis of eczema.", D(1998, 9, 29))])
    second = page(2, kind="letter", duplicate_of=1,
                  entries=[entry("I saw him in clinic. Diagnosis of depression.", D(2001, 2, 9))])
    decisions = decide_record([first, second], index, reader, SETTINGS)
    assert [d.decision for d in decisions] == ["include", "include"]
    assert "rescan" not in decisions[1].reason


def test_a_qualifier_is_vouched_for_only_by_the_coded_term_that_says_it():  # H17
    found = status("C/O itchy rash 3/7", [event(D(1990, 3, 14), "Itchy rash")])
    assert found.status == "covered"
    assert status("C/O itchy rash 3/7", [event(D(1990, 3, 14), "Rash")]).status != "covered"


@pytest.mark.parametrize("text", ["No chest pain", "Denies chest pain", "?chest pain", "? chest pain", "(?) chest pain", "Query chest pain",
                                  "FH chest pain", "Chest pain - nil", "Possible chest pain"])
def test_a_negated_doubtful_or_family_fact_is_never_covered(text):  # H38
    assert status(text, [event(D(1990, 3, 14), "Chest pain")]).status != "covered"


@pytest.mark.parametrize("text", ["Asthma r/v. PEFR 400. Ventolin prn. 2WW ref", "Asthma. Admitted.",
                                  "Asthma. Discharged.", "Asthma. Wound.", "Asthma. Symptoms.", "Asthma. Operation.",
                                  "Asthma. Hospital.", "Asthma - not"])
def test_loaded_words_and_unbound_numbers_are_never_passed_over(text):  # H35, H36
    coded = [event(D(1990, 3, 14), "Asthma"), event(D(1990, 3, 14), "Peak flow", "observation", text="value: 400"),
             event(D(1990, 3, 14), "Salbutamol 100micrograms inhaler", "medication")]
    assert status(text, coded).status != "covered"


def test_a_fact_takes_a_date_written_in_its_sentence():  # H19
    letter = "On 6.4.15 he had asthma."
    coded = [event(D(2015, 4, 6), "Asthma")]
    assert status(letter, coded, day=D(2015, 5, 20)).status == "covered"
    assert status("He had asthma.", coded, day=D(2015, 5, 20)).status == "paper-only"


def snomed(day, code, display, type_="problem"):
    return CodedEvent(day, "day", "http://snomed.info/sct", code, display, type_)


def test_a_coded_event_is_recognised_by_its_code_first():  # H41
    found = status("UTI", [snomed(D(1990, 3, 14), "68566005", "Urinary tract infectious disease")])
    assert found.status == "covered" and found.evidence[0].how == "code"
    allergy = status("Allergic to penicillin", [snomed(D(1990, 3, 14), "91936005", "Allergy to penicillin", "allergy")])
    assert allergy.status == "covered"


def test_a_code_whose_words_name_another_concept_covers_nothing():  # H41
    # The code says UTI, the words say asthma: one of them is wrong, so neither is trusted.
    assert status("Dx Asthma", [snomed(D(1990, 3, 14), "68566005", "Asthma")]).status == "paper-only"
    assert status("UTI", [snomed(D(1990, 3, 14), "68566005", "Asthma")]).status == "paper-only"


def test_a_product_that_is_free_of_something_still_covers_its_drug():
    found = status("Ventolin prn", [event(D(1990, 3, 14), "Salbutamol 100micrograms/dose inhaler CFC free", "medication")])
    assert found.status == "covered"
    assert status("Pain free", [event(D(1990, 3, 14), "Pain")]).status != "covered"  # on paper, "free" negates


def test_a_letters_facts_take_the_visit_date_written_before_them():  # H19
    letter = "I saw him in clinic on 6.4.15. He has asthma. In 1995 he had a fracture. He now has eczema."
    coded = [event(D(2015, 4, 6), "Asthma"), event(D(2015, 4, 6), "Eczema"), event(D(1995, 1, 1), "Fracture", precision="year")]
    reader = default_reader()
    found = assess(entry(letter, day=D(2015, 5, 20)), reader, CodedIndex(tuple(coded), reader), min_confidence=60,
                   letter=True, factless_ok=True)
    assert {e.fact: e.date_match for e in found.evidence} == {"asthma": "day", "eczema": "day", "fracture": "year (paper)"}
    # A card entry does not carry dates across sentences, and a year in passing dates only its own sentence.
    assert status("Seen 6.4.15. Asthma.", coded[:1], day=D(2015, 5, 20)).status == "paper-only"
    late = [event(D(1995, 1, 1), "Eczema", precision="year")]
    assert assess(entry("In 1995 he had a fracture. He has eczema.", day=D(2015, 5, 20)), reader,
                  CodedIndex(tuple(late), reader), min_confidence=60, letter=True).uncovered == ("fracture", "eczema")


def slip(*rows, day=D(2019, 5, 15)):
    entries = [entry(r, day=day) for r in rows]
    return page(kind="result", entries=entries)


HB = event(D(2019, 5, 14), "Haemoglobin concentration", "observation", text="value: 135 g/L")


def test_a_result_row_is_covered_only_by_the_same_analyte_and_value_within_a_week():  # H43
    assert decide(slip("Request: FBC", "Haemoglobin 135 H g/1 (130 - 170)"), [HB]).decision == "omit"
    assert decide(slip("Haemoglobin 85 g/L (130 - 170)"), [HB]).decision == "include"
    assert decide(slip("Haemoglobin 135 g/L (130 - 170)", day=D(2019, 6, 1)), [HB]).decision == "include"
    # A drug that shares the analyte's name never covers its row.
    folate = [event(D(2019, 5, 14), "Folic acid 5mg tablets", "medication")]
    assert decide(slip("Folic acid 5 ug/L (3 - 20)"), folate).decision == "include"


def test_a_panel_name_adds_nothing_only_beside_a_covered_row():  # H43
    assert decide(slip("Request: FBC, U&E"), [HB]).decision == "include"  # no row: the panel is all there is
    assert decide(slip("Request: FBC, U&E", "Haemoglobin"), [HB]).decision == "include"  # a row with no value
    assert decide(slip("Request: FBC", "Haemoglobin 135 g/L", "Sample haemolysed"), [HB]).decision == "include"


def test_a_recorded_reaction_covers_only_itself_and_never_puts_the_allergy_at_odds_with_its_code():  # H16
    reader = default_reader()
    pen = [c for c in reader.vocabulary.codes if c.system.endswith("sct") and "penicillin" in c.term.casefold()
           and "allerg" in c.term.casefold()][0]
    coded = CodedEvent(D(1990, 3, 14), "day", pen.system, pen.code, "Pen allergy (local term)", "allergy",
                       text="reaction: Vomiting")
    index = CodedIndex((coded,), reader)
    assert index.conflicting == 0  # the reaction is not what the event states
    vomiting = assess(entry("Allergic to penicillin - vomiting"), reader, index, min_confidence=60.0)
    rash = assess(entry("Allergic to penicillin - rash"), reader, index, min_confidence=60.0)
    assert vomiting.status == "covered" and rash.status == "paper-only"
    # The reaction does not make the allergy stand for a symptom of that day.
    assert assess(entry("D&V 2/7. Vomiting"), reader, index, min_confidence=60.0).status != "covered"
