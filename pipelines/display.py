"""Outside text shown on a terminal: control characters escaped, long names cut where it does no harm."""

from __future__ import annotations

import re
import unicodedata

_ELLIPSIS = "\u2026"
# The parts of an NDR name that tell two files apart: "1of2_" before, "[15-06-1935].pdf" after.
_HEAD = re.compile(r"^\d+of\d+_")
_TAIL = re.compile(r"_?\[[^\]]*\](?:\.[A-Za-z0-9]+)?$")


def printable(text: str) -> str:
    """`text` with control and formatting characters (newlines, escapes, bidi overrides) shown as escapes."""
    return "".join(c if unicodedata.category(c) not in ("Cc", "Cf")
                   else f"\\x{ord(c):02x}" if ord(c) < 256 else f"\\u{ord(c):04x}" for c in text)


def elide(name: str, width: int) -> str:
    """`name` cut to `width` in the middle, keeping its part number ("1of2_") and its end (date of birth, extension)."""
    name = printable(name)
    if len(name) <= width:
        return name
    head = _HEAD.match(name)
    tail = _TAIL.search(name)
    keep_head = head.group() if head else ""
    keep_tail = tail.group() if tail else name[-(width // 2):]
    room = width - len(keep_head) - len(keep_tail) - 1
    if room < 0:  # too narrow for both: the end still tells most
        return _ELLIPSIS + name[-(width - 1):]
    middle = name[len(keep_head):len(name) - len(keep_tail)]
    return keep_head + middle[:room] + _ELLIPSIS + keep_tail


# Bidirectional controls: embeddings, overrides and isolates, the implicit marks and the Arabic
# letter mark. In a name they can make the text read in another order than it is stored (the
# "Trojan Source" trick), so a cover sheet, a footer or metadata.csv never carries them.
BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def without_bidi(text: str) -> str:
    """`text` with every bidirectional control character removed (the letters themselves are kept)."""
    return "".join(c for c in text if c not in BIDI_CONTROLS)


# A spreadsheet reads a cell starting with one of these as a formula (OWASP, CSV injection).
FORMULA_LEAD = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: str) -> str:
    """`value` as a spreadsheet will show it, never run it: a leading formula character gets a quote before it."""
    return "'" + value if value.startswith(FORMULA_LEAD) else value
