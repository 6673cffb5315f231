"""lgd serve: receive a transfer pack from another practice in the browser and through the JSON API.

    GET  /receive                    the form (a clerk or practice admin: the `digitise` permission), and the
                                     packs received so far
    POST /receive                    multipart: pack (file), passphrase, fingerprint or known (a key already
                                     trusted), csrf; the verify result and a link to the patient's pages
    GET  /api/v1/received-packs      every pack received here, newest first, with its provenance
    POST /api/v1/received-packs      multipart: pack, passphrase, fingerprint; `lgd receive --json`'s document

Both receive through pipelines.service.receiving, which checks the role, keeps the upload in a
private folder of the archive's tmp/ for the length of the request, and removes it after. The
passphrase is passed to 7-Zip and nowhere else: no log line, audit record or page carries it.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2
from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.responses import Response
from fastapi.templating import Jinja2Templates

from pipelines.errors import ExitCode, LgdError
from pipelines.service import receiving
from pipelines.service.access import Permission, Who

from .auth import SESSION_COOKIE
from .pages import HERE, Pages, _html

if TYPE_CHECKING:  # app.py imports this module
    from .app import Service

PATHS = ("/receive", "/api/v1/received-packs")
ERROR_TITLES = {400: "That pack cannot be received as sent", 403: "Your role may not receive packs",
                404: "Not found", 409: "Refused", 413: "Too large", 422: "The pack failed its checks"}


def body_limit(path: str) -> int:
    """The largest request body these routes take (0 for any other path): a pack and its form fields."""
    return receiving.MAX_PACK + 64 * 1024 if path in PATHS else 0


def register(app: FastAPI, service: Service, who_of) -> None:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True,
                             undefined=jinja2.StrictUndefined)
    views = ReceivePages(service, Jinja2Templates(env=env))
    app.add_api_route("/receive", views.form, methods=["GET"], include_in_schema=False)
    app.add_api_route("/receive", views.receive, methods=["POST"], include_in_schema=False)

    def api_list(request: Request) -> dict[str, Any]:
        with service.catalogue() as catalogue:
            return {"received": receiving.received_list(catalogue, who_of(request, service, catalogue))}

    def api_receive(request: Request, pack: UploadFile | None = File(None), passphrase: str = Form(""),
                    fingerprint: str = Form("")) -> dict[str, Any]:
        with service.catalogue() as catalogue:
            who = who_of(request, service, catalogue)
        done = _receive(service.archive, who, pack, passphrase, fingerprint)
        return done.to_json() | {"link": f"/patients/{done.nhs_number}"}

    app.add_api_route("/api/v1/received-packs", api_list, methods=["GET"])
    app.add_api_route("/api/v1/received-packs", api_receive, methods=["POST"], status_code=201)


def _receive(archive: Path, who: Who, upload: UploadFile | None, passphrase: str, fingerprint: str,
             chosen: bool = False):
    """Save the upload in a private folder of the archive, receive it, remove the folder."""
    who.require(Permission.digitise)  # before a byte of the upload is written
    if upload is None or not upload.filename:
        raise LgdError("choose the pack file to upload (lgd-pack.7z, lgd-pack-001.iso, or the .zip of a pack of "
                       "several files)", ExitCode.usage, "no_upload", 400)
    name = receiving.upload_name(upload.filename)
    with receiving.upload_folder(archive) as folder:
        saved = folder / name
        size = 0
        with open(saved, "xb") as out:
            while chunk := upload.file.read(1 << 20):
                size += len(chunk)
                if size > receiving.MAX_PACK:
                    raise LgdError(f"the pack is larger than {receiving.MAX_PACK // (1 << 20)} MB; receive it from "
                                   "the shell with lgd receive", ExitCode.usage, "too_large", 413)
                out.write(chunk)
        if size == 0:
            raise LgdError("the uploaded pack is empty", ExitCode.usage, "empty_upload", 400)
        return receiving.receive_upload(archive, who, saved, passphrase, fingerprint.strip() or None,
                                        uploaded_as=f"uploaded {Path(upload.filename).name[:100]}", chosen=chosen)


class ReceivePages(Pages):
    def error(self, request: Request, status: int, message: str) -> Response:
        session = self.service.sessions.get(request.cookies.get(SESSION_COOKIE))
        return self.render(request, "receive_error.html", status, session,
                           title=ERROR_TITLES.get(status, "Something went wrong"), message=message)

    def _page(self, request: Request, session, status: int = 200, **context: Any) -> Response:
        with self.service.catalogue() as catalogue:
            known = receiving.known_signers(catalogue)
            received = receiving.received_list(catalogue, session.who)[:20]
        return self.render(request, "receive.html", status, session, known=known, received=received,
                           max_mb=receiving.MAX_PACK // (1 << 20), **context)

    @_html
    def form(self, request: Request) -> Response:
        session = self.session(request)
        session.who.require(Permission.digitise)
        return self._page(request, session, done=None)

    @_html
    def receive(self, request: Request, csrf: str = Form(""), pack: UploadFile | None = File(None),
                passphrase: str = Form(""), fingerprint: str = Form(""), known: str = Form("")) -> Response:
        session = self.session(request)
        if not (csrf and secrets.compare_digest(csrf, session.csrf)):
            raise LgdError("The form did not come from one of lgd's own pages (or the page was older than your "
                           "sign-in), so nothing was received; open the page again and repeat.",
                           ExitCode.not_permitted, "csrf", 403)
        typed = fingerprint.strip()
        done = _receive(self.service.archive, session.who, pack, passphrase, typed or known, chosen=not typed)
        return self._page(request, session, done=done.to_json())
