"""Who is acting: the name written to the audit trail and on packs.

Plain `lgd` runs as the operating-system user; a web service would pass its signed-in user instead.
"""

from __future__ import annotations

import getpass


def current_actor() -> str:
    """The operating-system login name, or "unknown" where there is none (some containers)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
