"""Handing a leaver's record over: build the pack of the signed-off decisions, download it, mark it sent and received.

The pack is built by the same code as `lgd pack` (transfer.pack_command.pack_options and
transfer.pack.build_pack) from exactly the reconciliation that was signed off, never a new
one. A media pack's passphrase is made here, returned once to the person who built it, with
the signing key's fingerprint as words to read aloud (PGP word list), and never stored.
Packs are written outside the archive (packs leave it), in ARCHIVE-packs/ beside it unless
the shell names a folder; nothing in a folder's name says whose record it holds.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from index import Catalogue
from index import leavers as store
from index.decisions import latest_reconciliation
from pipelines.actor import free_text
from pipelines.errors import ExitCode, LgdError, NotFound

from .access import Permission, Who
from .leavers import Leaver, State, get, illegal, move
from .signoff import basis_of, current_rules, run_is_current

PACKABLE = frozenset({State.signed_off, State.packed, State.sent})  # a lost or failed pack may be made again
MAX_VERIFY_JSON = 64 * 1024  # `lgd verify --json` of a pack is a few KB


@dataclass(frozen=True)
class Handover:
    """A pack just built for a leaver: what to give the person, once."""

    leaver: Leaver
    pack_id: int
    folder: Path
    result: dict[str, Any]  # the PackResult's JSON, as `lgd pack --json` prints it
    passphrase: str | None  # shown once; never stored
    fingerprint: str | None
    fingerprint_words: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        from pipelines.transfer.pgpwords import spoken

        r = self.result
        return {"leaver": self.leaver.to_json(), "pack_id": self.pack_id, "format": r["format"],
                "passphrase": self.passphrase, "fingerprint": self.fingerprint,
                "fingerprint_words": list(self.fingerprint_words),
                "fingerprint_spoken": spoken(self.fingerprint_words) if self.fingerprint_words else None,
                "pages_total": r["pages_total"], "pages_included": r["pages_included"],
                "pages_omitted": r["pages_omitted"], "sheets": r["sheets"], "sheets_saved": r["sheets_saved"],
                "print_choice": r.get("print_choice"), "print": r.get("print"), "warnings": r.get("warnings", []),
                "files": [Path(p).name for p in r["outputs"]], "folder": str(self.folder)}


def packs_folder(archive: Path) -> Path:
    """Where the service writes leavers' packs: beside the archive, private to its user."""
    archive = Path(archive).resolve()
    return archive.with_name(f"{archive.name}-packs")


def pack(catalogue: Catalogue, who: Who, leaver_id: int, format: str = "7z", *,  # noqa: A002 - the option's name
         out: Path | None = None, media: str | None = None, granularity: str = "page",
         with_electronic: bool = False, keep_minimal: bool = False, allow_missing_parts: bool = False,
         practice: str | None = None, sender_ods: str | None = None, passphrase: str | None = None) -> Handover:
    """Build the signed-off leaver's pack in `format` (into `out`, else a new folder in packs_folder).

    A media pack is encrypted with `passphrase` if given (the shell's --passphrase-file), else with a
    new one, which the Handover carries once.
    """
    from pipelines.transfer import passphrase as passphrases
    from pipelines.transfer.formats import MEDIA_FORMATS
    from pipelines.transfer.pack import build_pack
    from pipelines.transfer.pack_command import pack_options
    from pipelines.transfer.pgpwords import fingerprint_words

    who.require(Permission.pack)
    leaver = get(catalogue, who, leaver_id)
    if leaver.state not in PACKABLE:
        raise illegal(leaver, "packed", PACKABLE)
    nhs = leaver.row.nhs_number
    rules_now = current_rules()
    signed = leaver.signed_off or {}
    if basis_of(catalogue, nhs).fingerprint != signed.get("fingerprint"):
        raise LgdError(f"leaver {leaver.id}: the decisions changed since they were signed off; review and sign off "
                       "again before packing", ExitCode.partial, "sign_off_broken", 409)
    run = latest_reconciliation(catalogue, nhs)
    if (stale := run_is_current(catalogue, run, rules_now)) is not None:
        raise LgdError(f"leaver {leaver.id} cannot be packed: {stale}", ExitCode.partial, "not_current", 409)
    options = pack_options(format, media=media, with_electronic=with_electronic, granularity=granularity,
                           allow_missing_parts=allow_missing_parts, keep_minimal=keep_minimal, practice=practice,
                           ods=sender_ods)
    phrase = (passphrase or passphrases.generate().secret) if format in MEDIA_FORMATS else None
    made = out is None
    if out is not None:
        out = Path(out).absolute()  # recorded, and found again by the server whatever its working folder
    else:
        base = packs_folder(catalogue.archive)
        base.mkdir(mode=0o700, exist_ok=True)
        out = Path(tempfile.mkdtemp(prefix=f"leaver-{leaver.id}-", dir=base))
    try:
        result = build_pack(catalogue, nhs, out, options, passphrase=phrase, actor=who.name, run=run)
    except BaseException:
        if made and out.is_dir() and not any(out.iterdir()):
            out.rmdir()
        raise
    doc = result.to_json()
    detail = {"pack": result.pack_id, "format": format, "folder": str(out), "ods_code": leaver.row.ods_code,
              "movement_ref": leaver.row.movement_ref, "fingerprint": result.fingerprint,
              "pages_included": doc["pages_included"], "pages_omitted": doc["pages_omitted"],
              "sign_off": signed.get("fingerprint")}
    leaver = move(catalogue, who, leaver, State.packed, f"{format} pack {result.pack_id}", detail,
                  pack=(result.pack_id, str(out)))
    words = fingerprint_words(result.fingerprint) if result.fingerprint else ()
    return Handover(leaver, int(result.pack_id), out, doc, None if passphrase else phrase, result.fingerprint, words)


def packs(catalogue: Catalogue, who: Who, leaver_id: int) -> list[dict[str, Any]]:
    """The packs built for a leaver: when, by whom, in what form, for which destination."""
    get(catalogue, who, leaver_id)
    return [{"pack_id": p.pack_id, "format": p.format, "created": p.created.isoformat(), "by": p.actor,
             "sha256": p.sha256, "ods_code": p.ods_code, "movement_ref": p.movement_ref,
             "files": [Path(o).name for o in p.detail.get("outputs", [])], "fingerprint": p.detail.get("fingerprint"),
             "print_choice": p.detail.get("print_choice")} for p in store.leaver_packs(catalogue, leaver_id)]


def pack_file(catalogue: Catalogue, who: Who, leaver_id: int, pack_id: int) -> tuple[Path, str]:
    """The file to download for a pack (its one output, or a zip of its several), and the name to give it; audited."""
    who.require(Permission.pack)
    leaver = get(catalogue, who, leaver_id)
    row = next((p for p in store.leaver_packs(catalogue, leaver_id) if p.pack_id == pack_id), None)
    if row is None:
        raise NotFound(f"leaver {leaver_id} has no pack {pack_id}", "no_pack")
    folder = Path(row.folder)
    # A USB pack's output is a folder of files; the others are files.
    outputs = [f for o in map(Path, row.detail.get("outputs", []))
               for f in (sorted(p for p in o.rglob("*") if p.is_file()) if o.is_dir() else [o])]
    if not outputs or not all(o.is_file() and folder in o.parents for o in outputs):
        raise NotFound(f"the files of pack {pack_id} are no longer in {folder}; build it again", "pack_files_gone")
    if len(outputs) == 1:
        path, name = outputs[0], outputs[0].name
    else:  # an ISO split over discs, a USB folder or an NDR bundle: one zip (stored, not compressed again)
        path, name = folder.with_name(f"{folder.name}.zip"), f"lgd-pack-{pack_id}.zip"
        if not path.is_file():
            part = path.with_name(f".{path.name}.part")
            with zipfile.ZipFile(part, "w", zipfile.ZIP_STORED) as z:
                for o in outputs:
                    z.write(o, o.relative_to(folder).as_posix())
            os.replace(part, path)
    catalogue.audit(who.name, "pack_downloaded", leaver.row.nhs_number, **who.audit_detail(), leaver=leaver_id,
                    pack=pack_id, file=name)
    return path, name


def mark_sent(catalogue: Catalogue, who: Who, leaver_id: int, note: str | None = None) -> Leaver:
    """The pack left the practice (courier, post, NDR upload); a practice admin or clerk says so."""
    who.require(Permission.hand_over)
    leaver = get(catalogue, who, leaver_id)
    if leaver.state is not State.packed:
        raise illegal(leaver, "marked sent", {State.packed})
    last = store.leaver_packs(catalogue, leaver_id)[-1]
    return move(catalogue, who, leaver, State.sent, free_text(note, "the note") if note else "",
                {"pack": last.pack_id, "ods_code": last.ods_code, "movement_ref": last.movement_ref})


def confirm_receipt(catalogue: Catalogue, who: Who, leaver_id: int, verify_json: str | None = None,
                    note: str | None = None) -> Leaver:
    """The receiving practice has the pack; optionally with its `lgd verify --json` result, which must have passed."""
    who.require(Permission.hand_over)
    leaver = get(catalogue, who, leaver_id)
    if leaver.state is not State.sent:
        raise illegal(leaver, "confirmed received", {State.sent})
    built = store.leaver_packs(catalogue, leaver_id)
    detail: dict[str, Any] = {"pack": built[-1].pack_id}
    if verify_json is not None and verify_json.strip():
        detail["verify"] = _verify_result(verify_json, leaver.row.nhs_number, {p.sha256 for p in built})
    return move(catalogue, who, leaver, State.receipt_confirmed, free_text(note, "the note") if note else "", detail)


def _verify_result(text: str, nhs_number: str, pack_sha256: set[str]) -> dict[str, Any]:
    """The receiver's `lgd verify --json` result, if it passed and is of one of this leaver's packs."""
    if len(text) > MAX_VERIFY_JSON:
        raise LgdError(f"the verify result is {len(text):,} characters; lgd verify --json prints a few thousand",
                       ExitCode.usage, "bad_verify_result")
    try:
        result = json.loads(text)
    except json.JSONDecodeError as e:
        raise LgdError(f"the verify result is not JSON ({e.msg} at character {e.pos}); paste what "
                       "lgd verify --json printed", ExitCode.usage, "bad_verify_result") from None
    if not isinstance(result, dict) or not isinstance(result.get("ok"), bool):
        raise LgdError('the verify result is not what lgd verify --json prints (an object with "ok")',
                       ExitCode.usage, "bad_verify_result")
    if not result["ok"]:
        raise LgdError("the receiving practice's lgd verify reports the pack failed its checks; it is not received. "
                       "Build and send a new pack (lgd leavers pack), then confirm", ExitCode.partial,
                       "verify_failed", 409)
    manifest = result.get("manifest") if isinstance(result.get("manifest"), dict) else {}
    signed = {f.get("sha256") for f in manifest.get("files", []) if isinstance(f, dict) and f.get("name") == "pack.pdf"}
    if manifest.get("patient") not in (None, nhs_number) or (signed and not signed & pack_sha256):
        raise LgdError("the verify result is of another pack (its patient or pack.pdf is not this leaver's): check "
                       "which pack the receiving practice verified", ExitCode.partial, "verify_other_pack", 409)
    return result
