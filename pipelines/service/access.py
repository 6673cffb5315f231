"""Roles and what each may do; `Who` is the acting user as both front ends hand it over.

A clerk searches, views and digitises; a clinician views and decides (reconcile, overrides); a
practice admin views, digitises, manages users, maintains the archive and builds packs; an
auditor reads the audit log and nothing of patients. An archive with no accounts is its folder owner's, who may do everything (accounts.shell_who).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from pipelines.errors import NotPermitted


class Role(StrEnum):
    clinician = "clinician"
    practice_admin = "practice-admin"
    clerk = "clerk"
    auditor = "auditor"
    # Whoever may open the archive's folder when it has no accounts yet (never stored).
    owner = "archive-owner"


class Permission(StrEnum):
    view = "view"  # find patients, search, open pages
    digitise = "digitise"  # add scans to the archive
    include = "send more pages"  # force a page into the pack: never less paper
    decide = "decide"  # reconcile, omit pages, confirm another clinician's omission
    pack = "pack"  # build and hand over transfer packs
    hand_over = "mark packs sent and received"  # the leavers worklist's last steps
    manage_users = "manage users"
    maintain = "maintain the archive"  # rebuild the index, refile a document under another patient
    read_audit = "read the audit log"


GRANTS: dict[Role, frozenset[Permission]] = {
    Role.clerk: frozenset({Permission.view, Permission.digitise, Permission.include, Permission.hand_over}),
    Role.clinician: frozenset({Permission.view, Permission.include, Permission.decide}),
    Role.practice_admin: frozenset({Permission.view, Permission.digitise, Permission.include, Permission.pack,
                                    Permission.hand_over, Permission.manage_users, Permission.maintain}),
    Role.auditor: frozenset({Permission.read_audit}),
    Role.owner: frozenset(Permission),
}


@dataclass(frozen=True, slots=True)
class Who:
    """The acting user: their name (as the audit writes it), role, and where they are (a client address or "shell")."""

    name: str
    role: Role
    client: str = "shell"

    def may(self, permission: Permission) -> bool:
        return permission in GRANTS[self.role]

    def require(self, permission: Permission) -> None:
        if not self.may(permission):
            raise NotPermitted(f"{self.name} is a {self.role.value}; a {self.role.value} may not {permission.value}")

    def audit_detail(self) -> dict[str, str]:
        return {"role": self.role.value, "client": self.client}
