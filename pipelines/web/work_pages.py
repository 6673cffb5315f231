"""lgd serve: the digitising work (the queue, the quarantine, recent runs) for clerks and practice admins.

    GET  /work                                       the overview, refreshed every 30 s: with `lgd serve --queue URL`
                                                     (or $LGD_QUEUE) the queue's numbers as `lgd status` gives
                                                     them; the quarantine; the recent digitise runs from the audit
    GET  /work/quarantine/{id}                       one quarantined input with its retry and discard forms (not
                                                     refreshed, so a reason being typed is not lost)
    POST /work/quarantine/{id}/retry|discard         form: csrf, reason; then back to /work
    GET  /api/v1/work                                the same as JSON
    POST /api/v1/work/quarantine/{id}/retry|discard  JSON {"reason": ...}; `lgd quarantine --json`'s answer

Every action is pipelines.ingest.quarantine's, as `lgd quarantine` runs it: the digitise permission
and a reason, both audited. A retry digitises the input here, in this server's process, one document
with one OCR process (the queue's workers are for batches; a retry waits for any running
`lgd digitise` on the archive and is refused while one holds it).
"""

from __future__ import annotations

import secrets
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import jinja2
from fastapi import Body, FastAPI, Form, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from index import ArchiveError, ArchiveStore
from index.errors import ArchiveErrorCode
from pipelines.errors import ExitCode, LgdError
from pipelines.ingest import quarantine
from pipelines.search import open_catalogue
from pipelines.service import work
from pipelines.service.access import Permission, Who

from .auth import SESSION_COOKIE, Session
from .pages import HERE, Pages, _html

if TYPE_CHECKING:  # app.py imports this module
    from .app import Service

REFRESH_SECONDS = 30
ERROR_TITLES = {400: "That cannot be done as asked", 403: "Your role may not work the digitising",
                404: "Not found", 409: "Not now"}


def register(app: FastAPI, service: Service, who_of, queue_url: str | None) -> None:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True,
                             undefined=jinja2.StrictUndefined)
    # One retry at a time in this server: the archive's digitise lock is a POSIX lock, held per process
    # and not per thread, and the OCR engine is set up once per process.
    retrying = threading.Lock()
    views = WorkPages(service, Jinja2Templates(env=env), queue_url, retrying)
    for path, view, methods in (("/work", views.overview, ["GET"]), ("/work/quarantine/{entry_id}", views.entry, ["GET"]),
                                ("/work/quarantine/{entry_id}/{action}", views.act, ["POST"])):
        app.add_api_route(path, view, methods=methods, include_in_schema=False)

    def api_work(request: Request) -> dict[str, Any]:
        with service.catalogue() as catalogue:
            who = who_of(request, service, catalogue)
            return work.work(catalogue, service.archive, who, queue_url)

    def api_act(request: Request, entry_id: str, action: str, body: Any = Body(default=None)) -> dict[str, Any]:
        if not isinstance(body, dict) or not isinstance(body.get("reason"), str):
            raise LgdError('send JSON {"reason": ...}', ExitCode.usage, "bad_request")
        with service.catalogue() as catalogue:
            who = who_of(request, service, catalogue)
        return _act(service.archive, who, entry_id, action, body["reason"], retrying)

    app.add_api_route("/api/v1/work", api_work, methods=["GET"])
    app.add_api_route("/api/v1/work/quarantine/{entry_id}/{action}", api_act, methods=["POST"])


def _act(archive: Path, who: Who, entry_id: str, action: str, reason: str, retrying: threading.Lock) -> dict[str, Any]:
    """Retry or discard a quarantine entry exactly as `lgd quarantine` does; its --json answer."""
    if action == "discard":
        with open_catalogue(archive) as catalogue:
            item = quarantine.discard(catalogue, ArchiveStore(archive), who, entry_id, reason)
        return {"id": item.id, "action": "discarded", "source": item.source}
    if action != "retry":
        raise LgdError(f"{action!r} is not an action on a quarantined input: retry or discard", ExitCode.usage,
                       "no_such_action", 404)
    quarantine.check(who, reason)  # before any work: the role and the reason

    def digitise(target: Path, manifest):
        from pipelines.engines import configured_options
        from pipelines.ingest.run import Ingest  # OCR: imported when a retry asks for it

        ingest = Ingest(archive, configured_options(), jobs=1, actor=who.name)
        try:
            return ingest.run([target], manifest)
        finally:
            ingest.close()

    if not retrying.acquire(blocking=False):
        raise LgdError("another quarantined input is being digitised again on this server; try this one when it "
                       "is done", ExitCode.usage, "retry_running", 409)
    try:
        return quarantine.retry(archive, who, entry_id, reason, digitise).as_json()
    except ArchiveError as e:
        if e.code is not ArchiveErrorCode.archive_locked:
            raise
        # A batch (or the queue's writer) is storing into the archive: the person can wait, it is not broken.
        raise LgdError(str(e), ExitCode.usage, "archive_locked", 409) from e
    finally:
        retrying.release()


class WorkPages(Pages):
    def __init__(self, service: Service, templates, queue_url: str | None, retrying: threading.Lock) -> None:
        super().__init__(service, templates)
        self.queue_url = queue_url
        self.retrying = retrying

    def error(self, request: Request, status: int, message: str) -> Response:
        session = self.service.sessions.get(request.cookies.get(SESSION_COOKIE))
        return self.render(request, "work.html", status, session, title=ERROR_TITLES.get(status, "Something went wrong"),
                           message=message, view="error", refresh=None)

    def _digitiser(self, request: Request) -> Session:
        session = self.session(request)
        session.who.require(Permission.digitise)
        return session

    @_html
    def overview(self, request: Request, done: str = "") -> Response:
        session = self._digitiser(request)
        with self.service.catalogue() as catalogue:
            found = work.work(catalogue, self.service.archive, session.who, self.queue_url)
        return self.render(request, "work.html", 200, session, title="Digitising work", view="overview", work=found,
                           done=done[:300], refresh=REFRESH_SECONDS)

    @_html
    def entry(self, request: Request, entry_id: str) -> Response:
        session = self._digitiser(request)
        item = quarantine.find(ArchiveStore(self.service.archive), entry_id)
        return self.render(request, "work.html", 200, session, title=f"Quarantined: {item.source}", view="entry",
                           item=item.as_json(), refresh=None)

    @_html
    def act(self, request: Request, entry_id: str, action: str, csrf: str = Form(""), reason: str = Form("")) -> Response:
        session = self._digitiser(request)
        if not (csrf and secrets.compare_digest(csrf, session.csrf)):
            raise LgdError("The form did not come from one of lgd's own pages (or the page was older than your "
                           "sign-in), so nothing was done; open the page again and repeat.", ExitCode.not_permitted,
                           "csrf", 403)
        done = _act(self.service.archive, session.who, entry_id, action, reason, self.retrying)
        said = f"{done['source']}: {done['action']}" + (f", {done['outcome']}" if "outcome" in done else "") + \
            (f" ({done['reason']})" if done.get("reason") else "")
        return RedirectResponse("/work?" + urlencode({"done": said}), status_code=303)
