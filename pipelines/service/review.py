"""A person's decision about one page, with the safety gates, for the shell (`lgd review`) and the web alike.

- Anyone who may send more paper (clerk, clinician, practice admin) may force a page in.
- Only a clinician may leave a page out, or clear a decision.
- Leaving out a page the machine would send (an unreadable page, an envelope front, a page
  with an uncertain or paper-only entry, any page it included) takes four eyes: it counts
  only once a second clinician confirms it; until then the page is sent. Nobody confirms
  their own omission, and an archive without accounts cannot leave such a page out at all
  (nobody there can be a second person).
A page is named by its number in the patient's record (as `lgd review` lists them), by its id
("12-3": document 12, page 3) or as SOURCE:PAGE.
"""

from __future__ import annotations

from dataclasses import dataclass

from index import Catalogue
from index.decisions import confirm_override, latest_overrides, latest_reconciliation, record_override
from pipelines.actor import free_text
from pipelines.errors import ExitCode, LgdError, NotPermitted

from .access import Permission, Role, Who
from .notes import page_id_parts

@dataclass(frozen=True, slots=True)
class PageRef:
    document_id: int
    page: int
    source: str
    number: int  # its place in the patient's record, 1-based

    @property
    def id(self) -> str:
        return f"{self.document_id}-{self.page}"


@dataclass(frozen=True, slots=True)
class Outcome:
    page: PageRef
    decision: str | None  # include | omit | None (cleared)
    pending: bool  # an omission waiting for a second clinician
    by: str
    reason: str


def patient_pages(catalogue: Catalogue, nhs_number: str) -> list[PageRef]:
    """The patient's pages in record order: documents by part then name, pages in order."""
    docs = sorted(catalogue.documents(nhs_number=nhs_number, status="ok"), key=lambda d: (d.part or 0, d.source))
    refs = []
    for doc in docs:
        for n in range(1, doc.page_count + 1):
            refs.append(PageRef(int(doc.id), n, doc.source, len(refs) + 1))
    return refs


def resolve(catalogue: Catalogue, nhs_number: str, ref: str) -> PageRef:
    pages = patient_pages(catalogue, nhs_number)
    text = ref.strip()
    found: PageRef | None = None
    if text.isdigit():
        found = pages[int(text) - 1] if 1 <= int(text) <= len(pages) else None
    elif parts := page_id_parts(text):
        found = next((p for p in pages if (p.document_id, p.page) == parts), None)
    else:
        source, sep, number = text.rpartition(":")
        if sep and number.isdigit():
            found = next((p for p in pages if p.source == source and p.page == int(number)), None)
    if found is None:
        raise LgdError(f"{ref[:80]!r}: patient {nhs_number} has no such page; name it by its number (1-{len(pages)}, "
                       f"as lgd review --patient {nhs_number} lists them), its id (12-3) or SOURCE:PAGE",
                       ExitCode.usage, "no_page", 404)
    return found


def _machine_would_send(catalogue: Catalogue, nhs_number: str, ref: PageRef) -> bool:
    page = next((p for p in catalogue.pages(ref.document_id) if p.number == ref.page), None)
    if page is None or page.unreadable or page.kind == "envelope":
        return True
    run = latest_reconciliation(catalogue, nhs_number)
    decided = next((p for p in run.pages if (p.document_id, p.page) == (ref.document_id, ref.page)), None) if run else None
    return decided is None or decided.decision != "omit"


def decide(catalogue: Catalogue, who: Who, nhs_number: str, ref: str, decision: str | None, reason: str) -> Outcome:
    """Force a page in ("include") or out ("omit"), or clear the person's decision (None), under the gates."""
    reason = free_text(reason, "the reason")
    page = resolve(catalogue, nhs_number, ref)
    who.require(Permission.include if decision == "include" else Permission.decide)
    needs_second = decision == "omit" and _machine_would_send(catalogue, nhs_number, page)
    if needs_second and who.role is Role.owner:
        raise NotPermitted("leaving out a page lgd would send takes two clinicians (four eyes), and this archive has no "
                           "accounts: add them (lgd user add NAME --role clinician) and decide as one, confirm as another",
                           "four_eyes")
    record_override(catalogue, nhs_number, page.document_id, page.page, decision, reason=reason, actor=who.name,
                    needs_confirmation=needs_second)
    return Outcome(page, decision, needs_second, who.name, reason)


def confirm(catalogue: Catalogue, who: Who, nhs_number: str, ref: str) -> Outcome:
    """A second clinician confirms the omission waiting on a page."""
    who.require(Permission.decide)
    page = resolve(catalogue, nhs_number, ref)
    waiting = latest_overrides(catalogue, nhs_number).get((page.document_id, page.page))
    if waiting is None or not waiting.pending:
        raise LgdError(f"page {page.number} ({page.id}) has no omission waiting to be confirmed", ExitCode.usage,
                       "nothing_to_confirm", 409)
    if who.role is Role.owner or waiting.actor == who.name:
        raise NotPermitted(f"{waiting.actor} decided to leave page {page.number} out; a second clinician, signed in as "
                           "themselves, must confirm it", "four_eyes")
    try:
        confirm_override(catalogue, waiting.id, actor=who.name)
    except ValueError as e:
        raise LgdError(str(e), ExitCode.usage, "cannot_confirm", 409) from None
    return Outcome(page, waiting.decision, False, waiting.actor, waiting.reason)
