"""lgd serve's leavers pages: the worklist, one leaver's review screen, sign-off and the pack handover.

Every step is a form (with the session's CSRF token) posting to a pipelines.service function
(leavers, worklist, leaver_review, handover), which checks the role, refuses a step the
leaver's state does not allow and writes the audit; a control left off a page for a role is
a courtesy, never the gate. After a step the browser is sent back to the page (POST, then
redirect), except after building a pack: its passphrase is shown in that one answer, marked
no-store, and kept nowhere.
"""

from __future__ import annotations

import secrets
from urllib.parse import urlencode

from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.responses import FileResponse, RedirectResponse, Response

from pipelines.errors import ExitCode, LgdError
from pipelines.service import entry_cover, handover, leaver_review, leavers, worklist
from pipelines.service.access import Permission
from pipelines.transfer.formats import FORMATS, MEDIA_FORMATS

from .auth import SESSION_COOKIE, Session
from .leavers_views import DONE, FORMAT_LABELS, controls, pack_all_signed_off, saved_upload, upload_text, worklist_rows
from .pages import Pages, _html

NO_STORE = {"Cache-Control": "no-store, max-age=0", "Pragma": "no-cache"}


def register(app: FastAPI, pages: Pages) -> None:
    views = LeaverPages(pages.service, pages.templates)
    for path, view, methods in (
            ("/leavers", views.worklist, ["GET"]), ("/leavers", views.add, ["POST"]),
            ("/leavers/import", views.import_csv, ["POST"]), ("/leavers/reconcile-all", views.reconcile_all, ["POST"]),
            ("/leavers/pack-all", views.pack_all, ["POST"]), ("/leavers/{leaver_id}", views.leaver, ["GET"]),
            ("/leavers/{leaver_id}/reconcile", views.reconcile, ["POST"]),
            ("/leavers/{leaver_id}/decisions", views.decide, ["POST"]),
            ("/leavers/{leaver_id}/confirmations", views.confirm, ["POST"]),
            ("/leavers/{leaver_id}/entry-covers", views.cover_entry, ["POST"]),
            ("/leavers/{leaver_id}/sign-off", views.sign_off, ["POST"]),
            ("/leavers/{leaver_id}/packs", views.pack, ["POST"]),
            ("/leavers/{leaver_id}/packs/{pack_id}", views.download, ["GET"]),
            ("/leavers/{leaver_id}/sent", views.sent, ["POST"]),
            ("/leavers/{leaver_id}/received", views.received, ["POST"]),
            ("/leavers/{leaver_id}/return", views.return_for_rescan, ["POST"])):
        app.add_api_route(path, view, methods=methods, include_in_schema=False)


def _back(leaver_id: int | None, done: str, anchor: str = "") -> RedirectResponse:
    path = "/leavers" if leaver_id is None else f"/leavers/{leaver_id}"
    return RedirectResponse(f"{path}?{urlencode({'done': done})}{anchor}", status_code=303)


class LeaverPages(Pages):
    def error(self, request: Request, status: int, message: str) -> Response:
        session = self.service.sessions.get(request.cookies.get(SESSION_COOKIE))
        title = {400: "That cannot be done as asked", 403: "Your role may not do this", 404: "Not found",
                 409: "Not at this step", 413: "Too large"}.get(status, "Something went wrong")
        parts = request.url.path.split("/")
        back = f"/leavers/{parts[2]}" if len(parts) > 2 and parts[2].isdigit() else "/leavers"
        return self.render(request, "leaver_error.html", status, session, title=title, message=message, back=back)

    def acting(self, request: Request, csrf: str) -> Session:
        """The signed-in person posting a form from one of lgd's own pages (the double-submitted token)."""
        session = self.session(request)
        if not (csrf and secrets.compare_digest(csrf, session.csrf)):
            raise LgdError("The form did not come from one of lgd's own pages (or the page was older than your "
                           "sign-in), so nothing was done; open the page again and repeat.", ExitCode.not_permitted,
                           "csrf", 403)
        return session

    # -- the worklist ----------------------------------------------------------------------

    @_html
    def worklist(self, request: Request, state: str = "", order: str = "oldest", show: str = "open",
                  done: str = "") -> Response:
        session = self.session(request)
        who = session.who
        with self.service.catalogue() as catalogue:
            found = leavers.worklist(catalogue, who, state=state or None, include_done=show == "all" or bool(state))
            rows = worklist_rows(catalogue, found, order == "newest")
        return self.render(request, "leavers.html", session=session, rows=rows, states=list(leavers.State),
                           form={"state": state, "order": order, "show": show}, done=DONE.get(done), formats=FORMATS,
                           may={"add": who.may(Permission.include), "reconcile": who.may(Permission.decide),
                                "pack": who.may(Permission.pack)})

    @_html
    def add(self, request: Request, csrf: str = Form(""), nhs: str = Form(""), ods: str = Form(""),
            movement_ref: str = Form(""), coded: UploadFile | None = File(None)) -> Response:
        session = self.acting(request, csrf)
        with saved_upload(coded, "the coded record") as coded_file, self.service.catalogue() as catalogue:
            added = leavers.add(catalogue, session.who, nhs, ods, movement_ref or None, coded_file)
        return _back(added.id, "added")

    @_html
    def import_csv(self, request: Request, csrf: str = Form(""), csv: UploadFile | None = File(None)) -> Response:
        session = self.acting(request, csrf)
        text = upload_text(csv, "the leavers CSV")
        with self.service.catalogue() as catalogue:
            worklist.import_csv(catalogue, session.who, text, None)
        return _back(None, "imported")

    @_html
    def reconcile_all(self, request: Request, csrf: str = Form("")) -> Response:
        session = self.acting(request, csrf)
        with self.service.catalogue() as catalogue:
            results = leavers.reconcile_all(catalogue, session.who)
        return self.render(request, "leavers_bulk.html", session=session, action="Reconcile all", results=results,
                           handovers=[])

    @_html
    def pack_all(self, request: Request, csrf: str = Form(""), format: str = Form("7z")) -> Response:  # noqa: A002
        session = self.acting(request, csrf)
        with self.service.catalogue() as catalogue:
            results = pack_all_signed_off(catalogue, session.who, _format(format))
        response = self.render(request, "leavers_bulk.html", session=session, action="Pack all signed off",
                               results=results, handovers=[r["handover"] for r in results if r["ok"]])
        response.headers.update(NO_STORE)  # passphrases: shown in this answer only
        return response

    # -- one leaver ------------------------------------------------------------------------

    @_html
    def leaver(self, request: Request, leaver_id: int, done: str = "") -> Response:
        session = self.session(request)
        with self.service.catalogue() as catalogue:
            doc = leaver_review.details(catalogue, session.who, leaver_id)
            seen = leavers.get(catalogue, session.who, leaver_id).row.state_id  # the step a pack form is made at
            # The coded events a clinician may name when covering an entry lgd could not match.
            events = entry_cover.coded_events(catalogue, session.who, doc["patient"]["nhs_number"])["events"] \
                if doc["reconciliation"] and session.who.may(Permission.decide) else []
        # Keys a page has only sometimes (before reconciliation, without a person's decision) shown as absent.
        optional = dict.fromkeys(("kind", "override", "awaiting_confirmation", "omitted_because"), None)
        pages = [optional | {"entries": []} | p | {"waits_for_me": (p.get("awaiting_confirmation") or {}).get("by")
                                                   == session.who.name} for p in doc["pages"]]
        return self.render(request, "leaver.html", session=session, doc=doc, pages=pages, done=DONE.get(done),
                           can=controls(session.who, doc["leaver"], doc["totals"]), formats=FORMAT_LABELS,
                           seen=seen, events=events, fitting=lambda day: _fitting(events, day))

    @_html
    def reconcile(self, request: Request, leaver_id: int, csrf: str = Form(""),
                  coded: UploadFile | None = File(None)) -> Response:
        session = self.acting(request, csrf)
        with saved_upload(coded, "the coded record") as coded_file, self.service.catalogue() as catalogue:
            leavers.reconcile(catalogue, session.who, leaver_id, coded_file)
        return _back(leaver_id, "reconciled")

    @_html
    def decide(self, request: Request, leaver_id: int, csrf: str = Form(""), page: str = Form(""),
               decision: str = Form(""), reason: str = Form("")) -> Response:
        session = self.acting(request, csrf)
        if decision not in ("include", "omit", "clear"):
            raise LgdError("choose include, omit or clear", ExitCode.usage, "bad_decision")
        with self.service.catalogue() as catalogue:
            done = leavers.decide_page(catalogue, session.who, leaver_id, page,
                                       None if decision == "clear" else decision, reason)
        word = "omission_waits" if done.pending else "cleared" if decision == "clear" else "decided"
        return _back(leaver_id, word, f"#page-{done.page.number}")

    @_html
    def confirm(self, request: Request, leaver_id: int, csrf: str = Form(""), page: str = Form("")) -> Response:
        session = self.acting(request, csrf)
        with self.service.catalogue() as catalogue:
            done = leavers.confirm_page(catalogue, session.who, leaver_id, page)
        return _back(leaver_id, "confirmed", f"#page-{done.page.number}")

    @_html
    def cover_entry(self, request: Request, leaver_id: int, csrf: str = Form(""), page: str = Form(""),
                    entry: int = Form(0), event: str = Form(""), reason: str = Form(""),
                    action: str = Form("cover")) -> Response:
        session = self.acting(request, csrf)
        with self.service.catalogue() as catalogue:
            nhs = leavers.get(catalogue, session.who, leaver_id).row.nhs_number
            if action == "clear":
                done = entry_cover.clear_entry_cover(catalogue, session.who, nhs, page, entry, reason)
            else:
                done = entry_cover.cover_entry(catalogue, session.who, nhs, page, entry, event, reason)
        word = "omission_waits" if done.omission == "proposed" else "cleared" if action == "clear" else "decided"
        return _back(leaver_id, word, f"#page-{done.page.number}")

    @_html
    def sign_off(self, request: Request, leaver_id: int, csrf: str = Form(""), note: str = Form("")) -> Response:
        session = self.acting(request, csrf)
        with self.service.catalogue() as catalogue:
            leavers.sign_off(catalogue, session.who, leaver_id, note or None)
        return _back(leaver_id, "signed_off")

    @_html
    def pack(self, request: Request, leaver_id: int, csrf: str = Form(""), format: str = Form("7z"),  # noqa: A002
             seen: str = Form("")) -> Response:
        session = self.acting(request, csrf)
        with self.service.catalogue() as catalogue:
            # A reloaded answer would post the form again and build a second pack with a new passphrase:
            # the form carries the step the person saw, and a pack built since then stops it.
            current = leavers.get(catalogue, session.who, leaver_id)
            if seen != str(current.row.state_id):
                raise LgdError(f"leaver {leaver_id} changed since that page was opened (it is now "
                               f"{current.state.label}); nothing was built. Open the leaver again to build a pack.",
                               ExitCode.partial, "changed_meanwhile", 409)
            made = handover.pack(catalogue, session.who, leaver_id, _format(format))
        response = self.render(request, "handover.html", session=session, made=made.to_json(), leaver_id=leaver_id,
                               media=made.result["format"] in MEDIA_FORMATS)
        response.headers.update(NO_STORE)
        return response

    @_html
    def download(self, request: Request, leaver_id: int, pack_id: int) -> Response:
        session = self.session(request)
        with self.service.catalogue() as catalogue:
            path, name = handover.pack_file(catalogue, session.who, leaver_id, pack_id)
        return FileResponse(path, filename=name, media_type="application/octet-stream", headers=NO_STORE)

    @_html
    def sent(self, request: Request, leaver_id: int, csrf: str = Form(""), note: str = Form("")) -> Response:
        session = self.acting(request, csrf)
        with self.service.catalogue() as catalogue:
            handover.mark_sent(catalogue, session.who, leaver_id, note or None)
        return _back(leaver_id, "sent")

    @_html
    def received(self, request: Request, leaver_id: int, csrf: str = Form(""), verify_json: str = Form(""),
                 note: str = Form("")) -> Response:
        session = self.acting(request, csrf)
        with self.service.catalogue() as catalogue:
            handover.confirm_receipt(catalogue, session.who, leaver_id, verify_json or None, note or None)
        return _back(leaver_id, "received")

    @_html
    def return_for_rescan(self, request: Request, leaver_id: int, csrf: str = Form(""),
                          reason: str = Form("")) -> Response:
        session = self.acting(request, csrf)
        with self.service.catalogue() as catalogue:
            leavers.return_for_rescan(catalogue, session.who, leaver_id, reason)
        return _back(leaver_id, "returned")


def _fitting(events: list[dict], day: str | None) -> list[dict]:
    """The coded events a cover of an entry dated `day` may name (entry_cover refuses the others)."""
    return [ev for ev in events
            if (gap := entry_cover.date_gap(day, ev["date"])) is None or gap <= entry_cover.COVER_WINDOW_DAYS]


def _format(value: str) -> str:
    if value not in FORMATS:
        raise LgdError(f"{value[:20]!r} is not a pack format; choose one of {', '.join(FORMATS)}", ExitCode.usage,
                       "bad_format")
    return value
