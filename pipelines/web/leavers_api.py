"""`lgd serve`'s JSON API for the leavers worklist, under /api/v1/leavers, over pipelines.service as `lgd leavers` is.

    GET  /api/v1/leavers?state=&patient=&open=1        the worklist, oldest in its state first
    POST /api/v1/leavers                               {"nhs_number", "ods_code", "movement_ref"?}
    POST /api/v1/leavers/import                        a CSV as the body (text/csv): all rows or none
    POST /api/v1/leavers/reconcile-all                 every leaver waiting with a coded record
    GET  /api/v1/leavers/{id}                          pages with decisions and reasons, totals, history, packs
    POST /api/v1/leavers/{id}/coded-record             the coded record file as the body (up to 32 MB, as the pages)
    POST /api/v1/leavers/{id}/reconcile
    POST /api/v1/leavers/{id}/decisions                {"page", "decision": include|omit|clear, "reason"}
    POST /api/v1/leavers/{id}/confirmations            {"page"}: a second clinician confirms an omission
    POST /api/v1/leavers/{id}/sign-off                 {"note"?}
    POST /api/v1/leavers/{id}/packs                    {"format", "media"?, "granularity"?, "with_electronic"?,
                                                        "keep_minimal"?}: the passphrase, once
    GET  /api/v1/leavers/{id}/packs/{pack_id}/file     the pack's file (a zip when it has several)
    POST /api/v1/leavers/{id}/sent                     {"note"?}
    POST /api/v1/leavers/{id}/receipt                  {"verify"?: lgd verify --json output, "note"?}
    POST /api/v1/leavers/{id}/return                   {"reason"}

A step the leaver's state does not allow is 409 {"error": "illegal_transition", "message"}.
"""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import Body, FastAPI, Query, Request
from fastapi.responses import FileResponse, JSONResponse

from index import Catalogue
from pipelines.errors import ExitCode, LgdError
from pipelines.service import handover, leaver_review, leavers, worklist
from pipelines.service.access import Permission, Who

if TYPE_CHECKING:  # app.py imports this module
    from .app import Service

WhoOf = Callable[[Request, "Service", Catalogue], Who]


def is_upload(path: str) -> bool:
    """Whether `path` takes a file as its body (a coded record, a worklist CSV), which may exceed the JSON limit."""
    return path == "/api/v1/leavers/import" or (path.startswith("/api/v1/leavers/") and path.endswith("/coded-record"))


def _fields(body: Any, required: dict[str, type | tuple], optional: dict[str, type | tuple] | None = None) -> dict:
    """The JSON object's fields, checked for presence and type; anything else is a 400 naming what to send."""
    optional = optional or {}
    body = {} if body is None and not required else body
    wanted = ", ".join([f'"{k}"' for k in required] + [f'"{k}"?' for k in optional])
    if not isinstance(body, dict):
        raise LgdError(f"send a JSON object: {{{wanted}}}", ExitCode.usage, "bad_request")
    for name, kind in required.items():
        if not isinstance(body.get(name), kind):
            raise LgdError(f'"{name}" is missing or of the wrong type; send {{{wanted}}}', ExitCode.usage, "bad_request")
    for name, kind in optional.items():
        if body.get(name) is not None and not isinstance(body.get(name), kind):
            raise LgdError(f'"{name}" is of the wrong type; send {{{wanted}}}', ExitCode.usage, "bad_request")
    return body


def _outcome(done, who: Who | None = None) -> dict[str, Any]:
    out = {"id": done.page.id, "number": done.page.number, "source": done.page.source, "page": done.page.page,
           "decision": done.decision, "pending": done.pending, "by": done.by, "reason": done.reason}
    return out | ({"confirmed_by": who.name} if who else {})


def register(app: FastAPI, service: Service, who_of: WhoOf) -> None:
    """Add the leavers routes; `who_of(request, service, catalogue)` is app.py's sign-in and CSRF check."""

    def run(request: Request, step: Callable[[Catalogue, Who], Any]) -> Any:
        with service.catalogue() as catalogue:
            return step(catalogue, who_of(request, service, catalogue))

    @app.get("/api/v1/leavers")
    def worklist_(request: Request, state: str | None = None, patient: str | None = None,
                  open_only: bool = Query(False, alias="open")) -> dict[str, Any]:
        return run(request, lambda c, w: {"leavers": [lv.to_json() for lv in leavers.worklist(
            c, w, state=state, nhs_number=patient, include_done=not open_only)]})

    @app.post("/api/v1/leavers", status_code=201)
    def add(request: Request, body: Any = Body(default=None)) -> dict[str, Any]:
        b = _fields(body, {"nhs_number": str, "ods_code": str}, {"movement_ref": str})
        return run(request, lambda c, w: {"leaver": leavers.add(c, w, b["nhs_number"], b["ods_code"],
                                                                  b.get("movement_ref")).to_json()})

    @app.post("/api/v1/leavers/import", status_code=201)
    async def import_csv(request: Request) -> JSONResponse:
        raw = await request.body()
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise LgdError("the CSV is not UTF-8 text; save it from the spreadsheet as CSV UTF-8", ExitCode.usage,
                           "bad_csv") from None
        rows = worklist.read_csv(text, None)  # checked before the archive is touched
        from starlette.concurrency import run_in_threadpool

        added = await run_in_threadpool(run, request, lambda c, w: worklist.add_rows(c, w, rows))
        return JSONResponse({"leavers": [lv.to_json() for lv in added]}, status_code=201)

    @app.post("/api/v1/leavers/reconcile-all")
    def reconcile_all(request: Request) -> dict[str, Any]:
        return run(request, lambda c, w: {"results": leavers.reconcile_all(c, w)})

    @app.get("/api/v1/leavers/{leaver_id}")
    def one(request: Request, leaver_id: int) -> dict[str, Any]:
        return run(request, lambda c, w: leaver_review.details(c, w, leaver_id))

    @app.post("/api/v1/leavers/{leaver_id}/coded-record")
    async def coded_record(request: Request, leaver_id: int) -> dict[str, Any]:
        from starlette.concurrency import run_in_threadpool

        raw = await request.body()
        # Only the name's safe characters: it becomes a file name in a private temporary folder.
        given = re.sub(r"[^A-Za-z0-9._-]", "_", Path(request.headers.get("x-file-name") or "").name)
        name = given.lstrip(".")[:100] or "coded-record"
        return await run_in_threadpool(run, request, lambda c, w: _store_coded(c, w, leaver_id, raw, name))

    @app.post("/api/v1/leavers/{leaver_id}/reconcile")
    def reconcile(request: Request, leaver_id: int) -> dict[str, Any]:
        return run(request, lambda c, w: {"leaver": leavers.reconcile(c, w, leaver_id).to_json()})

    @app.post("/api/v1/leavers/{leaver_id}/decisions")
    def decide(request: Request, leaver_id: int, body: Any = Body(default=None)) -> dict[str, Any]:
        b = _fields(body, {"page": (str, int), "decision": str, "reason": str})
        if b["decision"] not in ("include", "omit", "clear"):
            raise LgdError('"decision" is include, omit or clear', ExitCode.usage, "bad_request")
        decision = None if b["decision"] == "clear" else b["decision"]
        return run(request, lambda c, w: _outcome(leavers.decide_page(c, w, leaver_id, str(b["page"]), decision,
                                                                      b["reason"])))

    @app.post("/api/v1/leavers/{leaver_id}/confirmations")
    def confirm(request: Request, leaver_id: int, body: Any = Body(default=None)) -> dict[str, Any]:
        b = _fields(body, {"page": (str, int)})
        return run(request, lambda c, w: _outcome(leavers.confirm_page(c, w, leaver_id, str(b["page"])), w))

    @app.post("/api/v1/leavers/{leaver_id}/sign-off")
    def sign_off(request: Request, leaver_id: int, body: Any = Body(default=None)) -> dict[str, Any]:
        b = _fields(body or {}, {}, {"note": str})
        return run(request, lambda c, w: {"leaver": leavers.sign_off(c, w, leaver_id, b.get("note")).to_json()})

    @app.post("/api/v1/leavers/{leaver_id}/packs", status_code=201)
    def pack(request: Request, leaver_id: int, body: Any = Body(default=None)) -> dict[str, Any]:
        b = _fields(body or {}, {}, {"format": str, "media": str, "granularity": str, "with_electronic": bool,
                                     "keep_minimal": bool})
        return run(request, lambda c, w: handover.pack(
            c, w, leaver_id, b.get("format") or "7z", media=b.get("media"), granularity=b.get("granularity") or "page",
            with_electronic=bool(b.get("with_electronic")), keep_minimal=bool(b.get("keep_minimal"))).to_json())

    @app.get("/api/v1/leavers/{leaver_id}/packs")
    def packs(request: Request, leaver_id: int) -> dict[str, Any]:
        return run(request, lambda c, w: {"packs": handover.packs(c, w, leaver_id)})

    @app.get("/api/v1/leavers/{leaver_id}/packs/{pack_id}/file")
    def pack_file(request: Request, leaver_id: int, pack_id: int) -> FileResponse:
        path, name = run(request, lambda c, w: handover.pack_file(c, w, leaver_id, pack_id))
        return FileResponse(path, media_type="application/octet-stream", filename=name)

    @app.post("/api/v1/leavers/{leaver_id}/sent")
    def sent(request: Request, leaver_id: int, body: Any = Body(default=None)) -> dict[str, Any]:
        b = _fields(body or {}, {}, {"note": str})
        return run(request, lambda c, w: {"leaver": handover.mark_sent(c, w, leaver_id, b.get("note")).to_json()})

    @app.post("/api/v1/leavers/{leaver_id}/receipt")
    def receipt(request: Request, leaver_id: int, body: Any = Body(default=None)) -> dict[str, Any]:
        b = _fields(body or {}, {}, {"verify": (str, dict), "note": str})
        verify = json.dumps(b["verify"]) if isinstance(b.get("verify"), dict) else b.get("verify")
        return run(request, lambda c, w: {"leaver": handover.confirm_receipt(c, w, leaver_id, verify,
                                                                             b.get("note")).to_json()})

    @app.post("/api/v1/leavers/{leaver_id}/return")
    def return_(request: Request, leaver_id: int, body: Any = Body(default=None)) -> dict[str, Any]:
        b = _fields(body, {"reason": str})
        return run(request, lambda c, w: {"leaver": leavers.return_for_rescan(c, w, leaver_id, b["reason"]).to_json()})


def _store_coded(catalogue: Catalogue, who: Who, leaver_id: int, raw: bytes, name: str) -> dict[str, Any]:
    """A coded record sent as the request body, stored for the leaver's patient as `lgd coded import` stores it."""
    from pipelines.records.command import check_coded_file, import_coded_file

    who.require(Permission.decide)
    leaver = leavers.get(catalogue, who, leaver_id)
    if leaver.state not in leavers.BEFORE_SENT:
        raise leavers.illegal(leaver, "given a coded record", leavers.BEFORE_SENT)
    if not raw:
        raise LgdError("send the coded record file as the request body", ExitCode.usage, "bad_request")
    # The readers detect the format from a file; a private temporary one, removed at once.
    with tempfile.TemporaryDirectory(prefix="coded-", dir=catalogue.archive / "tmp"
                                     if (catalogue.archive / "tmp").is_dir() else None) as folder:
        path = Path(folder) / name
        path.write_bytes(raw)
        try:
            checked = check_coded_file(path, leaver.row.nhs_number)
        except LgdError as e:  # the shell's "refused" (exit 1) is the body's fault here, not a missing route
            raise LgdError(str(e), e.exit_code, e.code, 422 if e.http_status == 404 else e.http_status) from None
        summary = import_coded_file(catalogue, checked, actor=who.name)
    return summary | {"leaver": leavers.get(catalogue, who, leaver_id).to_json()}
