"""Hundreds of everyday phrases that carry a fact, each written into fully coded pages: every one must send the page.

A mutation test of reconcile's reading (hazard H84). The phrases (tests/adversarial/everyday_phrases.txt)
are social, safeguarding, lay-symptom, risk and plan facts in plain English: "Raped", "Bailiffs",
"Frail and unwell", "Care home", "Stops breathing at night". Each is inserted after the first
sentence of card controls that are omitted as written, at the end of a letter control's body, and
as a comment line under a result slip's table; the text-level decision must then send the page.
Of the first 548 phrases rules version 4 passed over 75 on every card control; version 5 (more loaded
words, inflections) 35; version 6, which reads a card word by word, none. Letters and slips are
prose, so there the loaded list alone must catch a phrase: it passes over only the two that name
a setting ("Home visit", "Out of hours").
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from tests.adversarial.corpus import Case, load_cases
from tests.test_adversarial import decide  # noqa: F401  (the text-level decision fixture)


PHRASES = [line.strip() for line in (Path(__file__).parent / "adversarial" / "everyday_phrases.txt").read_text(
    encoding="utf-8").splitlines() if line.strip() and not line.startswith("#")]
CONTROLS = ("ctl-cough-amoxicillin", "ctl-hypertension-review", "ctl-depression-citalopram")
# A typed letter is prose, read with the dictionaries (H35): there the loaded list alone must catch a phrase.
LETTER = "ctl-letter-dyspepsia-leeds"
# A result slip's comment lines are prose too, and the slip's printed words may be passed over there.
SLIP = "ctl-slip-renal"
# Phrases that name only where or how a patient was seen, which a letter may pass over.
SETTINGS_ONLY = {"Home visit", "Out of hours"}
CASES = {c.id: c for c in load_cases()}


def with_phrase(case: Case, phrase: str) -> Case:
    page = case.pages[0]
    if page.rows:  # a result slip: the phrase as a comment line under the table
        return dataclasses.replace(case, pages=(dataclasses.replace(page, tail=(*page.tail, f"{phrase}.")),
                                                *case.pages[1:]))
    if not page.notes:  # a letter: the phrase as a sentence of its own at the end of the body's paragraph
        body = next(i for i, line in enumerate(page.lines) if line.startswith("I saw"))
        lines = (*page.lines[:body], f"{page.lines[body]} {phrase}.", *page.lines[body + 1:])
        return dataclasses.replace(case, pages=(dataclasses.replace(page, lines=lines), *case.pages[1:]))
    note = page.notes[0]
    first, _, rest = note.text.partition(". ")
    text = f"{first}. {phrase}. {rest}" if rest else f"{note.text}. {phrase}"
    notes = (dataclasses.replace(note, text=text), *page.notes[1:])
    return dataclasses.replace(case, pages=(dataclasses.replace(page, notes=notes), *case.pages[1:]))


def test_the_controls_are_omitted_without_a_phrase(decide):
    for cid in CONTROLS:
        assert [d for d, _ in decide(CASES[cid])] == ["omit"], cid


@pytest.mark.parametrize("cid", CONTROLS)
def test_every_everyday_phrase_sends_a_fully_coded_card(decide, cid):
    passed_over = [p for p in PHRASES if all(d == "omit" for d, _ in decide(with_phrase(CASES[cid], p)))]
    assert not passed_over, f"{len(passed_over)} of {len(PHRASES)} phrases passed over on {cid}: {passed_over}"


def test_every_everyday_phrase_but_a_setting_sends_a_fully_coded_letter(decide):
    assert [d for d, _ in decide(CASES[LETTER])] == ["omit"]
    passed_over = [p for p in PHRASES if all(d == "omit" for d, _ in decide(with_phrase(CASES[LETTER], p)))]
    assert set(passed_over) <= SETTINGS_ONLY, f"{len(passed_over)} of {len(PHRASES)} phrases passed over: {passed_over}"


def test_every_everyday_phrase_but_a_setting_sends_a_fully_coded_slip(decide):
    assert all(d == "omit" for d, _ in decide(CASES[SLIP]))
    passed_over = [p for p in PHRASES if all(d == "omit" for d, _ in decide(with_phrase(CASES[SLIP], p)))]
    assert set(passed_over) <= SETTINGS_ONLY, f"{len(passed_over)} of {len(PHRASES)} phrases passed over: {passed_over}"
