"""Passphrases for transfer packs: generated from a diceware word list, or read from a file the user gives.

A generated passphrase is 8 words drawn with `secrets` from the EFF large word list
(7,776 words, so log2(7776) * 8 = 103.4 bits). Words are separated by single spaces
because four of the words contain hyphens. The passphrase is only ever held in memory
and handed to 7-Zip on its standard input (see sevenzip.py); it is never written to the
media, the manifest, the catalogue, a log, or a command line.
"""

from __future__ import annotations

import logging
import math
import os
import secrets
import stat
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

from pipelines.errors import ExitCode

from .problems import PackCode, PackError

log = logging.getLogger(__name__)
WORDS = 8
WORDLIST = "eff_large_wordlist.txt"
MIN_FILE_PASSPHRASE = 20
# 7-Zip's key derivation hashes the passphrase 2^19 times: a long one takes minutes. 8 words are
# under 80 characters; 256 leaves room for any passphrase a person types or reads out.
MAX_PASSPHRASE = 256
MAX_PASSPHRASE_FILE = 1024  # bytes read from --passphrase-file at most (/dev/zero must not fill memory)
# A user's passphrase must be typeable on any keyboard and decode identically in 7-Zip on
# Windows, macOS and Linux whatever the locale: printable ASCII only.
_PRINTABLE = frozenset(chr(c) for c in range(0x20, 0x7F))


@dataclass(frozen=True, slots=True)
class Passphrase:
    """A secret passphrase. `repr` and `str` never show it; use `.secret` where it is needed."""

    secret: str
    bits: float  # entropy of a generated passphrase; 0.0 when read from a file (unknown)

    def __repr__(self) -> str:
        return f"Passphrase(<{len(self.secret)} characters hidden>, bits={self.bits:.1f})"

    __str__ = __repr__


@cache
def wordlist() -> tuple[str, ...]:
    """The bundled EFF large word list (see wordlist/README.md), checked to have 7,776 unique words."""
    text = resources.files(__package__).joinpath("wordlist", WORDLIST).read_text(encoding="ascii")
    words = tuple(line.split()[-1] for line in text.splitlines() if line.strip())
    if len(words) != 7776 or len(set(words)) != 7776:
        raise RuntimeError(f"the bundled word list {WORDLIST} has {len(set(words))} unique words, not 7776; reinstall lgd")
    return words


def generate(words: int = WORDS) -> Passphrase:
    """A new random passphrase of `words` words (default 8, about 103 bits)."""
    pool = wordlist()
    chosen = [secrets.choice(pool) for _ in range(words)]
    return Passphrase(" ".join(chosen), bits=words * math.log2(len(pool)))


def check(secret: str, where: str) -> Passphrase:
    """`secret` as a Passphrase, or PackError (usage) saying why it cannot be used; `where` names its source."""
    if not secret:
        raise _unusable(f"{where} is empty")
    if "\n" in secret or "\r" in secret:
        raise _unusable(f"{where} holds more than one line; a passphrase is one line of text")
    if len(secret) < MIN_FILE_PASSPHRASE:
        raise _unusable(
            f"the passphrase in {where} has {len(secret)} characters; lgd needs at least {MIN_FILE_PASSPHRASE}. "
            "Use the passphrase that came with the pack, or let lgd generate one"
        )
    if len(secret) > MAX_PASSPHRASE:
        raise _unusable(
            f"the passphrase in {where} has {len(secret)} characters; lgd accepts at most {MAX_PASSPHRASE}. "
            "Use the passphrase that came with the pack, or let lgd generate one"
        )
    if not set(secret) <= _PRINTABLE:
        raise _unusable(
            f"the passphrase in {where} has characters other than printable ASCII (letters, digits, spaces, "
            "punctuation); such characters can be read differently by 7-Zip on another computer"
        )
    return Passphrase(secret, bits=0.0)


def read_file(path: Path) -> Passphrase:
    """The passphrase on the first line of `path`; one trailing newline (\\n or \\r\\n) is removed.

    Raises:
        PackError: the file cannot be read, or holds an empty, short or multi-line passphrase.
    """
    try:
        with open(path, "rb") as f:
            mode = os.fstat(f.fileno()).st_mode
            if stat.S_ISREG(mode) and mode & 0o077:
                # The secret that opens the records should be as private as they are; warned, not
                # refused, because a receiving practice may have been sent it on shared storage.
                log.warning("--passphrase-file %s can be read by other users; make it private (chmod 600 %s) "
                            "or delete it once the pack is opened", path, path)
            raw = f.read(MAX_PASSPHRASE_FILE + 1)
    except OSError as e:
        raise _unusable(f"cannot read --passphrase-file {path}: {e.strerror or e}") from e
    if len(raw) > MAX_PASSPHRASE_FILE:
        raise _unusable(f"--passphrase-file {path} holds more than {MAX_PASSPHRASE_FILE} bytes; a passphrase file holds "
                        f"one line of at most {MAX_PASSPHRASE} characters")
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        raise _unusable(f"--passphrase-file {path} is not plain ASCII text") from None
    for ending in ("\r\n", "\n"):
        if text.endswith(ending):
            text = text[: -len(ending)]
            break
    if not text:
        raise _unusable(f"--passphrase-file {path} is empty; put the passphrase on its first line")
    return check(text, f"--passphrase-file {path}")


def _unusable(message: str) -> PackError:
    return PackError(PackCode.passphrase_unusable, message, ExitCode.usage)
