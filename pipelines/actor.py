"""Who is acting: the name written to the audit trail and on packs, and free text fit to store.

Plain `lgd` runs as the operating-system user, taken from the process's real user id: $USER
and $LOGNAME are the caller's to set, so they would let anyone write any name into the audit.
An archive with accounts names one with --as or LGD_USER, checked first (cli_who.py); the web
service passes its signed-in user to the functions it calls instead.
"""

from __future__ import annotations

import os
import pwd
import unicodedata

from pipelines.errors import ExitCode, LgdError

MAX_FREE_TEXT = 2000  # characters of a reason or note: a paragraph, not a file


_named: str | None = None


def act_as(name: str) -> None:
    """From now on this process acts as the lgd account `name` (checked by the caller: cli_who.act_as)."""
    global _named
    _named = name


def current_actor() -> str:
    """The lgd account this command acts as, else the login name of the real user id ("uid N" if it has none)."""
    if _named is not None:
        return _named
    uid = os.getuid()
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def free_text(value: str, what: str) -> str:
    """`value` stripped, refused if empty, too long, or holding control or bidirectional characters.

    Reasons and names are stored, printed on terminals and covers: a newline would forge a
    line of the audit, an escape sequence would rewrite a terminal, a right-to-left override
    would reorder what a reader sees.
    """
    text = value.strip()
    if not text:
        raise LgdError(f"{what} is empty; say why in a few words", ExitCode.usage, "usage")
    if len(text) > MAX_FREE_TEXT:
        raise LgdError(f"{what} is {len(text)} characters long; keep it under {MAX_FREE_TEXT}", ExitCode.usage, "usage")
    bad = sorted({f"U+{ord(c):04X}" for c in text if unicodedata.category(c) in ("Cc", "Cf")})
    if bad:
        raise LgdError(f"{what} holds control or formatting characters ({', '.join(bad[:4])}); "
                       "write it as plain text on one line", ExitCode.usage, "usage")
    return text

