"""What clinical reading may pass over: dictionaries by others, short reviewed lists (hazards H35-H37)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.clinical import default_reader
from pipelines.clinical.lexicon import Dictionaries, Lexicon, Lists, default_lexicon
from pipelines.clinical.reading import Reader, Role


@pytest.fixture(scope="module")
def reader() -> Reader:
    r = default_reader()
    assert r.lexicon.dictionaries.available, "install hunspell-en-gb and hunspell-en-med (scripts/setup.sh)"
    return r


def roles(reader: Reader, text: str, names: tuple[str, ...] = ()) -> dict[str, str]:
    reading = reader.read(text, names=names)
    return {t.raw.strip(".,;:"): r.value for t, r in zip(reading.tokens, reading.roles)}


def test_pass_over_lists_never_hold_a_loaded_word_or_a_cue():
    lists = Lists.load()
    passable = lists.shorthand | lists.titles | lists.services | lists.institutions | lists.address | \
        lists.function_words | lists.form_print
    assert not passable & lists.cues - {"no"}  # "NHS No." is card print; as a word "no" stays a cue
    assert not (lists.function_words | lists.shorthand | lists.titles) & lists.loaded


@pytest.mark.parametrize("word", ["admitted", "discharged", "operation", "wound", "hospital", "symptoms", "no",
                                  "not", "lump", "fall", "referred", "urgent", "denied", "tumour", "haemorrhage",
                                  "oedema", "mastitis", "hypotension", "escitalopram"])
def test_words_that_carry_a_fact_are_never_narrative(word):
    assert not default_lexicon().narrative(word)


# Everyday words with clinical meaning, in the inflections people write (H83). Each was narrative
# under rules version 4; the list is a probe, not the lexicon: add what real notes show.
EVERYDAY = ("shoulders ribs calves drooping slurring slurred stumbling clumsy woozy turns hopeless worthless "
            "forgetful muddled withdrawn unwell poorly frail exertion tiredness peeing dribbling oozing bitten "
            "kicked punched beaten strangled killed breastfeeding overdue worsened worsens progressing grown "
            "wine cannabis injecting unemployed passing").split()


@pytest.mark.parametrize("word", EVERYDAY)
def test_everyday_clinical_words_and_their_inflections_are_never_narrative(word):
    assert not default_lexicon().narrative(word)


@pytest.mark.parametrize(("word", "base"), [("shoulders", "shoulder"), ("drooping", "droop"), ("worsened", "worsen"),
                                            ("tiredness", "tired"), ("ankles", "ankle"), ("lumps", "lump"),
                                            ("swells", "swell"), ("hurting", "hurt")])
def test_an_inflection_of_a_loaded_word_is_loaded(word, base):
    lexicon = default_lexicon()
    assert base in lexicon.lists.loaded and lexicon.loaded(word)


def test_without_the_dictionaries_inflections_are_still_found(tmp_path: Path):
    bare = Lexicon(Lists.load(), Dictionaries(folders=(tmp_path,)))
    assert bare.loaded("shoulders") and bare.loaded("drooping") and bare.loaded("swells")


@pytest.mark.parametrize("text", ["Cannot tolerate metformin", "Unable to take aspirin", "Refuses flu vacc",
                                  "Girlfriend has eczema"])
def test_how_people_say_no_or_someone_else_is_a_cue(reader, text):
    reading = reader.read(text)
    assert reading.mentions and all(m.qualified for m in reading.mentions), text


def test_a_word_that_only_ends_like_a_cue_is_not_one():
    assert not default_lexicon().cue("notes")  # "not" + "es": the dictionary's stem is "note"


@pytest.mark.parametrize("word", ["apixaban", "rivaroxaban", "simvastatin", "lorazepam", "liraglutide"])
def test_a_drug_a_general_dictionary_knows_is_never_narrative(word):  # newer than the medical word list
    assert default_lexicon().dictionaries.english(word) and not default_lexicon().narrative(word)


@pytest.mark.parametrize("word", ["pleasant", "gentleman", "grateful", "kindly", "thank", "the", "with"])
def test_ordinary_english_is_narrative(word):
    assert default_lexicon().narrative(word)


def test_without_the_dictionaries_nothing_is_narrative(tmp_path: Path):
    bare = Lexicon(Lists.load(), Dictionaries(folders=(tmp_path,)))
    assert not bare.dictionaries.available and bare.dictionaries.fingerprint() == "absent"
    assert not any(bare.narrative(w) for w in ("pleasant", "gentleman", "grateful"))


def test_names_after_a_title_institutions_and_addresses_are_accounted_for(reader):
    found = roles(reader, "Dear Dr J. Okonkwo, Northtown General Hospital, 12 Mill Street, AB1 2CD. Tel 01632 960123")
    assert found["Okonkwo"] == found["J"] == "name"
    assert found["Northtown"] == found["General"] == found["Hospital"] == "institution"
    assert found["12"] == found["AB1"] == found["2CD"] == found["01632"] == "identifier"


def test_a_capitalised_word_that_is_not_a_name_is_not_passed_over(reader):
    found = roles(reader, "Started Salactol. Mr Smith")
    assert Role(found["Started"]) is Role.unbound and Role(found["Salactol"]) is Role.unknown
    assert found["Smith"] == "name"


def test_the_patients_own_names_are_accounted_for_only_as_names(reader):
    assert roles(reader, "Janet Wilson seen", names=("Janet", "Wilson"))["Wilson"] == "name"


def test_letterhead_identifiers_ages_and_qualifications_are_accounted_for(reader):
    found = roles(reader, "Our ref: WIL/997 NHS No: 999 123 4567. This 39 year old man. Mr K. D. Barker FRCS")
    assert {found[w] for w in ("ref", "WIL/997", "No", "39", "year", "old")} == {"identifier"}
    assert found["FRCS"] == "name"


def test_site_and_batch_go_with_a_vaccine_and_start_with_a_drug(reader):
    found = roles(reader, "DTP given L arm. Batch 2140. Start thyroxine 50mcg od")
    assert {found[w] for w in ("arm", "2140", "Start")} == {"value"} and found["given"] in ("value", "narrative")
    assert Role(roles(reader, "L arm. Batch 2140")["arm"]) is Role.loaded  # no vaccine named: the arm is a fact


def test_a_referral_number_is_not_an_identifier(reader):
    found = roles(reader, "2WW ref. Our ref AB123")
    assert found["2WW"] == Role.unbound.value and found["AB123"] == "identifier"


def test_proper_nouns_the_dictionary_holds_capitalised_are_narrative(reader):
    found = roles(reader, "Reference ranges change from 1st April. Seen in Manchester")
    assert found["April"] == found["Manchester"] == "narrative"


def test_a_number_label_is_not_a_negation(reader):
    found = roles(reader, "Lab No: A5336979 Hosp No. 12345")
    assert found["No"] == found["A5336979"] == "identifier"
    assert roles(reader, "No: chest pain")["No"] == "cue"  # no identifier after it: still a negation


def test_a_card_is_read_word_by_word_and_a_letter_as_prose(reader):
    """H84: on a card an English word no list accounts for is not narrative; in typed prose it is."""
    card = reader.read("Depression r/v. Sleepwalks onto the road. Citalopram 20mg od", prose=False)
    letter = reader.read("Depression r/v. Sleepwalks onto the road. Citalopram 20mg od")
    unaccounted = {reading.tokens[i].word: role for reading in (card,) for i, role in reading.unaccounted()}
    assert unaccounted.get("road") == Role.terse and unaccounted.get("sleepwalks") == Role.terse
    assert "road" not in {letter.tokens[i].word for i, _ in letter.unaccounted()}
    # The reviewed narrative list and function words still pass on a card.
    seen = reader.read("Seen and reassured. Asthma r/v", prose=False)
    assert not [seen.tokens[i].word for i, _ in seen.unaccounted()]


@pytest.mark.parametrize("text", ["Seen 21st May with rash, 10th day", "Review on the 11th. 100th birthday",
                                  "well-being discussed"])
def test_ordinals_and_compounds_are_read_without_error(reader, text):
    """Hunspell parses "21st" as a compound with no stem; reading it must not fail (found by bench_reconcile)."""
    for prose in (True, False):
        reading = reader.read(text, prose=prose)
        assert len(reading.tokens) == len(text.split())
    dictionaries = default_lexicon().dictionaries
    assert dictionaries.medical("10th") in (True, False) and not default_lexicon().loaded("21st")


def test_the_medical_word_lists_affix_rules_are_found_without_a_system_en_us(tmp_path):
    # en_med_glut needs en_US's affix rules; Debian installs them only with hunspell-en-us,
    # which scripts/setup.sh does not ask for, so spylls' own copy is the one used.
    shared = Path("/usr/share/hunspell")
    for name in ("en_GB.dic", "en_GB.aff", "en_med_glut.dic"):
        (tmp_path / name).symlink_to(shared / name)
    dictionaries = Dictionaries((tmp_path,))
    assert dictionaries.files["medical_aff"].is_file() and dictionaries.files["medical_aff"].name == "en_US.aff"
    assert dictionaries.medical("haematuria") and not dictionaries.medical("garden")
