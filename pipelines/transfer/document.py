"""Build one patient's pack PDF/A-2b: cover, omitted-pages index, the included record pages stamped, the coded record.

How conformance is reached: every page put into the pack is already PDF/A material. Record
pages are copied with pikepdf from the archive's own PDF/A-2b files (made by OCRmyPDF and
validated at digitising), so their images and OCR text layer are copied, not re-encoded; the
generated pages (cover, index, coded record, stamps, blanks) come from fpdf2 with embedded
DejaVu subsets. The document-level parts PDF/A asks for (one sRGB output intent, XMP with the
PDF/A declaration) are written by `pikepdf.pdfa.prepare`, and `pikepdf.pdfa.save` writes to a
temporary file, validates the bytes written with pikepdf's allow-list validator, and only then
renames it into place. A pack that fails validation is never left at `out`: PackBuildError says why.
Running the pack through OCRmyPDF again was rejected: it would re-process pages already PDF/A
and take seconds per page for no gain in conformance.

Reproducible: the same plan, options and `when` give the same bytes (fpdf2's clock is fixed,
the XMP dates are `when`, and the file ID is derived from the content).
"""

from __future__ import annotations

import datetime as dt
import os
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pikepdf
from pikepdf.pdfa import PdfaError, prepare
from pikepdf.pdfa import save as save_pdfa

from index.store import ArchiveStore, sha256_file
from pipelines.display import without_bidi
from pipelines.errors import ExitCode
from pipelines.records.model import CodedRecord

from .cover import COVER_TITLE, INDEX_TITLE, render_cover, render_omitted_index
from .electronic import SECTION_TITLE, ElectronicSummary, render_electronic
from .excerpts import EXCERPTS_TITLE, NOT_SHORTER, Excerpted, EntrySelection
from .plan import PackBuildError, PackPlan, PlannedDocument
from .printing import WholeRecord, recto_padding
from .render import A4, Sheet, nhs_spaced, to_pikepdf
from .stamp import BAND, Blank, Footer, Mark, apply_mark, patient_text, record_stamp, render_marks, shown_size, shown_width

if TYPE_CHECKING:  # only its type: the image work behind it is needed by entry granularity only
    from .crops import CutExcerpts

FLAVOUR = "2b"


@dataclass(frozen=True, slots=True)
class PackSection:
    """A run of pages of the pack: `kind` is cover, omitted_index, record, excerpts or electronic."""

    kind: str
    title: str
    first_page: int  # 1-based page of the pack PDF where the section starts
    pages: int  # pages of the section itself, blanks not counted
    source: str | None = None  # the source document of a record section


@dataclass(frozen=True, slots=True)
class PackPage:
    """An included record page: where it is in the pack, its record number (the i of 'page i of n'), its origin."""

    pack_page: int  # 1-based page of the pack PDF
    number: int
    source: str
    page: int


@dataclass(frozen=True, slots=True)
class PackDocument:
    """A written, validated pack PDF/A-2b and what is in it."""

    path: Path
    sha256: str
    bytes: int
    pages: int  # every page of the PDF
    sections: tuple[PackSection, ...]
    record: tuple[PackPage, ...]  # the included record pages, in pack order
    blank_pages: int
    duplex: bool
    electronic: ElectronicSummary | None
    validation: str  # pikepdf's one-line verdict, e.g. "PDF/A-2b: pass"
    excerpts: Excerpted | None = None  # entry granularity only: the cards sent as excerpts


@dataclass(frozen=True, slots=True)
class _Source:
    doc: PlannedDocument
    pdf: pikepdf.Pdf
    path: Path  # checked against its content hash


def _open_sources(plan: PackPlan, archive: Path, stack: ExitStack) -> list[_Source]:
    """Open the archive PDF/A of every document with an included page, checking each against its content hash.

    Archive files are stored as pdf/{nhs}/{sha256}.pdf, so a damaged or swapped file is caught
    here rather than sent; they are opened read-only and never written.
    """
    store = ArchiveStore(archive)
    sources = []
    for doc in plan.documents:
        if not plan.document_pages(doc.document_id, included=True):
            continue
        path = store.path(doc.pdfa_path)
        if not path.is_file():
            raise PackBuildError(
                "pack_source_missing",
                f"the archive's PDF/A of {doc.source} ({path}) is missing; restore the archive from its backup",
                ExitCode.archive_error,
            )
        if sha256_file(path) != path.stem:
            raise PackBuildError(
                "pack_source_damaged",
                f"the archive's PDF/A of {doc.source} ({path}) does not match its content hash; "
                "restore it from the archive's backup",
                ExitCode.archive_error,
            )
        pdf = stack.enter_context(pikepdf.open(path))
        if len(pdf.pages) != doc.page_count:
            raise PackBuildError(
                "pack_source_damaged",
                f"{path} has {len(pdf.pages)} pages but the catalogue records {doc.page_count} for {doc.source}; "
                "restore it from the archive's backup",
                ExitCode.archive_error,
            )
        sources.append(_Source(doc, pdf, path))
    return sources


def build_pack_pdf(
    plan: PackPlan,
    archive: Path,
    out: Path,
    *,
    coded: CodedRecord | None,
    with_electronic: bool,
    practice: str | None,
    when: dt.date,
    duplex: bool = False,
    excerpts: EntrySelection | None = None,
    whole: WholeRecord | None = None,
) -> PackDocument:
    """Write the pack of `plan` to `out` as a validated PDF/A-2b and describe it.

    Args:
        plan: from `plan_pack`; decides which pages go in (and nothing else does).
        archive: the archive folder that `plan`'s pdfa_paths are relative to; never written.
        out: the pack file to write (atomically: temp file in the same folder, validated, renamed).
        coded: the coded record the run checked against; needed only `with_electronic`.
        with_electronic: add the coded record as a readable section after the record pages.
        practice: the sending practice for the cover, or None.
        when: the pack's date, printed on the cover and used as the file's dates.
        duplex: lay out for double-sided printing (blank pages so each section starts on a recto).
        excerpts: entry granularity (`excerpts.select_excerpts`): its candidate cards that pass the
            image checks are sent as excerpts of their uncovered entries, after the record pages;
            None (page granularity) sends every included page whole.
        whole: print the whole record (`plan` from `whole_plan`) because the pack would not be shorter:
            the cover says so, there is no index of omitted pages and no blank page between sections
            (the record starts on the back of the cover: the point is the fewest sheets).

    Returns:
        The pack: its path, SHA-256, size, page count, sections, record pages and validation verdict.

    Raises:
        PackBuildError: no coded record for `with_electronic` (`pack_no_coded`) or not the one the run
            checked (`pack_coded_changed`); an archive file missing or damaged (archive_error);
            the fonts missing (missing_dependency); the written file failing PDF/A-2b validation
            (`pack_not_pdfa`, internal; nothing is left at `out`).
    """
    if with_electronic and coded is None:
        raise PackBuildError("pack_no_coded", "--with-electronic needs the patient's coded record; import it with `lgd coded import`")
    if with_electronic and coded.sha256 and coded.sha256 != plan.coded_sha256:
        raise PackBuildError(
            "pack_coded_changed",
            f"the coded record given (SHA-256 {coded.sha256[:12]}…) is not the one reconciliation run {plan.run_id} "
            f"checked ({plan.coded_sha256[:12]}…); run `lgd reconcile` again before packing",
        )
    sheet = Sheet()
    checked = f"Coded record {plan.coded_format}, SHA-256 {plan.coded_sha256}"
    # The coded record is drawn first because the cover states its length; page order in the
    # pack is set by the layout, not by the order of drawing.
    drawn, summary = render_electronic(sheet, coded, checked=checked) if with_electronic else (range(0), None)
    with ExitStack() as stack:
        sources = _open_sources(plan, archive, stack)
        electronic = tuple(drawn) if summary is not None else None
        about = dict(practice=practice, when=when, electronic=summary)
        if whole is not None:
            cut = None
            parts = _parts(plan, sources, tuple(render_cover(sheet, plan, whole=whole, **about)), (), None, (), electronic)
        elif excerpts is None:
            cut = None
            cover = render_cover(sheet, plan, **about)
            index = render_omitted_index(sheet, plan)
            parts = _parts(plan, sources, tuple(cover), tuple(index), None, (), electronic)
        else:
            cut, parts = _entry_parts(sheet, plan, excerpts, sources, electronic, duplex, about)
        reduced = cut.keys if cut is not None else frozenset()
        padding = recto_padding([len(p.pages) for p in parts]) if duplex and whole is None else (0,) * len(parts)
        marks = render_marks(sheet, _marks(plan, parts, padding))
        generated = stack.enter_context(to_pikepdf(sheet))
        pdf = stack.enter_context(pikepdf.Pdf.new())
        layout = _assemble(pdf, plan, parts, padding, generated, marks, reduced)
        _outline(pdf, layout.sections)
        pdf.Root.Lang = pikepdf.String("en-GB")
        pdf.docinfo["/Title"] = f"Lloyd George record transfer pack: {without_bidi(plan.name or '')} NHS {nhs_spaced(plan.nhs_number)}"
        pdf.docinfo["/Creator"] = "lgd"
        verdict = save_pack_pdfa(pdf, Path(out), when)
    excerpted = None
    if cut is not None:
        pages = sum(s.pages for s in layout.sections if s.kind == "excerpts")
        excerpted = Excerpted(cut.reduced, cut.whole, len(cut.crops), pages)
    return PackDocument(
        path=Path(out), sha256=sha256_file(Path(out)), bytes=Path(out).stat().st_size, pages=layout.pages,
        sections=layout.sections, record=layout.record, blank_pages=layout.blanks, duplex=duplex,
        electronic=summary, validation=verdict, excerpts=excerpted,
    )


@dataclass(frozen=True, slots=True)
class _Part:
    """A section before layout. Generated sections hold page indexes into the Sheet; record sections
    hold the archive's pages, their source and their plan rows."""

    kind: str
    title: str
    source: _Source | None
    pages: tuple
    rows: tuple = ()


def _parts(plan: PackPlan, sources: list[_Source], cover: tuple, index: tuple, cut: CutExcerpts | None,
           excerpts: tuple, electronic: tuple | None) -> list[_Part]:
    """The pack's sections in order: cover, index, each source's whole pages, the excerpts, the coded record."""
    reduced = cut.keys if cut is not None else frozenset()
    parts = [_Part("cover", COVER_TITLE, None, cover), _Part("omitted_index", INDEX_TITLE, None, index)]
    for src in sources:
        rows = tuple(r for r in plan.document_pages(src.doc.document_id, included=True)
                     if (r.document_id, r.page) not in reduced)
        parts.append(_Part("record", src.doc.source, src, tuple(src.pdf.pages[r.page - 1] for r in rows), rows))
    if excerpts:
        parts.append(_Part("excerpts", EXCERPTS_TITLE, None, excerpts))
    if electronic is not None:
        parts.append(_Part("electronic", SECTION_TITLE, None, electronic))
    return parts


def _length(parts: list[_Part], duplex: bool) -> int:
    lengths = [len(p.pages) for p in parts]
    return sum(lengths) + (sum(recto_padding(lengths)) if duplex else 0)


def _entry_parts(sheet: Sheet, plan: PackPlan, selection: EntrySelection, sources: list[_Source],
                 electronic: tuple | None, duplex: bool, about: dict) -> tuple[CutExcerpts, list[_Part]]:
    """Entry granularity: cut the candidate cards down, and keep the cut only if the pack gets shorter.

    The cut-down layout is drawn and measured, with the same padding rule as the pack itself,
    against the pack page granularity would build; that one wins ties, since a whole card keeps
    its context. Declined, every page goes whole under a cover that says why.
    """
    # Imported here: the image work (pdfium, numpy) is needed by entry granularity only.
    from .crops import cut_excerpts
    from .excerpt_pages import render_excerpts, worthwhile

    cut = worthwhile(sheet, cut_excerpts(selection, {src.doc.document_id: src.path for src in sources}))
    index = tuple(render_omitted_index(sheet, plan))
    if not cut.reduced:
        return cut, _parts(plan, sources, tuple(render_cover(sheet, plan, excerpts=cut, **about)), index, cut, (),
                           electronic)
    excerpts = tuple(render_excerpts(sheet, cut))
    cutdown = _parts(plan, sources, tuple(render_cover(sheet, plan, excerpts=cut, **about)), index, cut, excerpts,
                     electronic)
    pages = _parts(plan, sources, tuple(render_cover(sheet, plan, **about)), index, None, (), electronic)
    if _length(cutdown, duplex) < _length(pages, duplex):
        return cut, cutdown
    whole = cut.unapplied(NOT_SHORTER)
    return whole, _parts(plan, sources, tuple(render_cover(sheet, plan, excerpts=whole, **about)), index, whole, (),
                         electronic)


@dataclass(frozen=True, slots=True)
class _Layout:
    sections: tuple[PackSection, ...]
    record: tuple[PackPage, ...]
    blanks: int
    pages: int


def _marks(plan: PackPlan, parts: list[_Part], padding: tuple[int, ...]) -> list[Mark]:
    """Every mark the layout needs, in pack order: a blank before a padded section, then one per page."""
    who = patient_text(plan.name, plan.nhs_number, plan.born)
    total = sum(len(part.pages) for part in parts if part.kind == "record")  # whole pages: excerpts are not numbered
    marks: list[Mark] = []
    number, last_size = 0, A4
    for part, pad in zip(parts, padding):
        if pad:  # a blank verso takes the size of the page before it: one size per sheet, front and back
            marks.append(Blank(*last_size, who))
        for i, page in enumerate(part.pages):
            if part.kind != "record":  # generated pages are all A4
                marks.append(Footer(A4[0], f"{who}   ·   {part.title}, page {i + 1} of {len(part.pages)}"))
                last_size = A4
                continue
            number += 1
            row = part.rows[i]
            marks.append(record_stamp(shown_width(page), who, number, total, row.source, row.page,
                                      part.source.doc.page_count))
            width, height = shown_size(page)
            last_size = (width, height + BAND)
    return marks


def _assemble(pdf: pikepdf.Pdf, plan: PackPlan, parts: list[_Part], padding: tuple[int, ...],
              generated: pikepdf.Pdf, marks: range, reduced: frozenset[tuple[int, int]] = frozenset()) -> _Layout:
    """Copy every page into `pdf` in pack order, with its mark; blanks where `padding` asks.

    `reduced` are the included pages sent as excerpts instead of whole (entry granularity).
    """
    next_mark = iter(marks)
    sections, record, blanks, number = [], [], 0, 0
    for part, pad in zip(parts, padding):
        if pad:
            pdf.pages.append(generated.pages[next(next_mark)])
            blanks += 1
        first = len(pdf.pages) + 1
        is_record = part.kind == "record"
        for i, page in enumerate(part.pages):
            pdf.pages.append(page if is_record else generated.pages[page])
            apply_mark(pdf, pdf.pages[-1], generated.pages[next(next_mark)], grow=is_record)
            if is_record:
                number += 1
                record.append(PackPage(len(pdf.pages), number, part.rows[i].source, part.rows[i].page))
        if part.pages:
            sections.append(PackSection(part.kind, part.title, first, len(part.pages), part.title if is_record else None))
    # The pack and the plan must agree page for page (DESIGN §2): every included page is in the
    # pack whole or, under entry granularity, as excerpts; nothing else is.
    whole = [(p.source, p.page) for p in record]
    expected = [(p.source, p.page) for p in plan.included if (p.document_id, p.page) not in reduced]
    if number != len(plan.included) - len(reduced) or whole != expected \
            or not reduced <= {(p.document_id, p.page) for p in plan.included}:
        raise PackBuildError(
            "pack_internal",
            f"the pack would hold {number} record pages (and {len(reduced)} as excerpts) but the plan includes "
            f"{len(plan.included)}; nothing was written; this is a bug in lgd, please report it",
            ExitCode.internal,
        )
    return _Layout(tuple(sections), tuple(record), blanks, len(pdf.pages))


def _outline(pdf: pikepdf.Pdf, sections: tuple[PackSection, ...]) -> None:
    with pdf.open_outline() as outline:
        for s in sections:
            title = s.title if s.kind != "record" else f"{s.title} ({s.pages} page{'s' if s.pages != 1 else ''})"
            outline.root.append(pikepdf.OutlineItem(title, s.first_page - 1))


def save_pack_pdfa(pdf: pikepdf.Pdf, out: Path, when: dt.date) -> str:
    """Make the document-level parts PDF/A, pin every date to `when`, write, validate, rename into place."""
    prepare(pdf, FLAVOUR)
    # prepare() stamps the clock into xmp:MetadataDate; the pack's dates are its stated date instead.
    stamp = dt.datetime.combine(when, dt.time(), dt.timezone.utc).isoformat()
    with pdf.open_metadata(set_pikepdf_as_editor=False) as meta:
        for key in ("xmp:CreateDate", "xmp:ModifyDate", "xmp:MetadataDate"):
            meta[key] = stamp
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        report = save_pdfa(pdf, out, FLAVOUR, repair=False, deterministic_id=True)
    except PdfaError as e:
        raise PackBuildError(
            "pack_not_pdfa",
            f"the pack for {out.name} did not pass PDF/A-2b validation, so it was not written: "
            f"{e.report.summary()}; this is a bug in lgd, please report it with the findings",
            ExitCode.internal,
        ) from e
    os.chmod(out, 0o600)  # a patient record: owner only, as the archive stores them
    return report.summary().splitlines()[0]

