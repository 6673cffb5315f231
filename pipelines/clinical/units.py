"""Units of a measured value, compared as what they measure: "U/L" is "IU/L", "mmol/L" is never "mg/dL".

A result row is covered only by a coded result of the same analyte, date, value and unit
(hazard H43): the same number in another unit is another measurement (a glucose of 5.2 mg/dL
is not 5.2 mmol/L). Spellings of one unit are one key: letter case, micro written "u", "µ" or
"mc", powers of ten written "x10^9", "10*9" or "10e9", and the l that OCR reads as 1 at a
unit's end. Units that laboratories print interchangeably for the same quantity (the UCUM
equivalents U/L and IU/L, mU/L and mIU/L, ug/L and ng/mL, mm/h and mm/hr) share a key; nothing else does.
"""

from __future__ import annotations

import re

# One key per group: each pair says the same quantity (UCUM: [iU] is the international unit;
# 1 ug/L = 1 ng/mL).
_EQUIVALENT = {"iu/l": "u/l", "miu/l": "mu/l", "ng/ml": "ug/l", "iu/ml": "u/ml", "ku/l": "u/ml", "mm/hr": "mm/h"}
_POWER = re.compile(r"^x?10[\^*e]?(\d{1,2})/")
_VALUE = re.compile(r"value:\s*([^;]+)", re.I)
_NUMBER = re.compile(r"^[<>~]?\d+(?:[.,]\d+)?$")


def unit_key(unit: str) -> str:
    """The unit as one key for all its spellings ("x10^9/L", "10*9/l" and "10e9/L" alike)."""
    u = unit.strip("()[],;:").casefold().replace("µ", "u").replace("μ", "u").replace("mcg", "ug").replace("mcmol", "umol")
    u = _POWER.sub(lambda m: f"10^{m.group(1)}/", u)
    if u.endswith("/1"):  # "mmol/1": OCR reads a unit's final l as 1
        u = u[:-1] + "l"
    return _EQUIVALENT.get(u, u)


def same_unit(a: str, b: str) -> bool:
    return unit_key(a) == unit_key(b)


def coded_values(text: str) -> tuple[tuple[str, str], ...]:
    """(number, unit) of each value a coded event records ("value: 6.1 10*9/L" -> ("6.1", "10*9/L")).

    Only the number that starts a value is its value: the digits of its unit ("10*9/L") are not.
    The unit is "" when none is recorded.
    """
    out = []
    for m in _VALUE.finditer(text or ""):
        words = m.group(1).split()
        if words and _NUMBER.match(words[0]):
            out.append((words[0].lstrip("<>~").replace(",", "."), " ".join(words[1:2])))
        elif words:  # "value: 140/90 mmHg": each number of a pair is a value
            numbers = re.findall(r"\d+(?:\.\d+)?", words[0])
            out.extend((n, " ".join(words[1:2])) for n in numbers)
    return tuple(out)
