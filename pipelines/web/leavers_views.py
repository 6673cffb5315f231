"""What the leavers pages show, worked out from the application layer's answers: ages, controls, uploads.

Nothing here decides who may do what or which step a leaver may take: the controls offered
follow the person's permissions (access.Permission) and the states the service names
(leavers.RECONCILABLE, REVIEWABLE, handover.PACKABLE ...), and the service refuses whatever a
forged form asks that it does not allow.
"""

from __future__ import annotations

import datetime as dt
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fastapi import UploadFile

from index import Catalogue
from pipelines.errors import ExitCode, LgdError
from pipelines.service import handover, leavers
from pipelines.service.access import Permission, Who

MAX_UPLOAD = 32 * 1024 * 1024  # a GP2GP extract is a few hundred KB; a leavers CSV a few KB
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._ -]")
FORMAT_LABELS = {
    "7z": "7z: one AES-256 encrypted file (opens with 7-Zip); for a USB stick, email or upload",
    "iso": "ISO: an encrypted pack as a disc image, split to fit",
    "usb": "USB folder: the encrypted pack as files to copy onto a stick",
    "print": "Print: a PDF to print the pages sent, with the cover sheet",
    "ndr": "NDR bundle: files as the National Document Repository accepts them",
}
DONE = {  # ?done= after a step, as a sentence: the URL carries a fixed word, never text to show
    "added": "Added to the worklist.", "imported": "The leavers in the CSV were added.",
    "reconciled": "Reconciled against the coded record.", "decided": "Your decision is recorded.",
    "omission_waits": "Your decision is recorded. Leaving this page out counts only once a second clinician "
                      "confirms it; until then the page is sent.",
    "confirmed": "The omission is confirmed: the page is left out.", "cleared": "The decision is cleared.",
    "signed_off": "Signed off: the decisions are frozen for the pack.", "sent": "Marked sent.",
    "received": "Receipt confirmed: this leaver is complete.", "returned": "Returned for rescan.",
}


def age(since: dt.datetime, now: dt.datetime) -> str:
    """How long a leaver has waited in its state, as a person says it."""
    seconds = max(0, int((now - since).total_seconds()))
    if seconds < 3600:
        return f"{seconds // 60} min"
    if seconds < 2 * 86400:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} days"


def worklist_rows(catalogue: Catalogue, found: list[leavers.Leaver], newest_first: bool) -> list[dict[str, Any]]:
    now = dt.datetime.now(dt.UTC)
    rows = []
    for lv in found:
        person = catalogue.patient(lv.row.nhs_number)
        since = lv.row.since if lv.row.since.tzinfo else lv.row.since.replace(tzinfo=dt.UTC)
        rows.append(lv.to_json() | {"name": person.name if person else None, "age": age(since, now)})
    return list(reversed(rows)) if newest_first else rows  # the service lists the oldest in its state first


def controls(who: Who, leaver: dict[str, Any], totals: dict[str, Any]) -> dict[str, bool]:
    """Which forms the review screen offers this person for this leaver (the service still checks each)."""
    state = leavers.State(leaver["state"])
    return {
        "reconcile": who.may(Permission.decide) and state in leavers.RECONCILABLE,
        "review": who.may(Permission.include) and state in leavers.REVIEWABLE,
        "omit": who.may(Permission.decide) and state in leavers.REVIEWABLE,
        "sign_off": who.may(Permission.decide) and state in (leavers.State.reconciled, leavers.State.in_review),
        "sign_off_waits": bool(totals.get("awaiting_confirmation")),
        "pack": who.may(Permission.pack) and state in handover.PACKABLE,
        "sent": who.may(Permission.hand_over) and state is leavers.State.packed,
        "received": who.may(Permission.hand_over) and state is leavers.State.sent,
        "download": who.may(Permission.pack),
        "return": who.may(Permission.include) and state in leavers.BEFORE_SENT
        and state is not leavers.State.returned_for_rescan,
    }


@contextmanager
def saved_upload(upload: UploadFile | None, what: str) -> Iterator[Path | None]:
    """An uploaded file in a private temporary folder under its own base name (the name a coded record is stored
    with), removed afterwards; None when the form's file field was left empty."""
    if upload is None or not upload.filename:
        yield None
        return
    name = _SAFE_NAME.sub("_", Path(upload.filename.replace("\\", "/")).name)[:100].strip(". ") or "upload"
    with tempfile.TemporaryDirectory(prefix="lgd-upload-") as folder:
        path = Path(folder) / name
        size = 0
        with path.open("wb") as out:
            while chunk := upload.file.read(1 << 20):
                size += len(chunk)
                if size > MAX_UPLOAD:
                    raise LgdError(f"{what} is larger than {MAX_UPLOAD // (1 << 20)} MB; use lgd from the shell",
                                   ExitCode.usage, "too_large", 413)
                out.write(chunk)
        if size == 0:
            raise LgdError(f"{what} ({name}) is empty", ExitCode.usage, "empty_upload")
        yield path


def upload_text(upload: UploadFile | None, what: str) -> str:
    """An uploaded CSV as text (UTF-8, with or without a byte-order mark)."""
    if upload is None or not upload.filename:
        raise LgdError(f"choose {what} to upload", ExitCode.usage, "no_upload")
    data = upload.file.read(MAX_UPLOAD + 1)
    if len(data) > MAX_UPLOAD:
        raise LgdError(f"{what} is larger than {MAX_UPLOAD // (1 << 20)} MB", ExitCode.usage, "too_large", 413)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise LgdError(f"{what} is not UTF-8 text; save it from the spreadsheet as CSV UTF-8", ExitCode.usage,
                       "bad_csv") from None


def pack_all_signed_off(catalogue: Catalogue, who: Who, format: str) -> list[dict[str, Any]]:  # noqa: A002
    """One pack for each signed-off leaver, as `lgd leavers pack --all-signed-off` makes them: each leaver's
    result (its Handover, passphrase included, to be shown once) or why it failed."""
    results = []
    for lv in leavers.worklist(catalogue, who, state=leavers.State.signed_off.value):
        try:
            made = handover.pack(catalogue, who, lv.id, format)
            results.append({"id": lv.id, "ok": True, "handover": made.to_json()})
        except LgdError as e:
            results.append({"id": lv.id, "ok": False, "nhs_number": lv.row.nhs_number, "message": str(e)})
    return results
