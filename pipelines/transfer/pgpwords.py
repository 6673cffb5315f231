"""A signing key's fingerprint as words that can be read aloud: the PGP word list (wordlist/PGP-WORDS.md).

A fingerprint such as "SHA256:q3Xb..." is hard to read over the telephone; its 32 bytes as
32 words ("aardvark adroitness ...") are not. Even positions use the two-syllable list and odd
positions the three-syllable one, so a dropped or doubled word is heard as wrong. The words
carry the whole fingerprint: nothing is shortened, so reading them checks every bit.
"""

from __future__ import annotations

import base64
import binascii
from functools import cache
from importlib import resources

WORDLIST = "pgp_words.txt"


@cache
def _lists() -> tuple[tuple[str, ...], tuple[str, ...]]:
    text = resources.files(__package__).joinpath("wordlist", WORDLIST).read_text(encoding="ascii")
    rows = [line.split("\t") for line in text.splitlines() if line.strip()]
    if [int(r[0], 16) for r in rows] != list(range(256)) or any(len(r) != 3 for r in rows):
        raise RuntimeError(f"the bundled word list {WORDLIST} is damaged; reinstall lgd")
    return tuple(r[1] for r in rows), tuple(r[2] for r in rows)


def words_of_bytes(data: bytes) -> tuple[str, ...]:
    even, odd = _lists()
    return tuple((even if i % 2 == 0 else odd)[b] for i, b in enumerate(data))


def fingerprint_words(fingerprint: str) -> tuple[str, ...]:
    """The words of a fingerprint in lgd's form ("SHA256:" + unpadded base64 of 32 bytes).

    Raises:
        ValueError: `fingerprint` is not one.
    """
    value = fingerprint.strip().removeprefix("SHA256:")
    try:
        digest = base64.b64decode(value + "=" * (-len(value) % 4), validate=True)
    except binascii.Error:
        raise ValueError(f"{fingerprint[:60]!r} is not a SHA256: fingerprint") from None
    if len(digest) != 32:
        raise ValueError(f"{fingerprint[:60]!r} is not a SHA256: fingerprint (it holds {len(digest)} bytes, not 32)")
    return words_of_bytes(digest)


def spoken(words: tuple[str, ...], group: int = 4) -> str:
    """The words in groups of `group`, as they would be read out: "aardvark adroitness ... / ..."."""
    return " / ".join(" ".join(words[i:i + group]) for i in range(0, len(words), group))
