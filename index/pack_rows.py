"""A pack's catalogue row made before its files, so the pack can carry its own id inside its signed provenance.

    with recording_pack(catalogue, nhs, run_id, format=..., sha256=..., actor=...) as pending:
        ... write the pack, naming pending.id ...
        pending.detail = {...}

The row and its `pack_built` audit record are written in ONE transaction that stays open while
the pack is written: if writing fails, the row was never there (the id is not taken by a pack
that does not exist), and no pack leaves with an id the catalogue does not hold. Other writers
wait (busy_timeout) for those seconds; readers do not.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from . import db
from .catalogue import Catalogue


@dataclass
class PendingPack:
    id: int
    detail: dict[str, Any] | None = field(default=None)


@contextmanager
def recording_pack(catalogue: Catalogue, nhs_number: str, reconciliation_id: int, *, format: str,  # noqa: A002
                   sha256: str, actor: str) -> Iterator[PendingPack]:
    """Insert the pack's row, let the caller write the pack, then store its detail and audit it; all or nothing.

    Raises:
        ValueError: `sha256` is not 64 hex digits, or the caller set no detail.
    """
    if len(sha256) != 64:
        raise ValueError(f"sha256 must be 64 hex digits, got {sha256!r}")
    conn = catalogue._conn  # package-internal: the row and its audit share the catalogue's one transaction
    with db.transaction(conn):
        cur = conn.execute(
            "INSERT INTO packs (nhs_number, reconciliation_id, format, created, actor, sha256, detail)"
            " VALUES (?, ?, ?, ?, ?, ?, '{}')",
            (nhs_number, reconciliation_id, format, catalogue._clock().isoformat(), actor, sha256))
        pending = PendingPack(int(cur.lastrowid))
        yield pending
        if pending.detail is None:
            raise ValueError("a pack was recorded without its detail")
        conn.execute("UPDATE packs SET detail = ? WHERE id = ?",
                     (json.dumps(pending.detail, sort_keys=True, default=str), pending.id))
        catalogue._insert_audit(actor, "pack_built", nhs_number,
                                {"id": pending.id, "reconciliation_id": reconciliation_id, "format": format,
                                 "sha256": sha256, "uuid": pending.detail.get("uuid")})
