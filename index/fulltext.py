"""The Whoosh full-text index of page texts: one index document per page, behind a small interface.

All Whoosh code in lgd lives here, so the engine could be replaced without touching the
rest; that is why this module is longer than most. The catalogue is the record of truth:
the index stores no page text (snippets and highlight boxes come from the catalogue's
words) and can be rebuilt from the catalogue at any time.

Each page is indexed twice: `text` is stemmed English with positions (exact words and
phrases), `folded` is unstemmed, with the letters OCR confuses folded together, and is
where fuzzy terms are matched. A long query word is also tried split in two, as a phrase,
because OCR breaks words ("amoxi cillin"). A query word becomes an OR of: the word itself (highest boost),
its clinical synonyms and abbreviations from the vocabulary, its OCR-folded form, and,
for longer words, a fuzzy term and the word split in two - so exact matches always rank above fuzzy ones.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import pickle
import functools
import re
import stat
import struct
import zlib
from collections.abc import Callable, Iterable
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

from whoosh import collectors, index
from whoosh.analysis import Filter, LowercaseFilter, RegexTokenizer, StemFilter, StopFilter
from whoosh.fields import ID, KEYWORD, STORED, TEXT, Schema
from whoosh.index import LockError
from whoosh.qparser import OrGroup, QueryParser
from whoosh.support.levenshtein import levenshtein
from whoosh.query import And, FuzzyTerm, NullQuery, Or, Phrase, Query, Term, TermRange
from whoosh.automata.lev import levenshtein_automaton
from whoosh.codec.base import Automata
from whoosh.codec.whoosh3 import W3Codec
from whoosh.reading import IndexReader, SegmentReader
from whoosh.searching import Searcher
from whoosh.writing import MERGE_SMALL, IndexWriter

# The one exception to index/ knowing nothing of pipelines/: search and reconcile must compare
# words alike, so the vocabulary and OCR folding live once, in pipelines/clinical (two pure
# modules that import nothing of the archive).
from pipelines.clinical.text import fold
from pipelines.clinical.vocabulary import Vocabulary

from .errors import ArchiveError, ArchiveErrorCode, from_oserror


FULLTEXT_DIR = "fulltext"
SCHEMA_VERSION = "3"
# Words as GP notes write them: "#" (fracture), "C/O", "3/52", "250mg", "o'clock".
TOKEN = r"#|\w+(?:[./']\w+)*"
# The confusions Tesseract makes most on these scans, folded to one letter on both sides.
BOOST_EXACT, BOOST_SYNONYM, BOOST_FOLDED, BOOST_FUZZY = 4.0, 2.0, 1.0, 0.4
FUZZY_MIN_LENGTH = 5  # shorter words have too many neighbours one edit away
SPLIT_MIN_LENGTH = 8
SNIPPET_WORDS = 24
# Bounds on what a query may ask: Whoosh's parser and query tree recurse once per bracket and
# per operator, and each word expands to a dozen alternatives, so a pasted page of text (or a
# thousand brackets) would exhaust the stack or the patience of everyone else on the server.
MAX_QUERY_CHARS = 2000
MAX_QUERY_WORDS = 100
MAX_QUERY_DEPTH = 20


MAX_SEGMENTS = 8


def _merge_tiered(writer: IndexWriter, segments: list) -> list:
    """Whoosh's small-segment merge, then, past MAX_SEGMENTS, merge the smaller half.

    Whoosh alone never merges segments of similar, large size, so a growing archive piles
    up segments and every query pays for each one; halving keeps the count logarithmic.
    """
    segments = MERGE_SMALL(writer, segments)
    if len(segments) <= MAX_SEGMENTS:
        return segments
    ordered = sorted(segments, key=lambda s: s.doc_count_all())
    half = len(ordered) // 2 + 1
    for seg in ordered[:half]:
        reader = SegmentReader(writer.storage, writer.schema, seg)
        writer.add_reader(reader)
        reader.close()
    return ordered[half:]


def _codec() -> W3Codec:
    # Larger, better-compressed posting blocks: 14% smaller than Whoosh's defaults on
    # card-sized pages, which the index-size target (under 2x the raw text) needs.
    return W3Codec(blocklimit=512, compression=9)


class _FoldFilter(Filter):
    def __call__(self, tokens):
        for t in tokens:
            t.text = fold(t.text)
            yield t


class _WordsOnly(Filter):
    """Drop tokens with no letter: dates, doses and readings ("12/06/82", "150/95").

    Dates are searched through the entry-date filter, and each such number is a term of
    its own, which in Whoosh costs more index space than all the words of a page.
    """

    def __call__(self, tokens):
        for t in tokens:
            if _HAS_LETTER.search(t.text):
                yield t


_HAS_LETTER = re.compile(r"[^\W\d_]|#")


def _stemmed():
    return RegexTokenizer(TOKEN) | LowercaseFilter() | _WordsOnly() | StopFilter(minsize=1) | StemFilter()


def _folded():
    return RegexTokenizer(TOKEN) | LowercaseFilter() | _WordsOnly() | _FoldFilter()


def _schema() -> Schema:
    # Every distinct term costs Whoosh about 170 bytes, so nothing unique per page is
    # indexed: pages are found by document, patient, kind and entry month, and identified
    # by the small stored `ref`; everything else about a page is in the catalogue.
    return Schema(
        document_id=ID,
        nhs_number=ID,
        kind=ID,
        months=KEYWORD,  # yyyymm of each entry date: a coarse filter, refined with `ref`
        ref=STORED,  # (document_id, page, (yyyymmdd, ...))
        text=TEXT(analyzer=_stemmed(), phrase=True),
        folded=TEXT(analyzer=_folded(), phrase=False),
    )


@dataclass(frozen=True, slots=True)
class PageDoc:
    """One page as the index sees it."""

    nhs_number: str
    document_id: int
    source: str
    page: int
    kind: str
    dates: tuple[dt.date, ...]
    text: str


@dataclass(frozen=True, slots=True)
class QueryTerms:
    """The terms a query looks for, field by field: enough to tell which page words matched."""

    text: frozenset[str]  # stemmed terms (words, synonyms, phrase words)
    folded: frozenset[str]  # OCR-folded terms
    fuzzy: tuple[tuple[str, int, int], ...]  # (folded term, max distance, prefix length)

    @classmethod
    def of(cls, q: Query) -> QueryTerms:
        text, folded, fuzzy = set(), set(), []
        for leaf in q.leaves():
            if isinstance(leaf, FuzzyTerm):
                fuzzy.append((str(leaf.text), leaf.maxdist, leaf.prefixlength))
            elif isinstance(leaf, Phrase):
                text.update(str(w) for w in leaf.words)
            elif isinstance(leaf, Term) and leaf.fieldname in ("text", "folded"):
                (text if leaf.fieldname == "text" else folded).add(str(leaf.text))
        return cls(frozenset(text), frozenset(folded), tuple(fuzzy))


@dataclass(frozen=True, slots=True)
class Hit:
    document_id: int
    page: int
    score: float
    dates: tuple[dt.date, ...]
    matched: QueryTerms  # what the query looks for, to mark the page's matching words
    partial: bool = False  # holds only some of the query's words


@dataclass(frozen=True, slots=True)
class SearchResult:
    """`total` counts every matching page; `hits` holds at most the `limit` best."""

    total: int  # pages holding every word
    hits: tuple[Hit, ...]
    partial: int = 0  # further pages holding some of the words (listed after, if room)


class QueryError(ValueError):
    """A query that cannot be searched, with a message saying how to write it."""


def _ymd(d: dt.date) -> int:
    return d.year * 10000 + d.month * 100 + d.day


def _date(n: int) -> dt.date:
    return dt.date(n // 10000, n // 100 % 100, n % 100)


class _SharedFuzzy(FuzzyTerm):
    """A FuzzyTerm whose expansions, segment by segment, are shared by every query of one search.

    Whoosh expands a fuzzy term (builds a Levenshtein automaton, walks a segment's term
    dictionary with it) afresh for every size estimate and every matcher, several times per
    segment and query; the strict and the loose query of one search repeat it all. Here the
    automaton is built once per search and each segment walked once. Matching and scoring
    are Whoosh's own: only the list of expansions is remembered.
    """

    def __init__(self, fuzzy: FuzzyTerm, expansions: dict) -> None:
        super().__init__(fuzzy.fieldname, fuzzy.text, fuzzy.boost, fuzzy.maxdist, fuzzy.prefixlength, fuzzy.constantscore)
        self._expansions = expansions  # one search's: automata, and each segment's expanded terms

    def _btexts(self, ixreader: IndexReader):
        term = (self.fieldname, self.text, self.maxdist, self.prefixlength)
        key = (id(ixreader), *term)
        words = self._expansions.get(key)
        if words is None:
            if isinstance(ixreader, SegmentReader):
                # What SegmentReader.terms_within does, with the automaton built only once.
                dfa = self._expansions.get(term)
                if dfa is None:
                    dfa = self._expansions[term] = levenshtein_automaton(self.text, self.maxdist, self.prefixlength).to_dfa()
                words = tuple(Automata.find_matches(dfa, ixreader.cursor(self.fieldname)))
            else:
                words = tuple(super()._btexts(ixreader))
            self._expansions[key] = words
        return words


def _for_one_search(q: Query, expansions: dict, *, lazy_unions: bool) -> Query:
    """A copy of `q` for one search: its fuzzy terms share `expansions`, and with `lazy_unions` each OR is matched lazily.

    On a segment of up to 5,000 pages Whoosh matches an OR by first loading every page of
    every alternative into an array. When the search is for one patient (about ten pages)
    the conjunction then skips straight to those pages, and a lazy tree of unions, which
    can skip too, does a fraction of the work; a page's score is the same sum, added in
    another order. (Whoosh's `apply`, under `accept`, drops an OR's coordination `scale`;
    the builder's queries have already lost theirs the same way.)
    """

    def adapt(node: Query) -> Query:
        if isinstance(node, FuzzyTerm):
            return _SharedFuzzy(node, expansions)
        if lazy_unions and type(node) is Or:
            node.matcher_type = Or.DEFAULT_MATCHER
        return node

    return q.accept(adapt)


class QueryBuilder:
    """Turns what a clinician types into a Whoosh query that tolerates shorthand and OCR slips."""

    def __init__(self, vocabulary: Vocabulary) -> None:
        self.vocabulary = vocabulary
        plain = Schema(text=TEXT(analyzer=RegexTokenizer(TOKEN) | LowercaseFilter()), kind=ID, source=ID)
        self._parser = QueryParser("text", plain)
        # Any of the words, ranked up the more of them a page holds.
        self._loose_parser = QueryParser("text", plain, group=OrGroup.factory(0.9))
        self._stem = _stemmed()

    def _stems(self, words: Iterable[str]) -> list[str]:
        return [t.text for w in words for t in self._stem(w)]

    def _phrase_or_term(self, form: str, boost: float) -> Query | None:
        stems = self._stems(re.findall(TOKEN, form.lower()))
        if not stems:
            return None
        return Term("text", stems[0], boost=boost) if len(stems) == 1 else Phrase("text", stems, boost=boost)

    def _word(self, word: str) -> Query:
        """One query word: exact, synonyms, OCR-folded, and (if long enough) fuzzy."""
        if not _HAS_LETTER.search(word):
            return NullQuery  # numbers are not indexed (see _WordsOnly): use the date filters
        options: list[Query] = []
        exact = self._phrase_or_term(word, BOOST_EXACT)
        if exact is not None:
            options.append(exact)
        for alt in self.vocabulary.alternatives(word):
            q = self._phrase_or_term(alt, BOOST_SYNONYM)
            if q is not None:
                options.append(q)
        folded = fold(word)
        options.append(Term("folded", folded, boost=BOOST_FOLDED))
        if len(word) >= FUZZY_MIN_LENGTH and word.isalpha():
            # Distance 2 even for short words: a swapped pair of letters is two edits.
            options.append(FuzzyTerm("folded", folded, boost=BOOST_FUZZY, maxdist=2 if len(word) >= 6 else 1, prefixlength=1))
        if len(word) >= SPLIT_MIN_LENGTH and word.isalpha():
            # OCR breaks long words ("amoxi cillin"): try each split as a two-word phrase.
            for i in range(3, len(word) - 2):
                stems = self._stems([word[:i], word[i:]])
                if len(stems) == 2:
                    options.append(Phrase("text", stems, boost=BOOST_FUZZY))
        return Or(options)

    def _phrase(self, words: list[str]) -> Query:
        options: list[Query] = [Phrase("text", self._stems(words), boost=BOOST_EXACT)]
        for alt in self.vocabulary.alternatives(" ".join(words)):
            q = self._phrase_or_term(alt, BOOST_SYNONYM)
            if q is not None:
                options.append(q)
        return Or(options)

    def _rewrite(self, q: Query, sources: Callable[[str], Iterable[int]] | None = None) -> Query:
        if isinstance(q, Term) and q.fieldname == "text":
            return self._word(q.text)
        if isinstance(q, Phrase):
            return self._phrase(list(q.words))
        if isinstance(q, Term) and q.fieldname == "kind":
            return q
        if isinstance(q, Term) and q.fieldname == "source":
            # Source names are not indexed (each would be a term of its own): the catalogue
            # says which documents carry the exact name, and those documents are searched.
            ids = sorted(set(sources(str(q.text)))) if sources is not None else []
            if not ids:
                return Term("document_id", "none")  # matches nothing, unlike NullQuery (which vanishes)
            return Or([Term("document_id", str(i)) for i in ids]) if len(ids) > 1 else Term("document_id", str(ids[0]))
        if q.is_leaf():
            raise QueryError(f"'{q}' is not supported here; use words, \"phrases\", AND, OR, NOT, kind: and source:")
        return q.apply(lambda child: self._rewrite(child, sources))

    def _quote_vocabulary_phrases(self, text: str) -> str:
        """Quote multi-word clinical terms ("heart attack") so they expand as one concept."""
        parts = re.split(r'("[^"]*")', text)
        for i, part in enumerate(parts):
            if part.startswith('"'):
                continue
            words = part.split()
            spans = [s for s in self.vocabulary.expand_query_terms(words) if s[1] - s[0] > 1]
            for start, end, _ in sorted(spans, reverse=True):
                if any(w.upper() in ("AND", "OR", "NOT") or ":" in w for w in words[start:end]):
                    continue
                words[start:end] = ['"' + " ".join(words[start:end]) + '"']
            # Keep the spacing around the part: `source:"name"` must stay joined to its field.
            lead, trail = part[: len(part) - len(part.lstrip())], part[len(part.rstrip()):]
            parts[i] = lead + " ".join(words) + trail if words else part
        return "".join(parts)

    def has_several_words(self, text: str) -> bool:
        return len(re.findall(TOKEN, text)) > 1 and not re.search(r"\b(AND|OR|NOT)\b|\"", text)

    @staticmethod
    def check_size(text: str) -> None:
        """Refuse a query too long or too deeply bracketed to search (QueryError)."""
        if len(text) > MAX_QUERY_CHARS:
            raise QueryError(f"the query is {len(text):,} characters long; search for at most {MAX_QUERY_CHARS:,} (a few words or phrases)")
        words = len(re.findall(TOKEN, text))
        if words > MAX_QUERY_WORDS:
            raise QueryError(f"the query has {words:,} words; search for at most {MAX_QUERY_WORDS} words at a time")
        depth = deepest = 0
        for ch in text:
            depth += {"(": 1, ")": -1}.get(ch, 0)
            deepest = max(deepest, depth)
            if depth < 0:
                break
        if depth != 0:
            raise QueryError("the query's brackets do not match; check each ( has its )")
        if deepest > MAX_QUERY_DEPTH:
            raise QueryError(f"the query nests brackets {deepest} deep; use at most {MAX_QUERY_DEPTH} levels")

    def build(self, text: str, loose: bool = False, sources: Callable[[str], Iterable[int]] | None = None) -> Query:
        """The Whoosh query for `text`; `sources(name)` gives the ids of the documents named `name` (for source:)."""
        if text.count('"') % 2:
            raise QueryError('the query has an unmatched " (quote); close the phrase or remove the quote')
        self.check_size(text)
        try:
            return self._build(text, loose, sources)
        except RecursionError:
            raise QueryError(f"the query is too complex to search; use fewer words, operators and brackets") from None

    def _build(self, text: str, loose: bool, sources: Callable[[str], Iterable[int]] | None) -> Query:
        # Loosely, each word stands alone (with its own synonyms and fuzzy forms), so that a
        # clinical phrase OCR half-read ("itchy cash") still finds its page.
        parsed = self._loose_parser.parse(text) if loose else self._parser.parse(self._quote_vocabulary_phrases(text))
        if parsed is None or parsed is NullQuery:
            raise QueryError("there is nothing to search for in the query; type a word or a \"phrase\"")
        if loose and isinstance(parsed, Or):
            # kind: and source: are filters: loosely, the words are optional, never the filters.
            fields = [c for c in parsed.subqueries if isinstance(c, Term) and c.fieldname in ("kind", "source")]
            words = [c for c in parsed.subqueries if not (isinstance(c, Term) and c.fieldname in ("kind", "source"))]
            if fields and words:
                parsed = And([*fields, Or(words, scale=getattr(parsed, "scale", None))])
        rewritten = self._rewrite(parsed, sources).normalize()
        if rewritten is NullQuery:
            raise QueryError("the query has only numbers, which are not indexed; search for words, and use --from/--to for dates")
        return rewritten


# What reading a truncated or damaged segment raises inside Whoosh (its stored fields and
# segment lists are pickles): "EOFError: Ran out of input", and the like.
_DAMAGE = (EOFError, pickle.UnpicklingError, struct.error, zlib.error)


def _readable(method):
    """Turn Whoosh's errors on a damaged segment into ArchiveError('archive_corrupt') saying to rebuild."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except _DAMAGE as exc:
            raise _corrupt(self.folder, f"{type(exc).__name__}: {exc}") from exc

    return wrapper


def check_private(folder: Path) -> None:
    """Refuse an index folder (or a file in it) that another user owns or others could write.

    Whoosh keeps its table of contents and stored fields as Python pickles, and unpickling
    runs code: whoever can write the index could run code as every user of lgd.

    Raises:
        ArchiveError: `archive_insecure`, naming the folder and the fix.
    """
    me = os.geteuid()
    try:
        items = [folder, *folder.iterdir()] if folder.is_dir() and not folder.is_symlink() else [folder]
        stats = [(p, p.lstat()) for p in items]
    except FileNotFoundError:
        return
    except OSError as exc:
        raise (from_oserror(exc, folder.parent) or exc) from exc
    for path, st in stats:
        if stat.S_ISLNK(st.st_mode):
            problem = f"{path} is a symbolic link"
        elif st.st_uid != me:
            problem = f"{path} is owned by another user (uid {st.st_uid}, lgd runs as uid {me})"
        elif st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            problem = f"{path} can be written by other users (mode {stat.S_IMODE(st.st_mode):o})"
        else:
            continue
        raise ArchiveError(
            ArchiveErrorCode.archive_insecure,
            f"Refusing the full-text index: {problem}. The index holds Python pickles that lgd loads, so "
            f"whoever can write it can run code as you. If you trust it, make it private "
            f"(chown -R $(id -un) {folder}; chmod -R go-rwx {folder}); otherwise run `lgd index rebuild`, "
            "which replaces it with a new one made from the catalogue.",
        )


def _make_private(folder: Path) -> None:
    """Take group and other permissions off the index's files (whatever the umask made them)."""
    with suppress(OSError):
        for p in [folder, *folder.iterdir()]:
            mode = stat.S_IMODE(p.lstat().st_mode)
            if mode & 0o077 and not p.is_symlink():
                p.chmod(mode & 0o700)


class FullText:
    """The archive's Whoosh index. Searching needs no lock; writing takes the index's write lock."""

    def __init__(self, ix: index.Index, folder: Path, lock_timeout: float) -> None:
        self._ix = ix
        self.folder = folder
        self._lock_timeout = lock_timeout
        self._queries = QueryBuilder(Vocabulary.load())
        self._stem, self._fold = _stemmed(), _folded()
        self._searcher: Searcher | None = None
        self._searcher_commit: tuple[int, int, int] | None = None

    @classmethod
    def create(cls, folder: Path) -> None:
        """Make an empty index in `folder` (which must be empty or absent)."""
        folder.mkdir(parents=True, exist_ok=True)
        index.create_in(str(folder), _schema()).close()
        (folder / "LGD_SCHEMA").write_text(SCHEMA_VERSION)
        _make_private(folder)

    @classmethod
    def open(cls, archive_dir: Path, *, create: bool = True, lock_timeout: float = 30.0, folder: Path | None = None) -> FullText:
        """Open the index in `archive_dir`/fulltext, creating it when `create` and absent.

        Only ever open the archive's own index: Whoosh keeps stored fields and its table of
        contents as pickles, and unpickling a file from elsewhere can run arbitrary code.

        Raises:
            ArchiveError: no index and not `create`; the folder holds something that is not an
                lgd index, or an index of an older lgd (rebuild it); the disk is read-only or full.
        """
        folder = folder or Path(archive_dir) / FULLTEXT_DIR
        check_private(folder)
        try:
            if index.exists_in(str(folder)):
                version = (folder / "LGD_SCHEMA").read_text().strip() if (folder / "LGD_SCHEMA").exists() else "1"
                if version != SCHEMA_VERSION:
                    raise ArchiveError(
                        ArchiveErrorCode.archive_outdated,
                        f"The full-text index {folder} was made by an older lgd; run "
                        "`lgd index rebuild` to recreate it from the catalogue (no OCR needed).",
                    )
                ix = index.open_dir(str(folder))
            elif folder.is_dir() and any(folder.iterdir()):
                raise _corrupt(folder, "it holds files but no Whoosh index")
            elif not create:
                raise ArchiveError(
                    ArchiveErrorCode.archive_missing,
                    f"There is no full-text index at {folder}. Check --archive; digitising into "
                    "the archive creates it.",
                )
            else:
                cls.create(folder)
                ix = index.open_dir(str(folder))
        except OSError as exc:
            raise (from_oserror(exc, Path(archive_dir)) or exc) from exc
        except (index.IndexError, EOFError, ValueError, TypeError, pickle.UnpicklingError, struct.error) as exc:
            # What a damaged or foreign table of contents raises while being read.
            raise _corrupt(folder, str(exc) or type(exc).__name__) from exc
        if set(ix.schema.names()) != set(_schema().names()):
            ix.close()
            raise _corrupt(folder, f"its fields are {sorted(ix.schema.names())}")
        return cls(ix, folder, lock_timeout)

    def close(self) -> None:
        if self._searcher is not None:
            self._searcher.close()
            self._searcher = None
        self._ix.close()

    def __enter__(self) -> FullText:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _writer(self) -> IndexWriter:
        try:
            return self._ix.writer(limitmb=64, timeout=self._lock_timeout, delay=0.1, codec=_codec())
        except LockError as exc:
            raise ArchiveError(
                ArchiveErrorCode.archive_locked,
                f"The full-text index {self.folder} is being written by another lgd process "
                f"(waited {self._lock_timeout:g} s). Wait for it to finish and run the command "
                "again; the lock is released when that process ends.",
            ) from exc
        except OSError as exc:
            raise (from_oserror(exc, self.folder.parent) or exc) from exc

    def _commit(self, writer: IndexWriter, work: Callable[[IndexWriter], int], merge: bool = True) -> int:
        """Run `work(writer)` and commit once; on any error give the writer up, releasing the lock."""
        try:
            count = work(writer)
            # merge=True folds small segments together as they accumulate; never optimize
            # here: rewriting the whole index per batch would make ingest quadratic.
            writer.commit(mergetype=_merge_tiered) if merge else writer.commit(merge=False)
        except OSError as exc:
            _abandon(writer)
            raise (from_oserror(exc, self.folder.parent) or exc) from exc
        except _DAMAGE as exc:
            _abandon(writer)
            raise _corrupt(self.folder, f"{type(exc).__name__}: {exc}") from exc
        except BaseException:
            _abandon(writer)
            raise
        _make_private(self.folder)
        return count

    @_readable
    def add_pages(self, docs: Iterable[PageDoc], *, merge: bool = True) -> int:
        """Add pages in one commit, replacing every page already indexed for their documents.

        Pages are grouped by document, so re-adding a document (in one call) is harmless.

        Raises:
            ArchiveError: another process holds the write lock past `lock_timeout`, or the
                disk is read-only or full (nothing of the batch is committed).
        """
        docs = list(docs)

        def work(writer: IndexWriter) -> int:
            for document_id in {d.document_id for d in docs}:
                writer.delete_by_term("document_id", str(document_id))
            for d in docs:
                writer.add_document(
                    document_id=str(d.document_id),
                    nhs_number=d.nhs_number,
                    kind=str(d.kind),
                    months=" ".join(sorted({f"{x.year:04d}{x.month:02d}" for x in d.dates})),
                    ref=(int(d.document_id), int(d.page), tuple(_ymd(x) for x in d.dates)),
                    text=d.text,
                    folded=d.text,
                )
            return len(docs)

        return self._commit(self._writer(), work, merge)

    @_readable
    def delete_document(self, document_id: int) -> int:
        """Remove every page of a document; returns how many pages were removed."""
        return self._commit(self._writer(), lambda w: w.delete_by_term("document_id", str(int(document_id))))

    @_readable
    def optimize(self) -> None:
        """Merge all segments into one: for after a rebuild, never on the ingest path."""
        writer = self._writer()
        try:
            writer.commit(optimize=True)
        except BaseException:
            _abandon(writer)
            raise
        _make_private(self.folder)

    @_readable
    def doc_count(self) -> int:
        """Number of pages in the index."""
        return self._ix.doc_count()

    @_readable
    def pages(self) -> dict[str, tuple[int, ...]]:
        """Every indexed page as "document_id:page" -> its entry dates (yyyymmdd)."""
        with self._ix.searcher() as searcher:
            return {f"{f['ref'][0]}:{f['ref'][1]}": tuple(f["ref"][2]) for f in searcher.all_stored_fields()}

    @_readable
    def page_patients(self) -> dict[str, str]:
        """Every indexed page as "document_id:page" -> the NHS number the index files it under."""
        out: dict[str, str] = {}
        with self._ix.searcher() as searcher:
            for term in list(searcher.reader().lexicon("nhs_number")):
                nhs = term.decode() if isinstance(term, bytes) else str(term)
                for docnum in searcher.docs_for_query(Term("nhs_number", nhs)):  # live pages only
                    ref = searcher.stored_fields(docnum)["ref"]
                    out[f"{ref[0]}:{ref[1]}"] = nhs
        return out

    @_readable
    def search(
        self,
        query: str,
        nhs_number: str | None = None,
        limit: int = 10,
        *,
        date_from: dt.date | None = None,
        date_to: dt.date | None = None,
        kind: str | None = None,
        sources: Callable[[str], Iterable[int]] | None = None,
        dated_match: Callable[[int, int, QueryTerms], bool] | None = None,
    ) -> SearchResult:
        """Pages matching `query`, best first; filters on patient, entry dates and page kind.

        `sources(name)` gives the ids of the documents with that exact source name (for
        `source:"..."`; without it such a query matches nothing). With a date filter,
        `dated_match(document_id, page, terms)` may further refuse a page whose matched words
        are not in an entry of the period (the index knows only the page's dates).

        Raises:
            QueryError: the query is malformed, empty, too long or too deep (the message says how to fix it).
        """
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        searcher = self._current_searcher()
        expansions: dict = {}
        lazy = nhs_number is not None
        strict_query = _for_one_search(self._queries.build(query, sources=sources), expansions, lazy_unions=lazy)
        strict = self._guarded_run(searcher, strict_query, nhs_number, kind, date_from, date_to, limit, dated_match)
        if len(strict.hits) >= limit or not self._queries.has_several_words(query):
            return strict
        # Hand-writing loses words to OCR: when too few pages hold every word, pages that
        # hold some of them follow, ranked by how much they hold, marked as partial.
        loose_query = _for_one_search(self._queries.build(query, loose=True, sources=sources), expansions, lazy_unions=lazy)
        loose = self._guarded_run(searcher, loose_query, nhs_number, kind, date_from, date_to, limit, dated_match)
        seen = {(h.document_id, h.page) for h in strict.hits}
        extra = [dataclasses.replace(h, partial=True) for h in loose.hits if (h.document_id, h.page) not in seen]
        return SearchResult(strict.total, strict.hits + tuple(extra[: limit - len(strict.hits)]), partial=loose.total - strict.total)

    def _current_searcher(self) -> Searcher:
        """A searcher on the index's latest commit, kept from one search to the next.

        Opening one copies every segment's term dictionary into memory, which cost as much as
        the query itself on a 100,000-page index, so it is reopened only when a commit (from
        this or another process, or a rebuild swapping the folder) has changed the index.
        Not `Searcher.refresh()`: in whoosh-reloaded 2.7.5 the refreshed reader keeps the
        replaced segments too, and counts pages twice after a merge.
        """
        commit = self._latest_commit()
        if self._searcher is not None and (commit is None or commit != self._searcher_commit):
            self._searcher.close()
            self._searcher = None
        if self._searcher is None:
            self._searcher = self._ix.searcher()
            self._searcher_commit = commit
        return self._searcher

    def _latest_commit(self) -> tuple[int, int, int] | None:
        """The latest commit's generation and its table of contents' inode and time, or None if unreadable.

        The generation alone is not enough: `lgd index rebuild` swaps in a new folder whose
        generation may happen to equal the old one's.
        """
        generation = self._ix.latest_generation()
        try:
            toc = os.stat(self.folder / f"_{self._ix.indexname}_{generation}.toc")
        except OSError:
            return None  # being replaced by a commit right now: open afresh
        return generation, toc.st_ino, toc.st_mtime_ns

    def _guarded_run(self, searcher: Searcher, q: Query, *args) -> SearchResult:
        try:
            return self._run(searcher, q, *args)
        except RecursionError:
            raise QueryError("the query is too complex to search; use fewer words, operators and brackets") from None

    def _run(self, searcher: Searcher, q: Query, nhs_number, kind, date_from, date_to, limit, dated_match=None) -> SearchResult:
        # Filters are conjunctions, not search(filter=...): Whoosh 2.7.5 miscounts filtered
        # searches (an empty filter counts every match; with terms=True it ignores the filter).
        conditions: list[Query] = [q]
        if nhs_number is not None:
            conditions.append(Term("nhs_number", nhs_number))
        if kind is not None:
            conditions.append(Term("kind", kind))
        dated = date_from is not None or date_to is not None
        if dated:
            low = f"{date_from.year:04d}{date_from.month:02d}" if date_from else None
            high = f"{date_to.year:04d}{date_to.month:02d}" if date_to else None
            conditions.append(TermRange("months", low, high))
        q = And(conditions) if len(conditions) > 1 else q
        low_day = _ymd(date_from) if date_from else 0
        high_day = _ymd(date_to) if date_to else 99999999
        # With a date filter the index narrows by month; the exact days are checked here,
        # over every match, so that `total` stays exact.
        # One pass scores and counts every match (see _CountingTopCollector). (Asking Whoosh
        # for matched terms as well makes the count wrong in 2.7.5, so they are worked out
        # from the query.)
        collector = collectors.UnlimitedCollector() if dated else _CountingTopCollector(limit)
        searcher.search_with_collector(q, collector)
        results = collector.results()
        terms = QueryTerms.of(q)
        hits = []
        total = 0
        for h in results:
            document_id, page, days = h["ref"]
            if dated and not any(low_day <= d <= high_day for d in days):
                continue
            if dated and dated_match is not None and not dated_match(document_id, page, terms):
                continue
            total += 1
            if len(hits) < limit:
                hits.append(Hit(document_id, page, float(h.score or 0.0), tuple(sorted(_date(d) for d in days)), terms))
        return SearchResult(total=total if dated else len(results), hits=tuple(hits))

    def word_matches(self, word: str, terms: QueryTerms) -> bool:
        """Whether a page word is one the query looks for (for highlight boxes and snippets)."""
        if any(t.text in terms.text for t in self._stem(word)):
            return True
        for t in self._fold(word):
            if t.text in terms.folded:
                return True
            for fuzzy, maxdist, prefix in terms.fuzzy:
                if t.text[:prefix] == fuzzy[:prefix] and levenshtein(t.text, fuzzy, maxdist + 1) <= maxdist:
                    return True
        return False


class _CountingTopCollector(collectors.TopCollector):
    """The `limit` best matches, found by visiting (and so counting) every match.

    Whoosh's own top-N collection skips blocks and, every few matches, swaps its matcher for
    one that leaves out whatever can no longer reach the top N, so its count falls short:
    38,959 archive-wide "cough OR wheeze" pages were counted as 8,190. Here the matcher is
    only ever simplified (exhausted branches dropped, Whoosh's `replace(0)`), never pruned.
    """

    SIMPLIFY_EVERY = 10  # matches, as Whoosh's collectors do

    def __init__(self, limit: int) -> None:
        super().__init__(limit, usequality=False)

    def matches(self):
        matcher = self.matcher
        countdown = 0
        while matcher.is_active():
            if countdown == 0:
                # collect() scores through self.matcher, so keep it the current one.
                self.matcher = matcher = matcher.replace(0)
                if not matcher.is_active():
                    break
                countdown = self.SIMPLIFY_EVERY
            countdown -= 1
            yield matcher.id()
            matcher.next()


def snippet(words: list[str], marks: list[bool], width: int = SNIPPET_WORDS) -> str:
    """A window of the page's words around the first matches, matched words as [word]."""
    if not words:
        return ""
    first = next((i for i, m in enumerate(marks) if m), 0)
    start = max(0, first - width // 3)
    end = min(len(words), start + width)
    shown = [f"[{w}]" if m else w for w, m in zip(words[start:end], marks[start:end], strict=True)]
    return ("… " if start else "") + " ".join(shown) + (" …" if end < len(words) else "")


def _abandon(writer: IndexWriter) -> None:
    # Best effort by design: we are already handling the error that matters, and the one
    # thing that must happen is releasing the lock, or every later writer would time out.
    if writer.is_closed:
        return
    with suppress(OSError):
        writer.cancel()
    if not writer.is_closed:
        with suppress(OSError):
            writer.writelock.release()


def _corrupt(folder: Path, why: str) -> ArchiveError:
    return ArchiveError(
        ArchiveErrorCode.archive_corrupt,
        f"{folder} is not a usable lgd full-text index ({why}): it is damaged or not lgd's. "
        "Run `lgd index rebuild` to make a new one from the catalogue (no OCR needed).",
    )
