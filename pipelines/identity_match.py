"""Whether two identities are the same person, and what an envelope's printed demographics say against one."""

from __future__ import annotations

import re
import unicodedata
from datetime import date

from pipelines.identity import PatientId, nhs_number_valid


def same_person(stored: PatientId | None, given: PatientId) -> str | None:
    """Why `given` cannot be the patient stored under the same NHS number, or None if it can be.

    Names are the same when, after Unicode accents, case, hyphens, apostrophes and spacing are
    set aside, they share the first and last name and one's names appear in the other's in
    order (a middle name added or dropped: "Janet Wilson" is "Janet Mary Wilson"). Dates of
    birth must be equal. Unknown parts (no name, no date) cannot conflict.
    """
    if stored is None:
        return None
    reasons = []
    if stored.name and given.name and not _same_name(stored.name, given.name):
        reasons.append(f"name {given.name!r} is not {stored.name!r}")
    if stored.born and given.born and stored.born != given.born:
        reasons.append(f"date of birth {given.born:%d-%m-%Y} is not {stored.born:%d-%m-%Y}")
    return " and ".join(reasons) or None


def _name_parts(name: str) -> list[str]:
    plain = "".join(c for c in unicodedata.normalize("NFKD", name) if not unicodedata.combining(c))
    return re.sub(r"[-'\u2019.,]", " ", plain).casefold().split()


def _same_name(a: str, b: str) -> bool:
    x, y = _name_parts(a), _name_parts(b)
    if not x or not y or x[0] != y[0] or x[-1] != y[-1]:
        return False
    short, long = (x, y) if len(x) <= len(y) else (y, x)
    rest = iter(long)
    return all(part in rest for part in short)


_NHS_ON_PAPER = re.compile(r"(?<!\d)(\d{3})[ -]?(\d{3})[ -]?(\d{4})(?!\d)")
_DOB_ON_PAPER = re.compile(r"(?i)(?:d\.?\s?o\.?\s?b\.?|born|date\s+of\s+birth)\W{0,3}(\d{1,2})[./-](\d{1,2})[./-](\d{2,4})")


def printed_identity_disagrees(text: str, patient: PatientId) -> list[str]:
    """What an envelope front's printed demographics, as OCR read them, say against the input's identity.

    Identity never comes from OCR; this only finds disagreements for a person to review: a valid
    NHS number other than the patient's, or a date of birth after a DOB label that is not theirs.
    """
    found = []
    for m in _NHS_ON_PAPER.finditer(text):
        digits = "".join(m.groups())
        if digits != patient.nhs_number and nhs_number_valid(digits):
            found.append(f"the envelope reads NHS number {digits[:3]} {digits[3:6]} {digits[6:]}")
    for m in _DOB_ON_PAPER.finditer(text):
        day, month, year = (int(g) for g in m.groups())
        if year < 100:
            year += 1900 if patient.born is None or year > patient.born.year % 100 else 2000
        try:
            read = date(year, month, day)
        except ValueError:
            continue
        if patient.born is not None and read != patient.born:
            found.append(f"the envelope reads date of birth {read:%d-%m-%Y}")
    return found
