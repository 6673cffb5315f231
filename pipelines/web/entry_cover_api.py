"""`lgd serve`'s JSON API for clinicians' entry covers, over pipelines.service.entry_cover as `lgd review` is.

    GET    /api/v1/patients/{nhs}/coded-events     the latest coded record's events, numbered as "event" takes them
    POST   /api/v1/patients/{nhs}/entry-covers     {"page", "entry", "event": number | code, "reason", "coded_sha256"?}
    DELETE /api/v1/patients/{nhs}/entry-covers     {"page", "entry", "reason"}: clear it (withdraws its omission)
    POST   /api/v1/patients/{nhs}/entry-covers/clear   the same, for clients that send no body with DELETE

A clerk is 403 {"error": "not_permitted"}; an event not in the latest record 404 "no_event"; one
chosen from an older record 409 "stale_coded_record"; a page sent for another reason 409.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from fastapi import Body, FastAPI, Request

from index import Catalogue
from pipelines.service import entry_cover, notes
from pipelines.service.access import Who

from .leavers_api import _fields

if TYPE_CHECKING:  # app.py imports this module
    from .app import Service

WhoOf = Callable[[Request, "Service", Catalogue], Who]


def register(app: FastAPI, service: Service, who_of: WhoOf) -> None:
    """Add the entry-cover routes; `who_of(request, service, catalogue)` is app.py's sign-in and CSRF check."""

    def run(request: Request, step: Callable[[Catalogue, Who], Any]) -> Any:
        with service.catalogue() as catalogue:
            return step(catalogue, who_of(request, service, catalogue))

    @app.get("/api/v1/patients/{nhs_number}/coded-events")
    def events(request: Request, nhs_number: str) -> dict[str, Any]:
        nhs = notes.valid_nhs_number(nhs_number)
        return run(request, lambda c, w: entry_cover.coded_events(c, w, nhs))

    @app.post("/api/v1/patients/{nhs_number}/entry-covers")
    def cover(request: Request, nhs_number: str, body: Any = Body(default=None)) -> dict[str, Any]:
        b = _fields(body, {"page": (str, int), "entry": int, "event": (str, int), "reason": str},
                    {"coded_sha256": str})
        nhs = notes.valid_nhs_number(nhs_number)
        return run(request, lambda c, w: entry_cover.cover_entry(
            c, w, nhs, str(b["page"]), b["entry"], str(b["event"]), b["reason"], b.get("coded_sha256")).to_json())

    def clear(request: Request, nhs_number: str, body: Any) -> dict[str, Any]:
        b = _fields(body, {"page": (str, int), "entry": int, "reason": str})
        nhs = notes.valid_nhs_number(nhs_number)
        return run(request, lambda c, w: entry_cover.clear_entry_cover(
            c, w, nhs, str(b["page"]), b["entry"], b["reason"]).to_json())

    @app.delete("/api/v1/patients/{nhs_number}/entry-covers")
    def clear_delete(request: Request, nhs_number: str, body: Any = Body(default=None)) -> dict[str, Any]:
        return clear(request, nhs_number, body)

    @app.post("/api/v1/patients/{nhs_number}/entry-covers/clear")
    def clear_post(request: Request, nhs_number: str, body: Any = Body(default=None)) -> dict[str, Any]:
        return clear(request, nhs_number, body)
