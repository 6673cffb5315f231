"""lgd serve's pages for browsers: sign in, find a patient, search, read a page, the audit log.

Server-rendered with Jinja2 (autoescaped) over the API's own sessions and sign-in throttle;
every look goes through pipelines.service or pipelines.search, which check the role and write
the audit. The pages run no script: boxes over a page image are SVG rectangles placed in
percentages computed here, and zoom is CSS, so the Content-Security-Policy forbids all script.
"""

from __future__ import annotations

import functools
import logging
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import jinja2
from fastapi import FastAPI, Form, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from index import ArchiveError, Catalogue
from pipelines.cli_common import date_bound
from pipelines.errors import ExitCode, LgdError, NotSignedIn
from pipelines.search import KINDS
from pipelines.service import accounts, audit, notes
from pipelines.service.access import Permission, Who

from .auth import CSRF_COOKIE, SESSION_COOKIE, SESSION_IDLE_SECONDS, Session, client_address

if TYPE_CHECKING:  # app.py imports this module, so the name is only for annotations
    from .app import Service

log = logging.getLogger("lgd.serve.pages")
HERE = Path(__file__).resolve().parent
# Inline script and style are refused too: a string that slipped past escaping still could not run.
CSP = ("default-src 'self'; img-src 'self'; style-src 'self'; frame-ancestors 'none'; form-action 'self'; "
       "base-uri 'none'")
LOGIN_COOKIE = "lgd_login"  # double-submit token of the sign-in form, so no other site can sign a browser in
SEARCH_HITS = 50  # one screen of results; narrow the search for more
HIGHLIGHT_HITS = 200  # pages of one patient searched to find the page being opened
AUDIT_ROWS = 500
ENTRY_STATUS = {"covered": "covered by the coded record", "paper-only": "paper only",
                "uncertain": "uncertain: a clinician should read it"}


def register(app: FastAPI, service: Service) -> None:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True,
                             undefined=jinja2.StrictUndefined)
    env.globals["ENTRY_STATUS"] = ENTRY_STATUS
    pages = Pages(service, Jinja2Templates(env=env))
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    for path, view, methods in (("/login", pages.login_form, ["GET"]), ("/login", pages.login, ["POST"]),
                                ("/logout", pages.logout, ["POST"]), ("/", pages.home, ["GET"]),
                                ("/patients/{nhs}", pages.patient, ["GET"]), ("/pages/{page_id}", pages.page, ["GET"]),
                                ("/audit", pages.audit_log, ["GET"])):
        app.add_api_route(path, view, methods=methods, include_in_schema=False)
    from . import leavers_pages  # it builds on Pages: imported here, after this module is whole

    leavers_pages.register(app, pages)  # the leavers worklist, review screen and pack handover


def _html(view: Callable[..., Response]) -> Callable[..., Response]:
    """The edge of every page: an error becomes a page of its own (or the sign-in page), never a traceback."""

    @functools.wraps(view)
    def guarded(self: Pages, request: Request, *args: Any, **kwargs: Any) -> Response:
        try:
            return view(self, request, *args, **kwargs)
        except NotSignedIn:
            here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse("/login?" + urlencode({"next": here}), status_code=303)
        except LgdError as e:
            return self.error(request, e.http_status, str(e))
        except ArchiveError as e:
            log.error("archive error on %s: %s", request.url.path, e)
            return self.error(request, 503, "The archive cannot be used just now; try again in a minute or "
                                             "ask the practice's lgd administrator.")
        except Exception:  # noqa: BLE001 - the web edge: log the traceback, show a sentence
            log.exception("internal error on %s %s", request.method, request.url.path)
            return self.error(request, 500, "An internal error in lgd; the server log has the details.")

    return guarded


class Pages:
    def __init__(self, service: Service, templates: Jinja2Templates) -> None:
        self.service = service
        self.templates = templates

    # -- helpers -------------------------------------------------------------------------

    def render(self, request: Request, template: str, status: int = 200, session: Session | None = None,
               **context: Any) -> Response:
        who = session.who if session else None
        context |= {"who": who, "csrf": session.csrf if session else "",
                    "may_view": bool(who and who.may(Permission.view)),
                    "may_audit": bool(who and who.may(Permission.read_audit))}
        response = self.templates.TemplateResponse(request, template, context, status_code=status)
        response.headers["Content-Security-Policy"] = CSP
        return response

    def error(self, request: Request, status: int, message: str) -> Response:
        session = self.service.sessions.get(request.cookies.get(SESSION_COOKIE))
        title = {400: "That request cannot be answered", 403: "Your role may not see this page",
                 404: "Not found", 429: "Too many attempts"}.get(status, "Something went wrong")
        return self.render(request, "error.html", status, session, title=title, message=message)

    def session(self, request: Request) -> Session:
        session = self.service.sessions.get(request.cookies.get(SESSION_COOKIE))
        if session is None:
            raise NotSignedIn()
        return session

    # -- signing in and out --------------------------------------------------------------

    @_html
    def login_form(self, request: Request, next: str = "/") -> Response:
        return self._login_page(request, _local(next), "", 200)

    def _login_page(self, request: Request, next_: str, message: str, status: int, name: str = "") -> Response:
        token = secrets.token_urlsafe(32)
        response = self.render(request, "login.html", status, next=next_, message=message, name=name, token=token,
                               sso=getattr(self.service, "oidc", None) is not None)
        response.set_cookie(LOGIN_COOKIE, token, max_age=3600, httponly=True, samesite="strict",
                            secure=request.url.scheme == "https", path="/login")
        return response

    @_html
    def login(self, request: Request, username: str = Form(""), password: str = Form(""), token: str = Form(""),
              next: str = Form("/")) -> Response:
        sent = request.cookies.get(LOGIN_COOKIE)
        next_, name, client = _local(next), username[:100], client_address(request)
        if not (sent and token and secrets.compare_digest(sent, token)):
            return self._login_page(request, next_, "The sign-in form had expired; please sign in again.", 400, name)
        try:
            self.service.throttle.check(name, client)
        except LgdError as e:
            return self._login_page(request, next_, str(e), e.http_status, name)
        with self.service.catalogue() as catalogue:
            try:
                who = accounts.sign_in(catalogue, name, password, client)
            except NotSignedIn as e:
                self.service.throttle.failed(name, client)
                return self._login_page(request, next_, str(e), 401, name)
        self.service.throttle.succeeded(name)
        self.service.sessions.end(request.cookies.get(SESSION_COOKIE))  # whoever used this browser before
        sid, session = self.service.sessions.start(who)
        if next_ == "/" and not who.may(Permission.view):
            next_ = "/audit"
        response = RedirectResponse(next_, status_code=303)
        secure = request.url.scheme == "https"
        response.set_cookie(SESSION_COOKIE, sid, max_age=SESSION_IDLE_SECONDS, httponly=True, samesite="strict",
                            secure=secure, path="/")
        response.set_cookie(CSRF_COOKIE, session.csrf, max_age=SESSION_IDLE_SECONDS, httponly=False,
                            samesite="strict", secure=secure, path="/")
        response.delete_cookie(LOGIN_COOKIE, path="/login")
        return response

    @_html
    def logout(self, request: Request, csrf: str = Form("")) -> Response:
        session = self.session(request)
        if not (csrf and secrets.compare_digest(csrf, session.csrf)):
            raise LgdError("The sign-out did not come from one of lgd's own pages, so it was refused; use the "
                           "Sign out button.", ExitCode.not_permitted, "csrf", 403)
        with self.service.catalogue() as catalogue:
            catalogue.audit(session.who.name, "logout", None, **session.who.audit_detail())
        self.service.sessions.end(request.cookies.get(SESSION_COOKIE))
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        response.delete_cookie(CSRF_COOKIE, path="/")
        return response

    # -- finding and reading -------------------------------------------------------------

    @_html
    def home(self, request: Request, nhs: str = "", name: str = "", dob: str = "", q: str = "", patient: str = "",
             kind: str = "") -> Response:
        session = self.session(request)
        who = session.who
        who.require(Permission.view)
        params = request.query_params
        form = {"nhs": nhs, "name": name, "dob": dob, "q": q, "patient": patient, "kind": kind,
                "from": params.get("from", ""), "to": params.get("to", "")}
        found = results = None
        message, status = "", 200
        try:
            if nhs.strip() or name.strip() or dob.strip():
                born = date_bound(dob, "date of birth", False)
                with self.service.catalogue() as catalogue:
                    found = notes.find_patients(catalogue, who, nhs_number=nhs.strip() or None,
                                                name=name.strip() or None, dob=born)
            elif q.strip():
                results = self._search(who, form)
        except LgdError as e:
            if e.http_status not in (400, 404):
                raise
            message, status = str(e), e.http_status  # shown beside the form, to be corrected there
        return self.render(request, "home.html", status, session, form=form, kinds=KINDS, found=found,
                           results=results, message=message)

    def _search(self, who: Who, form: dict[str, str]) -> dict[str, Any]:
        date_from, date_to = date_bound(form["from"], "from", False), date_bound(form["to"], "to", True)
        with self.service.archive_for_search() as (catalogue, fulltext):
            found = notes.search_notes(catalogue, fulltext, who, form["q"], patient=form["patient"],
                                       date_from=date_from, date_to=date_to, kind=form["kind"] or None,
                                       limit=SEARCH_HITS)
            groups: dict[str, dict[str, Any]] = {}
            for hit in found.hits:
                if hit.nhs_number not in groups:
                    person = catalogue.patient(hit.nhs_number)
                    groups[hit.nhs_number] = {"nhs_number": hit.nhs_number, "name": person.name if person else None,
                                              "hits": []}
                groups[hit.nhs_number]["hits"].append({
                    "id": _page_id(catalogue, hit.nhs_number, hit.source, hit.page), "source": hit.source,
                    "page": hit.page, "kind": hit.kind, "dates": [d.isoformat() for d in hit.dates],
                    "partial": hit.partial, "words": _marked(hit.snippet)})
        return {"total": found.total, "shown": len(found.hits), "groups": list(groups.values()),
                "warning": found.warning}

    @_html
    def patient(self, request: Request, nhs: str) -> Response:
        session = self.session(request)
        with self.service.catalogue() as catalogue:
            record = notes.patient_pages(catalogue, session.who, notes.valid_nhs_number(nhs))
        documents: list[dict[str, Any]] = []
        for p in record["pages"]:
            if not documents or documents[-1]["source"] != p["source"]:
                documents.append({"source": p["source"], "pages": []})
            documents[-1]["pages"].append(p | {"transfer": _transfer(p), "flags": _flags(p)})
        reconciled = any(p["decision"] for p in record["pages"])
        sent = sum(1 for p in record["pages"] if p["send"])
        return self.render(request, "patient.html", session=session, record=record, documents=documents,
                           reconciled=reconciled, sent=sent, failed=record["not_digitised"])

    @_html
    def page(self, request: Request, page_id: str, q: str = "") -> Response:
        session = self.session(request)
        who = session.who
        with self.service.catalogue() as catalogue:
            page = notes.open_page(catalogue, who, page_id)
            document = catalogue.document(int(page["id"].split("-")[0]))
        doc_id, number = page["id"].split("-")[0], page["page"]
        last = document.page_count if document else number
        turn = {"previous": f"{doc_id}-{number - 1}" if number > 1 else None,
                "next": f"{doc_id}-{number + 1}" if number < last else None, "last": last}
        boxes, note = [], None
        if q.strip():
            try:
                boxes = self._highlights(who, page, q)
            except LgdError as e:
                note = f"The search could not be shown on this page: {e}"
        width, height = page["width"] or 1, page["height"] or 1
        entries = [e | {"n": i, "shape": _percent(e["box"], width, height)} for i, e in enumerate(page["entries"], 1)]
        return self.render(request, "page.html", session=session, page=page, entries=entries, q=q, note=note,
                           transfer=_transfer(page), hits=[_percent(b, width, height) for b in boxes], turn=turn)

    def _highlights(self, who: Who, page: dict[str, Any], q: str) -> list[list[int]]:
        """The boxes of the words `q` matches on this page, found by the same (audited) search as the list."""
        with self.service.archive_for_search() as (catalogue, fulltext):
            found = notes.search_notes(catalogue, fulltext, who, q, patient=page["nhs_number"], limit=HIGHLIGHT_HITS)
        hit = next((h for h in found.hits if (h.source, h.page) == (page["source"], page["page"])), None)
        return [list(b) for b in hit.boxes] if hit else []

    # -- the audit log -------------------------------------------------------------------

    @_html
    def audit_log(self, request: Request, user: str = "", patient: str = "") -> Response:
        session = self.session(request)
        session.who.require(Permission.read_audit)
        params = request.query_params
        form = {"user": user.strip(), "patient": patient.strip(), "from": params.get("from", "").strip(),
                "to": params.get("to", "").strip()}
        with self.service.catalogue() as catalogue:
            nhs = notes.valid_nhs_number(form["patient"]) if form["patient"] else None
            events = audit.events(catalogue, session.who, nhs_number=nhs, user=form["user"] or None,
                                  date_from=date_bound(form["from"], "from", False), date_to=date_bound(form["to"], "to", True),
                                  limit=AUDIT_ROWS)
        csv_query = urlencode({"format": "csv", **{k: v for k, v in form.items() if v}})
        return self.render(request, "audit.html", session=session, form=form, events=list(reversed(events)),
                           limit=AUDIT_ROWS, csv_url=f"/api/v1/audit?{csv_query}")


def _local(target: str) -> str:
    # Only a path on this site: "//evil.example" or "https://..." would make sign-in an open redirect.
    if not target.startswith("/") or target.startswith("//") or "\\" in target or len(target) > 2000:
        return "/"
    return target


def _page_id(catalogue: Catalogue, nhs_number: str, source: str, page: int) -> str | None:
    doc = next((d for d in catalogue.documents(nhs_number=nhs_number, status="ok") if d.source == source), None)
    return f"{doc.id}-{page}" if doc else None


def _marked(snippet: str) -> list[tuple[str, bool]]:
    """The snippet's words and whether each matched; search marks a match as [word]."""
    return [(w[1:-1], True) if len(w) > 2 and w[0] == "[" and w[-1] == "]" else (w, False)
            for w in snippet.split(" ")]


def _percent(box: list[int] | tuple[int, ...], width: int, height: int) -> dict[str, str]:
    """A pixel box [left, top, right, bottom] as SVG percentages, so it scales with the image at any zoom."""
    left, top, right, bottom = box[:4]
    return {"x": f"{100 * left / width:.3f}%", "y": f"{100 * top / height:.3f}%",
            "w": f"{100 * (right - left) / width:.3f}%", "h": f"{100 * (bottom - top) / height:.3f}%"}


def _flags(page: dict[str, Any]) -> list[str]:
    return [flag for flag, on in (("blank", page["blank"]), (f"rescan of page {page['duplicate_of']}", page["duplicate_of"]),
                                  ("unreadable", page["unreadable"])) if on]


def _transfer(page: dict[str, Any]) -> dict[str, str]:
    """What a transfer pack does with the page, in words: the same rule as notes.patient_pages' `send`."""
    decision = page.get("decision")
    if page.get("unreadable"):
        return {"state": "paper", "label": "send on paper", "why": "the page could not be read reliably"}
    if not page["send"]:
        by = f" (decided by {decision['overridden_by']})" if decision.get("overridden_by") else ""
        return {"state": "omit", "label": "left out", "why": f"{decision['reason']}{by}"}
    if decision is None:
        return {"state": "send", "label": "sent", "why": "not reconciled yet: every page is sent"}
    by = f" (decided by {decision['overridden_by']})" if decision.get("overridden_by") else ""
    return {"state": "send", "label": "sent", "why": f"{decision['reason']}{by}"}
