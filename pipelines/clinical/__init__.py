"""Clinical reading shared by reconcile (and, in time, search): vocabulary, lexicon, reading, evidence.

lexicon.py says which words carry no fact (dictionaries by others plus short reviewed lists),
reading.py gives every word of an entry its role, evidence.py finds the coded events that
cover an entry's facts. `fingerprint()` names the exact rules a decision was made under.
"""

from __future__ import annotations

import functools
import hashlib
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from .lexicon import default_lexicon
from .reading import Reader
from .vocabulary import AMBIGUOUS_FILE, CONCEPT_FILES, DEFAULT_FOLDER, Vocabulary


@functools.lru_cache(maxsize=1)
def default_reader() -> Reader:
    return Reader(Vocabulary.load(), default_lexicon())


def lgd_version() -> str:
    try:
        return version("lgd")
    except PackageNotFoundError:
        return "unknown"


@functools.lru_cache(maxsize=1)
def fingerprint() -> str:
    """SHA-256 over everything that decides what may be omitted, apart from the run's settings."""
    h = hashlib.sha256(default_lexicon().fingerprint().encode())
    for name in sorted({*CONCEPT_FILES, AMBIGUOUS_FILE, "codes.tsv"}):
        path = DEFAULT_FOLDER / name
        h.update(name.encode() + b"\0" + (path.read_bytes() if path.is_file() else b"absent"))
    for module in ("reading.py", "evidence.py", "lexicon.py", "units.py"):
        h.update((Path(__file__).with_name(module)).read_bytes())
    h.update(lgd_version().encode())
    return h.hexdigest()


__all__ = ["Reader", "default_reader", "fingerprint"]
