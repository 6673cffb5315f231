"""The unit of work a digitise worker process runs: one input document through every digitise stage.

Each worker loads its OCR engine(s) once (in `init`) and keeps it for every document it is given.
Workers write only inside their job's work folder; the main process alone writes the
archive, so a worker that dies can never leave the catalogue half-written.
"""

from __future__ import annotations

import errno
import logging
import shutil
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

from digitise import pipeline
from digitise.errors import DigitiseError
from digitise.model import ScanDoc
from digitise.ocr import ENGINES, OcrEngine
from digitise.options import AUTO, DigitiseOptions
from digitise.settle import WordList
from pipelines.children import die_with_parent

log = logging.getLogger(__name__)

_engine: OcrEngine | None = None  # one per worker process, like OCRmyPDF's worker_init
_hand: OcrEngine | None = None  # the hand-writing engine of --engine auto, likewise
_words: WordList | None = None  # what settles its non-words: the clinical reader's words (digitise.settle)
_options: DigitiseOptions | None = None

# A write that fails for lack of space is the archive disk's problem, never the input's.
_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
_READONLY_ERRNOS = frozenset({errno.EROFS, errno.EACCES, errno.EPERM})
ARCHIVE_FULL, ARCHIVE_READONLY = "archive_full", "archive_readonly"


@dataclass(frozen=True, slots=True)
class Job:
    key: int
    doc: ScanDoc
    work: Path


@dataclass(frozen=True, slots=True)
class Done:
    key: int
    doc: ScanDoc | None = None
    code: str = ""
    reason: str = ""
    engine: str = ""  # the --engine that read it, when not this run's (a queue worker's)


def init(options: DigitiseOptions) -> None:
    """Process initializer: pick the engine once, so its model is loaded once per worker."""
    global _engine, _hand, _options, _words
    _options = options
    if options.engine == AUTO:  # Tesseract reads every page, PP-OCR re-reads hand-written ones
        _engine = ENGINES["tesseract"](languages=options.languages)
        _hand = ENGINES["ppocr"](languages=options.languages)
        from pipelines.clinical import default_reader  # dictionaries read at the first settled page

        _words = default_reader() if options.settle_words else None
    else:
        _engine = ENGINES[options.engine](languages=options.languages) if options.engine != "none" else ENGINES["none"]()
        _hand = None
        _words = None


def init_process(options: DigitiseOptions) -> None:
    """Initializer of a worker process: Ctrl-C is the main process's to handle.

    The terminal sends SIGINT to the whole process group; a worker that died of it would
    print a traceback and break the pool. The main process stops the batch instead.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    die_with_parent()  # a SIGKILLed lgd must not leave its workers running under PID 1
    init(options)




def _disk_problem(exc: BaseException, work: Path) -> tuple[str, str] | None:
    """(code, detail) when `exc` (or what caused it) is the archive disk being full or read-only."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno is not None:
            detail = f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else "")
            if exc.errno in _FULL_ERRNOS:
                return ARCHIVE_FULL, detail
            # Permission errors count only inside the archive's tmp folder (not the input's).
            if exc.errno in _READONLY_ERRNOS and exc.filename and Path(str(exc.filename)).is_relative_to(work.parent):
                return ARCHIVE_READONLY, detail
        exc = exc.__cause__ or exc.__context__
    return None


def digitise(job: Job) -> Done:
    """Run the digitise stages; a bad input becomes a coded failure, never an exception.

    A full or read-only archive disk comes back as code ARCHIVE_FULL / ARCHIVE_READONLY,
    which the main process turns into an ArchiveError (the input is not to blame).
    """
    assert _engine is not None and _options is not None, "worker.init was not called"
    # pikepdf's check_linearization (called by OCRmyPDF on every output) can leave
    # sys.stderr replaced by a StringIO; when digitising in-process (--jobs 1) that
    # would swallow every later message, so put the real streams back afterwards.
    streams = sys.stdout, sys.stderr
    try:
        job.work.mkdir(parents=True, exist_ok=True)
        ctx = pipeline.StageContext(work=job.work, options=_options, engine=_engine, hand=_hand, words=_words)
        return Done(job.key, pipeline.run(job.doc, ctx))
    except DigitiseError as e:
        shutil.rmtree(job.work, ignore_errors=True)
        disk = _disk_problem(e, job.work)
        if disk is not None:
            return Done(job.key, code=disk[0], reason=disk[1])
        return Done(job.key, code=str(e.code), reason=str(e))
    except Exception as e:  # one bad input must never stop the batch: quarantine it
        log.debug("%s: unexpected error while digitising", job.doc.source, exc_info=True)
        shutil.rmtree(job.work, ignore_errors=True)
        disk = _disk_problem(e, job.work)
        if disk is not None:
            return Done(job.key, code=disk[0], reason=disk[1])
        return Done(job.key, code="internal_error", reason=f"{type(e).__name__}: {e}")
    finally:
        sys.stdout, sys.stderr = streams
