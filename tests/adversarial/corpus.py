"""The hand-written adversarial corpus: load its cases, render them as scans, and adapt them to reconcile."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import io
import tomllib
from dataclasses import dataclass
from pathlib import Path

import img2pdf
import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from digitise.dates import find_dates

HERE = Path(__file__).resolve().parent
KINDS = ("card", "letter", "result", "card_back")
# What digitise is meant to call each kind.
DIGITISED_KIND = {"card": "card", "card_back": "card", "letter": "letter", "result": "result"}
EXPECT = ("include", "omit_ok")
HANDS = ("typed", "humor", "femke", "dkg")
OPTIONS = ("hand", "ink", "top_margin", "ruled", "confidence", "looks_alike", "split", "born")
PAGE_FIELDS = ("entries", "head", "right", "lines", "rows", "tail", "margin")
SYSTEMS = {"SNOMED": "http://snomed.info/sct", "LOCAL": "urn:oid:2.16.840.1.113883.2.1.6.3"}
CSV_HEADER = "date,system,code,display,type,text,nhs_number"
TODAY = dt.date(2024, 1, 1)  # no case is dated later, so dates resolve the same on any day
FONTS = {
    "typed": "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "bold": "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
    "humor": "/usr/share/fonts/truetype/humor-sans/Humor-Sans.ttf",
    "femke": "/usr/share/fonts/truetype/femkeklaver/femkeklaver.ttf",
    "dkg": "/usr/share/fonts/truetype/fifthhorseman/dkg.ttf",
}
PAPER = 236  # grey level of the card stock
FIRST = ("Ada", "Bernard", "Cerys", "Dilip", "Eunice", "Fergus", "Gwen", "Horace", "Ines", "Jago", "Keziah",
         "Lowri", "Mansur", "Nerys", "Osric", "Petra", "Quentin", "Rosalind", "Tamsin", "Ulric", "Verity", "Wystan")
LAST = ("Thornbury", "Pellow", "Ashdown", "Quillan", "Marrable", "Dunstow", "Everleigh", "Gosling", "Hartree",
        "Kettleby", "Lanyon", "Mossop", "Nettlefold", "Orchard", "Pendry", "Rudge", "Sallow", "Trebilcock")


@dataclass(frozen=True, slots=True)
class Note:
    """One dated entry of a card as the GP wrote it."""

    date: str
    text: str


@dataclass(frozen=True, slots=True)
class Page:
    """One sheet of paper: card notes, or letter/result lines (head centred, right block, body left)."""

    notes: tuple[Note, ...] = ()
    head: tuple[str, ...] = ()
    right: tuple[str, ...] = ()
    lines: tuple[str, ...] = ()
    rows: tuple[tuple[str, ...], ...] = ()  # result table: analyte, value, unit, range
    tail: tuple[str, ...] = ()  # result lines under the table
    margin: tuple[str, ...] = ()  # a note written by hand in the right margin, beside the table


@dataclass(frozen=True, slots=True)
class Case:
    id: str
    kind: str
    expect: str
    why: str
    hidden: str
    coded: tuple[str, ...]  # CSV rows: date,system,code,display,type[,text]
    pages: tuple[Page, ...]
    hand: str = "typed"  # typed | humor | femke | dkg
    ink: int = 25  # grey level of the writing; PAPER - ink is the contrast
    top_margin: bool = False  # a card back's one line sits above the first rule
    ruled: bool = True
    confidence: float = 92.0  # how well the text-level test says the page was read
    looks_alike: bool = False  # a two-page case whose cards a scanner would hash alike
    split: bool = False  # each page its own file (two NDR parts) instead of one file
    born: str = ""  # ISO date of birth when the page depends on the patient's age


def digitised_kind(case: Case) -> str:
    """The kind `lgd digitise` should give the case's pages: an empty card back is a blank page."""
    written = any(p.notes or p.lines or p.rows for p in case.pages)
    return DIGITISED_KIND[case.kind] if written else "blank"


def _page(raw: dict) -> Page:
    return Page(tuple(Note(n["date"], n["text"]) for n in raw.get("entries", ())), tuple(raw.get("head", ())),
                tuple(raw.get("right", ())), tuple(raw.get("lines", ())), tuple(tuple(r) for r in raw.get("rows", ())),
                tuple(raw.get("tail", ())), tuple(raw.get("margin", ())))


def load_cases(folder: Path = HERE) -> tuple[Case, ...]:
    """Every case of every *.toml in `folder`, checked for the fields the tests rely on."""
    cases: list[Case] = []
    for path in sorted(folder.glob("*.toml")):
        for raw in tomllib.loads(path.read_text(encoding="utf-8")).get("case", ()):
            unknown = set(raw) - {"id", "kind", "expect", "why", "hidden", "coded", "pages", *OPTIONS, *PAGE_FIELDS}
            if unknown:  # a misspelt field would otherwise be dropped without a word
                raise ValueError(f"{path.name} case {raw.get('id')!r}: unknown fields {sorted(unknown)}")
            pages = tuple(_page(p) for p in raw.get("pages", [raw]))
            extra = {k: raw[k] for k in OPTIONS if k in raw}
            case = Case(raw["id"], raw["kind"], raw["expect"], raw["why"].strip(), raw.get("hidden", ""),
                        tuple(raw.get("coded", ())), pages, **extra)
            _check(case, path.name)
            cases.append(case)
    ids = [c.id for c in cases]
    if len(ids) != len(set(ids)):
        raise ValueError(f"duplicate case ids: {sorted({i for i in ids if ids.count(i) > 1})}")
    return tuple(cases)


def _check(case: Case, where: str) -> None:
    bad = f"{where} case {case.id!r}"
    if case.kind not in KINDS or case.expect not in EXPECT or case.hand not in HANDS:
        raise ValueError(f"{bad}: kind, expect or hand is not one of {KINDS}, {EXPECT}, {HANDS}")
    if case.expect == "include" and not case.hidden:
        raise ValueError(f"{bad}: a must-include case names its hidden fact")
    words = " ".join(page_text(case, p).casefold() for p in case.pages)
    if case.hidden and case.hidden.casefold() not in " ".join(words.split()):
        raise ValueError(f"{bad}: the hidden fact {case.hidden!r} is not written on the page")
    for row in case.coded:
        if len(row.split(",")) not in (5, 6):  # so no display or text may hold a comma
            raise ValueError(f"{bad}: coded row {row!r} is not date,system,code,display,type[,text]")


def without_hidden(case: Case) -> Case:
    """The case with its hidden fact struck out: what the page would be if it held only coded facts.

    A must-include page whose struck-out version is still sent is sent for some other reason,
    so it does not yet show that the rules see its hidden fact (a diagnostic, never asserted).
    """
    def strike(text: str) -> str:
        return " ".join(text.replace(case.hidden, " ").split()) if case.hidden else text

    pages = tuple(Page(tuple(Note(n.date, strike(n.text)) for n in p.notes), p.head, p.right,
                       tuple(strike(ln) for ln in p.lines), tuple(r for r in p.rows if case.hidden not in " ".join(r)),
                       tuple(strike(ln) for ln in p.tail), tuple(ln for ln in (strike(m) for m in p.margin) if ln))
             for p in case.pages)
    return dataclasses.replace(case, pages=pages)


# -- the invented patient ----------------------------------------------------------------


def nhs_number(serial: int) -> str:
    """A Modulus 11 valid number in the unissued 999 range, the `serial`-th such."""
    n = 0
    for base in range(999_000_000, 1_000_000_000):
        total = sum(int(d) * w for d, w in zip(str(base), range(10, 1, -1)))
        check = (11 - total % 11) % 11
        if check == 10 or len(set(str(base))) == 1:
            continue
        if n == serial:
            return f"{base}{check}"
        n += 1
    raise ValueError(serial)


@dataclass(frozen=True, slots=True)
class Patient:
    nhs: str
    name: str
    born: dt.date

    def file_name(self, part: int = 1, parts: int = 1) -> str:
        return f"{part}of{parts}_Lloyd_George_Record_[{self.name}]_[{self.nhs}]_[{self.born:%d-%m-%Y}].pdf"


def patient(serial: int, case: Case) -> Patient:
    """One invented patient per case, born well before the case's first date."""
    name = f"{FIRST[serial % len(FIRST)]} {LAST[serial * 7 % len(LAST)]}"
    if case.born:
        return Patient(nhs_number(serial), name, dt.date.fromisoformat(case.born))
    years = [d.date.year for p in case.pages for n in p.notes for d in find_dates(n.date, None, TODAY)]
    born_by = min(years, default=1990) - 25
    return Patient(nhs_number(serial), name, dt.date(born_by - serial % 30, 1 + serial % 12, 1 + serial % 27))


def fill(text: str, who: Patient) -> str:
    return text.replace("{name}", who.name).replace("{nhs}", f"{who.nhs[:3]} {who.nhs[3:6]} {who.nhs[6:]}") \
        .replace("{dob}", f"{who.born:%d/%m/%Y}")


def coded_csv(case: Case, who: Patient) -> str:
    """The case's coded record as the plain CSV `lgd reconcile --coded` reads."""
    out = [CSV_HEADER]
    for row in case.coded:
        cells = (row.split(",") + [""])[:6]
        cells[1] = SYSTEMS.get(cells[1], cells[1])
        out.append(",".join(cells + [who.nhs]))
    return "\n".join(out) + "\n"


# -- what the page says, as an ideal reading of it ------------------------------------


def page_lines(case: Case, page: Page) -> list[str]:
    """The page's writing line by line in reading order, as a perfect OCR would give it."""
    if case.kind in ("card", "card_back"):
        head = ["Surname Forenames", "Date Clinical notes"] if case.kind == "card" else []
        return head + [f"{n.date} {n.text}" for n in page.notes]
    return [*page.head, *page.right, *page.lines, *(" ".join(r) for r in page.rows), *page.tail, *page.margin]


def page_text(case: Case, page: Page) -> str:
    return " ".join(line for line in page_lines(case, page) if line)


def _typed_date(lines: list[str], born: dt.date) -> tuple[int, dt.date | None, str]:
    """A typed page's date line, date and precision: the first above the salutation that is not a birth date."""
    for i, line in enumerate(lines):
        if line.casefold().startswith("dear"):
            break
        for m in find_dates(line, born, TODAY):
            if not any(t in line[:m.start].casefold() for t in ("dob", "d.o.b", "born", "date of birth")):
                return i, m.date, str(m.precision)
    return -1, None, "day"


def _typed_parts(case: Case, page: Page, who: Patient) -> list[str]:
    """A typed page cut as digitise cuts it, every line in one part.

    A letter: the head (down to "Dear ..."; without one, down to the date), the body, and
    the tail from "Yours ..." on. A result slip: each result row, and each run of other lines.
    """
    if case.kind == "result":
        parts, run = [], [*page.head, *page.right, *page.lines]
        # A table of two blocks side by side (8 cells a row) is read block by block.
        rows = [r[:4] if len(r) == 8 else r for r in page.rows] + [r[4:] for r in page.rows if len(r) == 8]
        for row in rows:
            if any(c.isdigit() for c in row[1]):
                parts += [" ".join(run), " ".join(row)]
                run = []
            else:
                run.append(" ".join(row))
        parts.append(" ".join([*run, *page.tail, *page.margin]))
    else:
        lines = [*page.head, *page.right, *page.lines]
        folded = [ln.casefold() for ln in lines]
        start = next((i + 1 for i, ln in enumerate(folded) if ln.startswith("dear")),
                     _typed_date(lines, who.born)[0] + 1)
        end = next((i for i, ln in enumerate(folded) if i >= start and ln.startswith("yours")), len(lines))
        parts = [" ".join(part) for part in (lines[:start], lines[start:end], lines[end:])]
    return [" ".join(fill(p, who).split()) for p in parts if p.strip()]


def reconcile_inputs(case: Case, serial: int, workdir: Path):
    """THE adapter to reconcile's API: (pages, coded events, patient names) for `decide_record`.

    Keep every reconcile import here, so a change of API is one edit. Pages are what a
    perfect digitise would store: card entries with their written dates (the dates stay
    in the page text, not the entry text); a letter's head, body and tail, or a result
    slip's rows, as entries dated with the page's date.
    """
    from pipelines.clinical.evidence import PaperEntry
    from pipelines.reconcile.decide import PaperPage
    from pipelines.records import plain_csv

    who = patient(serial, case)
    pages = []
    for number, page in enumerate(case.pages, start=1):
        lines = [fill(ln, who) for ln in page_lines(case, page)]
        if case.kind in ("card", "card_back"):
            entries = []
            for note in page.notes:
                m = find_dates(note.date, who.born, TODAY)
                date, precision = (m[0].date, str(m[0].precision)) if m else (None, "day")
                entries.append(PaperEntry(date, precision, fill(note.text, who), case.confidence))
        else:
            _, date, precision = _typed_date(lines, who.born)
            entries = [PaperEntry(date, precision, part, case.confidence) for part in _typed_parts(case, page, who)]
        twin, kind = case.looks_alike and number > 1, digitised_kind(case)
        pages.append(PaperPage(1 if not case.split else number, f"{case.id}-{number}.pdf",
                               1 if case.split else number, kind, kind == "blank",
                               1 if twin and not case.split else None, False, case.confidence,
                               " ".join(ln for ln in lines if ln), tuple(entries),
                               "c3c3c3c33c3c3c3c" if case.looks_alike else ""))
    csv_path = workdir / f"{case.id}.csv"
    csv_path.write_text(coded_csv(case, who), encoding="utf-8")
    return pages, plain_csv.read(csv_path).events, tuple(who.name.split())


# -- rendering a scan ------------------------------------------------------------------


def _font(hand: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(FONTS[hand], size)


def _wrap(text: str, font: ImageFont.FreeTypeFont, width: int) -> list[str]:
    out, line = [], ""
    for word in text.split():
        trial = f"{line} {word}".strip()
        if line and font.getlength(trial) > width:
            out.append(line)
            line = word
        else:
            line = trial
    return out + ([line] if line else [])


def _card(case: Case, page: Page, who: Patient) -> Image.Image:
    """A continuation card, 130 x 180 mm at 300 dpi: printed heading, date column, ruled lines."""
    w, h = 1535, 2126
    img = Image.new("L", (w, h), PAPER)
    d = ImageDraw.Draw(img)
    column, pitch, top = 330, 100, 250
    handwritten = case.hand != "typed"
    font = _font(case.hand, 50 if handwritten else 38)
    if case.kind == "card":
        d.text((70, 90), "Surname", font=_font("bold", 30), fill=60)
        d.text((700, 90), "Forenames", font=_font("bold", 30), fill=60)
        d.text((95, 175), "Date", font=_font("bold", 34), fill=50)
        d.text((column + 260, 175), "Clinical notes", font=_font("bold", 34), fill=50)
        d.line((column, 170, column, h - 60), fill=140, width=3)
    if case.ruled:
        for y in range(top + pitch, h - 60, pitch):
            d.line((40, y, w - 40, y), fill=200 if case.kind == "card" else 222, width=2)
    y = 40 if case.top_margin else top + pitch - 12
    for note in page.notes:
        date_x = 60 if case.kind == "card" else 70
        lines = _wrap(fill(note.text, who), font, w - column - 90)
        if case.kind == "card_back":
            lines = [f"{note.date}  {lines[0]}", *lines[1:]] if lines else [note.date]
        else:
            d.text((date_x, y), note.date, font=font, fill=case.ink, anchor="ls")
        for line in lines:
            x = column + 25 if case.kind == "card" else 70
            d.text((x, y), line, font=font, fill=case.ink, anchor="ls")
            y += pitch
    return img


# Where a table's cells start: analyte, value, unit, range; with two sample columns
# (a cumulative report); or two blocks of four side by side.
_COLUMNS = {4: (150, 620, 800, 1030), 5: (150, 470, 680, 890, 1060), 8: (150, 400, 510, 650, 880, 1130, 1240, 1380)}
MARGIN_X = 1250  # a hand-written margin note's left edge on an A4 page at 200 dpi


def _typed(case: Case, page: Page, who: Patient) -> Image.Image:
    """An A4 letter or lab report at 200 dpi: letterhead, a right-hand block, body lines, a table."""
    w, h = 1654, 2339
    img = Image.new("L", (w, h), 246)
    d = ImageDraw.Draw(img)
    body, bold = _font("typed", 29), _font("bold", 34)
    y, step = 130, 44
    for line in page.head:
        d.text((w / 2, y), fill(line, who), font=bold, fill=case.ink, anchor="ms")
        y += 50
    y += 30
    for line in page.right:
        d.text((w - 150, y), fill(line, who), font=body, fill=case.ink, anchor="rs")
        y += step
    for line in page.lines:
        for part in _wrap(fill(line, who), body, w - 300) or [""]:
            d.text((150, y), part, font=body, fill=case.ink, anchor="ls")
            y += step
    columns = _COLUMNS.get(max((len(r) for r in page.rows), default=4), _COLUMNS[4])
    hand, table_top = _font("humor", 40), y
    for row in page.rows:
        for x, cell in zip(columns, row):
            d.text((x, y), cell, font=body, fill=case.ink, anchor="ls")
        y += step
    for i, line in enumerate(_wrap(" ".join(fill(m, who) for m in page.margin), hand, w - MARGIN_X - 40)):
        d.text((MARGIN_X, table_top + step + 52 * i), line, font=hand, fill=50, anchor="ls")
    for line in page.tail:
        d.text((150, y), fill(line, who), font=body, fill=case.ink, anchor="ls")
        y += step
    if y > h - 100:
        raise ValueError(f"case {case.id}: the page runs off the bottom of A4")
    return img


def _scanned(img: Image.Image, seed: str, paper: int) -> Image.Image:
    """Paper grain, a slight blur and a fraction of a degree of skew, the same on every run."""
    rng = np.random.default_rng(int.from_bytes(hashlib.sha256(seed.encode()).digest()[:8], "big"))
    grain = np.asarray(img, dtype=np.int16) + rng.integers(-6, 7, (img.height, img.width), dtype=np.int16)
    img = Image.fromarray(np.clip(grain, 0, 255).astype(np.uint8), "L").filter(ImageFilter.GaussianBlur(0.7))
    return img.rotate(float(rng.uniform(-0.4, 0.4)), resample=Image.BILINEAR, fillcolor=paper)


def _jpeg(img: Image.Image, dpi: int) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=88, dpi=(dpi, dpi))
    return buf.getvalue()


def write_scans(case: Case, serial: int, folder: Path) -> list[Path]:
    """The case as National Document Repository PDFs in `folder`: one file, or one per page when split."""
    who = patient(serial, case)
    images = render(case, serial)
    groups = [[i] for i in images] if case.split else [images]
    paths = []
    for part, group in enumerate(groups, start=1):
        path = folder / who.file_name(part, len(groups))
        path.write_bytes(img2pdf.convert([_jpeg(img, dpi) for img, dpi in group]))
        paths.append(path)
    return paths


def render(case: Case, serial: int) -> list[tuple[Image.Image, int]]:
    """Each page of the case as a scanned image with its dpi."""
    who = patient(serial, case)
    out = []
    for n, page in enumerate(case.pages):
        if case.kind in ("card", "card_back"):
            out.append((_scanned(_card(case, page, who), f"{case.id}{n}", PAPER), 300))
        else:
            out.append((_scanned(_typed(case, page, who), f"{case.id}{n}", 246), 200))
    return out
