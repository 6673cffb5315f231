"""`lgd serve`'s application: the JSON API under /api/v1/ over the same functions as the shell.

Handlers parse the request, find who is asking (auth.py), call pipelines.service or
pipelines.search, and return what they return. Every failure is an LgdError rendered as
{"error": code, "message": sentence} with the error's HTTP status; nothing else reaches the
client (no tracebacks, no stack of the archive's paths).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import Body, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from index import ArchiveError, Catalogue, FullText
from pipelines.cli_common import date_bound
from pipelines.clinical import lgd_version
from pipelines.errors import ExitCode, LgdError, NotSignedIn
from pipelines.search import open_catalogue
from pipelines.service import accounts, audit, notes, review
from pipelines.service.access import Who

from . import entry_cover_api, leavers_api, pages, receive_pages, work_pages
from .auth import (CSRF_COOKIE, CSRF_HEADER, SESSION_COOKIE, SESSION_IDLE_SECONDS, LoginThrottle, Sessions, bearer,
                   check_csrf, client_address)
from .leavers_views import MAX_UPLOAD
from .oidc import OIDC_COOKIE, PENDING_SECONDS, Oidc, OidcConfig

log = logging.getLogger("lgd.serve")
MAX_BODY = 64 * 1024  # JSON bodies here are a user name and password; nothing legitimate is larger


@dataclass
class Service:
    archive: Path
    sessions: Sessions = field(default_factory=Sessions)
    throttle: LoginThrottle = field(default_factory=LoginThrottle)
    oidc: Oidc | None = None

    _threads: threading.local = field(default_factory=threading.local)

    @contextmanager
    def catalogue(self) -> Iterator[Catalogue]:
        catalogue = open_catalogue(self.archive)
        try:
            yield catalogue
        finally:
            catalogue.close()

    @contextmanager
    def archive_for_search(self) -> Iterator[tuple[Catalogue, FullText]]:
        """The catalogue, opened per request, and this worker thread's full-text index, kept open.

        A first search on a freshly opened index costs about 4x a search on an open one (its
        term dictionaries are read in); Whoosh searchers are not shared between threads, so each
        of the server's threads keeps its own, and FullText reopens it after any commit or rebuild.
        """
        with self.catalogue() as catalogue:
            fulltext = getattr(self._threads, "fulltext", None)
            if fulltext is None:
                fulltext = self._threads.fulltext = FullText.open(self.archive, create=False)
            yield catalogue, fulltext


def create_app(archive: Path, oidc: OidcConfig | None = None, queue: str | None = None) -> FastAPI:
    service = Service(Path(archive), oidc=Oidc(oidc) if oidc else None)
    open_catalogue(service.archive).close()  # refuse at start, not at the first request, an archive that is not there
    app = FastAPI(title="lgd", version=lgd_version(), openapi_url="/api/v1/openapi.json", docs_url=None,
                  redoc_url=None)
    app.state.service = service
    _errors(app)
    _guards(app)
    _routes(app, service)
    pages.register(app, service)  # the browser's pages (pages.py) beside the API
    leavers_api.register(app, service, _who)  # /api/v1/leavers (leavers_api.py)
    receive_pages.register(app, service, _who)  # /receive and /api/v1/received-packs (receive_pages.py)
    work_pages.register(app, service, _who, queue)  # /work and /api/v1/work: the queue and quarantine (work_pages.py)
    entry_cover_api.register(app, service, _who)  # /api/v1/patients/{nhs}/entry-covers (entry_cover_api.py)
    return app


def _errors(app: FastAPI) -> None:
    @app.exception_handler(LgdError)
    async def lgd_error(request: Request, exc: LgdError) -> JSONResponse:
        return JSONResponse(exc.as_json(), status_code=exc.http_status)

    @app.exception_handler(ArchiveError)
    async def archive_error(request: Request, exc: ArchiveError) -> JSONResponse:
        log.error("archive error: %s", exc)
        return JSONResponse({"error": "archive_unavailable", "message": "the archive cannot be used just now"},
                            status_code=503)

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        where = ", ".join(".".join(str(p) for p in e.get("loc", ())[1:]) or "body" for e in exc.errors()[:3])
        return JSONResponse({"error": "bad_request", "message": f"missing or malformed: {where}"}, status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "no_such_route", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return JSONResponse({"error": code, "message": str(exc.detail)}, status_code=exc.status_code)

    @app.exception_handler(Exception)
    async def internal(request: Request, exc: Exception) -> JSONResponse:
        log.exception("internal error on %s %s", request.method, request.url.path)
        return JSONResponse({"error": "internal", "message": "an internal error in lgd; the server log has details"},
                            status_code=500)


def _guards(app: FastAPI) -> None:
    @app.middleware("http")
    async def limits_and_headers(request: Request, call_next):
        length = request.headers.get("content-length")
        path = request.url.path  # coded records and worklists are uploaded to the leavers pages and API
        limit = MAX_UPLOAD if path.startswith("/leavers") or leavers_api.is_upload(path) else MAX_BODY
        limit = max(limit, receive_pages.body_limit(path))  # a transfer pack being received
        if length is not None and (not length.isdigit() or int(length) > limit):
            message = f"request bodies are limited to {limit} bytes"
            if not path.startswith("/api/"):  # a browser's form: a page to read, not JSON
                back = "/receive" if path.startswith("/receive") else "/leavers"
                return HTMLResponse(f'<!doctype html><title>Too large · lgd</title><link rel="stylesheet" '
                                    f'href="/static/lgd.css"><main><h1>Too large</h1><p class="message">The upload '
                                    f'was refused: {message}. Use lgd from the shell for larger files.</p><p><a '
                                    f'href="{back}">Back</a></p></main>', status_code=413)
            return JSONResponse({"error": "too_large", "message": message}, status_code=413)
        response = await call_next(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        response.headers.setdefault("Cache-Control", "no-store")  # patient data stays out of shared caches
        return response


def _who(request: Request, service: Service, catalogue: Catalogue) -> Who:
    token = bearer(request.headers.get("authorization"))
    if token is not None:
        who = accounts.who_of_token(catalogue, token, client_address(request))
        if who is None:
            raise NotSignedIn("the API token is not valid (revoked, or its user disabled)", "bad_token")
        return who
    session = service.sessions.get(request.cookies.get(SESSION_COOKIE))
    if session is None:
        raise NotSignedIn()
    check_csrf(request.method, session, request.headers.get(CSRF_HEADER))
    return session.who


def _outcome(done: review.Outcome) -> dict[str, Any]:
    return {"id": done.page.id, "number": done.page.number, "source": done.page.source, "page": done.page.page,
            "decision": done.decision, "pending": done.pending, "by": done.by, "reason": done.reason}


def set_session_cookies(request: Request, response: Response, sid: str, csrf: str) -> None:
    """The session cookie (HttpOnly) and its CSRF token (readable by the page's script), Secure over TLS."""
    secure = request.url.scheme == "https"
    response.set_cookie(SESSION_COOKIE, sid, max_age=SESSION_IDLE_SECONDS, httponly=True, samesite="strict",
                        secure=secure, path="/")
    response.set_cookie(CSRF_COOKIE, csrf, max_age=SESSION_IDLE_SECONDS, httponly=False, samesite="strict",
                        secure=secure, path="/")


def _callback(request: Request) -> str:
    return str(request.base_url).rstrip("/") + "/login/oidc/callback"


def _routes(app: FastAPI, service: Service) -> None:
    @app.post("/api/v1/session")
    def sign_in(request: Request, body: Any = Body(default=None)) -> Response:  # sync: Argon2 runs in a worker thread
        if not isinstance(body, dict) or not isinstance(body.get("username"), str) \
                or not isinstance(body.get("password"), str):
            raise LgdError('send JSON {"username": ..., "password": ...}', ExitCode.usage, "bad_request")
        name, client = body["username"][:100], client_address(request)
        service.throttle.check(name, client)
        with service.catalogue() as catalogue:
            try:
                who = accounts.sign_in(catalogue, name, body["password"], client)
            except NotSignedIn:
                service.throttle.failed(name, client)
                raise
        service.throttle.succeeded(name)
        sid, session = service.sessions.start(who)
        response = JSONResponse({"user": who.name, "role": who.role.value, "csrf": session.csrf})
        set_session_cookies(request, response, sid, session.csrf)
        return response

    @app.get("/login/oidc", include_in_schema=False)
    def oidc_start(request: Request) -> Response:
        if service.oidc is None:
            raise LgdError("single sign-on is not configured on this server (lgd serve --oidc-issuer)", ExitCode.usage,
                           "no_oidc", 404)
        url, browser = service.oidc.start(_callback(request))
        response = RedirectResponse(url, status_code=303)
        # Lax, not Strict: the provider's answer arrives as a navigation from its own site.
        response.set_cookie(OIDC_COOKIE, browser, max_age=PENDING_SECONDS, httponly=True, samesite="lax",
                            secure=request.url.scheme == "https", path="/login/oidc")
        return response

    @app.get("/login/oidc/callback", include_in_schema=False)
    def oidc_finish(request: Request, state: str = "", code: str = "") -> Response:
        if service.oidc is None:
            raise LgdError("single sign-on is not configured on this server", ExitCode.usage, "no_oidc", 404)
        name = service.oidc.finish(_callback(request), state, code, request.cookies.get(OIDC_COOKIE))
        with service.catalogue() as catalogue:
            who = accounts.sign_in_vouched(catalogue, name, client_address(request), "oidc")
        # A page of our own moves on to "/", so the browser sends the new SameSite=Strict cookie
        # (it would not on a redirect still counted as the provider's navigation).
        response = HTMLResponse('<!doctype html><meta http-equiv="refresh" content="0;url=/"><title>lgd</title>'
                                '<p>Signed in. <a href="/">Continue</a></p>')
        sid, session = service.sessions.start(who)
        set_session_cookies(request, response, sid, session.csrf)
        response.delete_cookie(OIDC_COOKIE, path="/login/oidc")
        return response

    @app.delete("/api/v1/session", status_code=204)
    def sign_out(request: Request) -> Response:
        with service.catalogue() as catalogue:
            who = _who(request, service, catalogue)
            catalogue.audit(who.name, "logout", None, **who.audit_detail())
        service.sessions.end(request.cookies.get(SESSION_COOKIE))
        response = Response(status_code=204)
        response.delete_cookie(SESSION_COOKIE, path="/")
        response.delete_cookie(CSRF_COOKIE, path="/")
        return response

    @app.get("/api/v1/session")
    def whoami(request: Request) -> dict[str, Any]:
        with service.catalogue() as catalogue:
            who = _who(request, service, catalogue)
        return {"user": who.name, "role": who.role.value}

    @app.get("/api/v1/search")
    def search_notes(request: Request, q: str = "", patient: str | None = None, kind: str | None = None,
                     limit: int = 10) -> dict[str, Any]:
        params = request.query_params
        date_from, date_to = date_bound(params.get("from"), "from", False), date_bound(params.get("to"), "to", True)
        with service.archive_for_search() as (catalogue, fulltext):
            who = _who(request, service, catalogue)
            found = notes.search_notes(catalogue, fulltext, who, q, patient=patient, date_from=date_from,
                                       date_to=date_to, kind=kind, limit=limit)
        return {"hits": [h.as_json() for h in found.hits], "total": found.total}

    @app.get("/api/v1/patients")
    def patients(request: Request, nhs_number: str | None = None, name: str | None = None,
                 dob: str | None = None) -> dict[str, Any]:
        born = date_bound(dob, "dob", False)
        with service.catalogue() as catalogue:
            who = _who(request, service, catalogue)
            return {"patients": notes.find_patients(catalogue, who, nhs_number=nhs_number, name=name, dob=born)}

    @app.get("/api/v1/patients/{nhs_number}/pages")
    def patient_pages(request: Request, nhs_number: str) -> dict[str, Any]:
        with service.catalogue() as catalogue:
            who = _who(request, service, catalogue)
            return notes.patient_pages(catalogue, who, notes.valid_nhs_number(nhs_number))

    @app.post("/api/v1/patients/{nhs_number}/decisions")
    def decide_page(request: Request, nhs_number: str, body: Any = Body(default=None)) -> dict[str, Any]:
        """{"page": number | id | SOURCE:PAGE, "decision": "include" | "omit" | "clear", "reason": ...}"""
        if not isinstance(body, dict) or body.get("decision") not in ("include", "omit", "clear") \
                or not isinstance(body.get("page"), (str, int)) or not isinstance(body.get("reason"), str):
            raise LgdError('send JSON {"page": ..., "decision": "include"|"omit"|"clear", "reason": ...}',
                           ExitCode.usage, "bad_request")
        with service.catalogue() as catalogue:
            who = _who(request, service, catalogue)
            done = review.decide(catalogue, who, notes.valid_nhs_number(nhs_number), str(body["page"]),
                                 None if body["decision"] == "clear" else body["decision"], body["reason"])
        return _outcome(done)

    @app.post("/api/v1/patients/{nhs_number}/confirmations")
    def confirm_page(request: Request, nhs_number: str, body: Any = Body(default=None)) -> dict[str, Any]:
        """{"page": ...}: a second clinician confirms the omission waiting on that page."""
        if not isinstance(body, dict) or not isinstance(body.get("page"), (str, int)):
            raise LgdError('send JSON {"page": ...}', ExitCode.usage, "bad_request")
        with service.catalogue() as catalogue:
            who = _who(request, service, catalogue)
            done = review.confirm(catalogue, who, notes.valid_nhs_number(nhs_number), str(body["page"]))
        return _outcome(done) | {"confirmed_by": who.name}

    @app.get("/api/v1/pages/{page_id}")
    def page(request: Request, page_id: str) -> dict[str, Any]:
        with service.catalogue() as catalogue:
            who = _who(request, service, catalogue)
            return notes.open_page(catalogue, who, page_id)

    @app.get("/api/v1/pages/{page_id}/image")
    def page_image(request: Request, page_id: str) -> Response:
        with service.catalogue() as catalogue:
            who = _who(request, service, catalogue)
            data = notes.page_image(catalogue, who, service.archive, page_id)
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})

    @app.get("/api/v1/audit")
    def audit_log(request: Request, patient: str | None = None, user: str | None = None,
                  limit: int = audit.MAX_EVENTS, format: str = "json") -> Response:
        params = request.query_params
        date_from, date_to = date_bound(params.get("from"), "from", False), date_bound(params.get("to"), "to", True)
        with service.catalogue() as catalogue:
            who = _who(request, service, catalogue)
            found = audit.events(catalogue, who, nhs_number=notes.valid_nhs_number(patient) if patient else None,
                                 user=user, date_from=date_from, date_to=date_to, limit=limit)
        if format == "csv":
            return Response(audit.as_csv(found), media_type="text/csv",
                            headers={"Content-Disposition": 'attachment; filename="lgd-audit.csv"'})
        return JSONResponse({"events": found})
