"""Who runs a shell command on an archive: its named account (--as / LGD_USER), checked before the command runs.

An archive without accounts belongs to whoever may open its folder, and the audit names
their operating-system user. Once it has accounts, every command on it names one (the audit
then holds that name, never "unknown" or "root"), and the account's role must allow the
command: the same rules as the web service, from the same table (pipelines.service.access).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path

from index import Catalogue
from pipelines import actor
from pipelines.errors import NotSignedIn
from pipelines.search import open_catalogue
from pipelines.service.accounts import shell_who
from pipelines.service.access import Permission, Role

# What each command needs; commands that check for themselves (user, audit) or use no
# archive (verify, unpack, coded show, serve) are not listed.
_NEEDS: dict[str, Callable[[argparse.Namespace], Permission | None]] = {
    "digitise": lambda a: Permission.digitise,
    "watch": lambda a: Permission.digitise,  # a hot folder digitises what lands in it
    "search": lambda a: Permission.view,
    "page": lambda a: Permission.view,
    "index": lambda a: Permission.maintain,
    "coded": lambda a: Permission.decide if getattr(a, "coded_action", None) == "import" else None,
    "reconcile": lambda a: Permission.decide,
    "review": lambda a: (Permission.include if a.include else
                         Permission.decide if (a.omit or a.clear or a.confirm) else Permission.view),
    "pack": lambda a: Permission.pack,
    "leavers": lambda a: Permission.view,  # each step checks its own permission (service.leavers)
    "receive": lambda a: Permission.digitise,  # filing another practice's pack is adding pages
    "patient": lambda a: Permission.maintain,
    "key": lambda a: Permission.maintain if getattr(a, "key_command", None) == "rotate" else Permission.pack,
}


def act_as(args: argparse.Namespace, archive_of: Callable[[str | None], Path]) -> None:
    """Check the named account against the archive and make it the actor; raise NotSignedIn/NotPermitted."""
    needs = _NEEDS.get(getattr(args, "command", ""), lambda a: None)(args)
    if needs is None:
        return
    name = getattr(args, "as_user", None) or os.environ.get("LGD_USER") or None
    archive = archive_of(getattr(args, "archive", None))
    if not (archive / "catalogue.sqlite").exists():
        if name:
            raise NotSignedIn(f"there is no archive at {archive} yet, so no account {name!r}; run without --as "
                              "(and LGD_USER) to create it", "unknown_user")
        return
    with open_catalogue(archive, readonly=True) as catalogue:
        who = shell_who(catalogue, name)
    who.require(needs)
    if who.role is not Role.owner:
        actor.act_as(who.name)
        Catalogue.process_audit_detail = who.audit_detail()
