"""Accounts: adding users, passwords (Argon2id), API tokens, signing in, and who the shell is.

An archive without accounts is used by whoever may open its folder (the operating-system
user, with every permission: `Role.owner`, never stored). Once it has accounts, the shell
says who it is (`--as NAME` or `LGD_USER`) for commands that need a permission, and the web
service signs people in; either way the audit names a person and their role.
"""

from __future__ import annotations

import functools
import hashlib
import secrets
import unicodedata

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from index import Catalogue
from index import accounts as store
from pipelines.actor import current_actor
from pipelines.errors import ExitCode, LgdError, NotFound, NotSignedIn

from .access import Permission, Role, Who

MIN_PASSWORD = 12  # a passphrase of a few words; length beats composition rules
MAX_PASSWORD = 1024  # Argon2 hashes anything, but a megabyte "password" is an attack
TOKEN_PREFIX = "lgd_"
_HASHER = PasswordHasher()  # Argon2id with the library's current recommended cost
_NAME_OK = frozenset("abcdefghijklmnopqrstuvwxyz0123456789._-@")

@functools.cache
def _dummy_hash() -> str:
    """Checked when the user does not exist, so a wrong name costs as long as a wrong password (made once)."""
    return _HASHER.hash(secrets.token_urlsafe(16))


def check_name(name: str) -> str:
    name = name.strip().casefold()
    if not (1 <= len(name) <= 64) or not set(name) <= _NAME_OK:
        raise LgdError(f"{name!r} is not a usable user name: 1-64 of a-z, 0-9 and . _ - @ (e.g. j.smith)",
                       ExitCode.usage, "bad_user_name")
    return name


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise LgdError(f"the password is {len(password)} characters; use at least {MIN_PASSWORD} "
                       "(three or four random words are easy to type and hard to guess)", ExitCode.usage, "weak_password")
    if len(password) > MAX_PASSWORD:
        raise LgdError(f"the password is over {MAX_PASSWORD} characters", ExitCode.usage, "bad_password")
    if any(unicodedata.category(c) in ("Cc", "Cf") for c in password):
        raise LgdError("the password holds control or formatting characters", ExitCode.usage, "bad_password")
    return password


def _role(value: str) -> Role:
    try:
        return Role(value)
    except ValueError:
        raise LgdError(f"unknown role {value!r}; give one of {', '.join(r.value for r in Role if r is not Role.owner)}",
                       ExitCode.usage, "bad_role") from None


def shell_who(catalogue: Catalogue, as_name: str | None) -> Who:
    """Who is running a shell command: the named account, or the folder's owner if there are no accounts."""
    if as_name:
        row = store.user(catalogue, check_name(as_name))
        if row is None or row.disabled:
            raise NotSignedIn(f"there is no enabled account {as_name!r} in this archive (lgd user list)", "unknown_user")
        return Who(row.name, Role(row.role), "shell")
    if store.users(catalogue):
        raise NotSignedIn("this archive has user accounts: say who you are with --as NAME or LGD_USER=NAME",
                          "who_are_you")
    return Who(current_actor(), Role.owner, "shell")


def add_user(catalogue: Catalogue, who: Who, name: str, role: str, password: str | None) -> Who:
    who.require(Permission.manage_users)
    name, role_ = check_name(name), _role(role)
    digest = _HASHER.hash(check_password(password)) if password is not None else None
    try:
        store.add_user(catalogue, name, role_.value, digest, actor=who.name)
    except KeyError:
        raise LgdError(f"there is already a user {name!r}", ExitCode.usage, "user_exists") from None
    return Who(name, role_)


def users(catalogue: Catalogue, who: Who) -> tuple[store.UserRow, ...]:
    who.require(Permission.manage_users)
    return store.users(catalogue)


def change(catalogue: Catalogue, who: Who, name: str, *, password: str | None = None, disabled: bool | None = None,
           role: str | None = None) -> None:
    who.require(Permission.manage_users)
    name = check_name(name)
    digest = _HASHER.hash(check_password(password)) if password is not None else None
    try:
        store.change_user(catalogue, name, actor=who.name, password_hash=digest, disabled=disabled,
                          role=_role(role).value if role else None)
    except KeyError:
        raise NotFound(f"there is no user {name!r} (lgd user list)", "no_user") from None


def issue_token(catalogue: Catalogue, who: Who, name: str) -> str:
    """A new API token for `name`, shown once; only its SHA-256 is kept."""
    who.require(Permission.manage_users)
    name = check_name(name)
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    try:
        store.add_token(catalogue, name, _digest(token), actor=who.name)
    except KeyError:
        raise NotFound(f"there is no enabled user {name!r} (lgd user list)", "no_user") from None
    return token


def sign_in(catalogue: Catalogue, name: str, password: str, client: str) -> Who:
    """The user, if the password is theirs and the account enabled; every attempt is audited."""
    try:
        name = check_name(name)
    except LgdError:
        name = ""
    row = store.user(catalogue, name) if name else None
    try:
        _HASHER.verify(row.password_hash if row and row.password_hash else _dummy_hash(), password[:MAX_PASSWORD])
        ok = row is not None and row.password_hash is not None and not row.disabled
    except (VerificationError, InvalidHashError):
        ok = False
    shown = name or "(not a user name)"
    if not ok:
        catalogue.audit(shown, "login_failed", None, client=client)
        raise NotSignedIn("the user name or password is wrong, or the account is disabled", "bad_credentials")
    who = Who(row.name, Role(row.role), client)
    if _HASHER.check_needs_rehash(row.password_hash):
        store.change_user(catalogue, row.name, actor=row.name, password_hash=_HASHER.hash(password))
    catalogue.audit(who.name, "login", None, **who.audit_detail())
    return who


def sign_in_vouched(catalogue: Catalogue, name: str, client: str, method: str) -> Who:
    """The account an identity provider vouched for (`method`: "oidc"), if it exists and is enabled; audited."""
    try:
        row = store.user(catalogue, check_name(name))
    except LgdError:
        row = None
    if row is None or row.disabled:
        catalogue.audit(name[:64], "login_failed", None, client=client, method=method)
        raise NotSignedIn(f"{name[:64]!r} has no enabled lgd account here; a practice admin adds it with "
                          "`lgd user add NAME --role ...`", "no_account")
    who = Who(row.name, Role(row.role), client)
    catalogue.audit(who.name, "login", None, **who.audit_detail(), method=method)
    return who


def who_of_token(catalogue: Catalogue, token: str, client: str) -> Who | None:
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    row = store.user_of_token(catalogue, _digest(token))
    return None if row is None else Who(row.name, Role(row.role), client)


def _digest(token: str) -> str:
    # A token is 256 random bits: a fast hash is enough (nothing to brute-force), unlike a password.
    return hashlib.sha256(token.encode()).hexdigest()
