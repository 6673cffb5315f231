"""User accounts and API tokens as the catalogue stores them (migration 5).

Only what the application layer hands over is stored: a password is already an Argon2id hash,
a token only its SHA-256. Every change is audited in the same transaction, so an account's
history (added, role, password changed, disabled, token issued) is in the audit log.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from . import db
from .catalogue import Catalogue
from .db import mapped

ROLES = ("clinician", "practice-admin", "clerk", "auditor")


@dataclass(frozen=True, slots=True)
class UserRow:
    name: str
    role: str
    password_hash: str | None
    disabled: bool
    created: dt.datetime
    changed: dt.datetime


_COLUMNS = "name, role, password_hash, disabled, created, changed"


def _user(row: tuple) -> UserRow:
    name, role, password_hash, disabled, created, changed = row
    return UserRow(name, role, password_hash, bool(disabled), dt.datetime.fromisoformat(created),
                   dt.datetime.fromisoformat(changed))


def _now(catalogue: Catalogue) -> str:
    return catalogue._clock().isoformat()


@mapped
def user(catalogue: Catalogue, name: str) -> UserRow | None:
    row = catalogue._conn.execute(f"SELECT {_COLUMNS} FROM users WHERE name = ?", (name,)).fetchone()
    return None if row is None else _user(row)


@mapped
def users(catalogue: Catalogue) -> tuple[UserRow, ...]:
    return tuple(map(_user, catalogue._conn.execute(f"SELECT {_COLUMNS} FROM users ORDER BY name")))


@mapped
def add_user(catalogue: Catalogue, name: str, role: str, password_hash: str | None, *, actor: str) -> None:
    """Raises KeyError if the name is taken, ValueError for an unknown role."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}")
    conn = catalogue._conn
    with db.transaction(conn):
        if conn.execute("SELECT 1 FROM users WHERE name = ?", (name,)).fetchone() is not None:
            raise KeyError(name)
        now = _now(catalogue)
        conn.execute("INSERT INTO users (name, role, password_hash, disabled, created, changed) VALUES (?, ?, ?, 0, ?, ?)",
                     (name, role, password_hash, now, now))
        catalogue._insert_audit(actor, "user_add", None, {"user": name, "user_role": role})


@mapped
def change_user(catalogue: Catalogue, name: str, *, actor: str, password_hash: str | None = None,
                disabled: bool | None = None, role: str | None = None) -> None:
    """Set what is given (never logs the hash itself); raises KeyError for an unknown user."""
    if role is not None and role not in ROLES:
        raise ValueError(f"unknown role {role!r}")
    conn = catalogue._conn
    with db.transaction(conn):
        if conn.execute("SELECT 1 FROM users WHERE name = ?", (name,)).fetchone() is None:
            raise KeyError(name)
        changes: dict[str, object] = {}
        if password_hash is not None:
            changes["password_hash"] = password_hash
        if disabled is not None:
            changes["disabled"] = int(disabled)
            if disabled:  # a disabled account's tokens stop working with it, and stay stopped
                conn.execute("UPDATE tokens SET revoked = 1 WHERE name = ?", (name,))
        if role is not None:
            changes["role"] = role
        if not changes:
            return
        sets = ", ".join(f"{column} = ?" for column in changes)  # column names from this function only
        conn.execute(f"UPDATE users SET {sets}, changed = ? WHERE name = ?", (*changes.values(), _now(catalogue), name))
        detail = {"user": name, **{("user_role" if k == "role" else k): v for k, v in changes.items()
                                   if k != "password_hash"}}
        if "password_hash" in changes:
            detail["password"] = "changed"
        catalogue._insert_audit(actor, "user_change", None, detail)


@mapped
def add_token(catalogue: Catalogue, name: str, sha256: str, *, actor: str) -> int:
    conn = catalogue._conn
    with db.transaction(conn):
        if conn.execute("SELECT 1 FROM users WHERE name = ? AND disabled = 0", (name,)).fetchone() is None:
            raise KeyError(name)
        cur = conn.execute("INSERT INTO tokens (name, sha256, created) VALUES (?, ?, ?)", (name, sha256, _now(catalogue)))
        catalogue._insert_audit(actor, "token_add", None, {"user": name, "token": int(cur.lastrowid)})
        return int(cur.lastrowid)


@mapped
def user_of_token(catalogue: Catalogue, sha256: str) -> UserRow | None:
    """The enabled user a live token belongs to, or None."""
    row = catalogue._conn.execute(
        f"SELECT {', '.join('u.' + c.strip() for c in _COLUMNS.split(','))} FROM tokens t JOIN users u ON u.name = t.name"
        " WHERE t.sha256 = ? AND t.revoked = 0 AND u.disabled = 0", (sha256,)).fetchone()
    return None if row is None else _user(row)
