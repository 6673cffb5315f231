"""The unit of work a digitise worker process runs: one input document through every digitise stage.

Each worker loads Tesseract once (in `init`) and keeps it for every document it is given.
Workers write only inside their job's work folder; the main process alone writes the
archive, so a worker that dies can never leave the catalogue half-written.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

from digitise import pipeline
from digitise.errors import DigitiseError
from digitise.model import ScanDoc
from digitise.ocr import ENGINES, OcrEngine
from digitise.options import DigitiseOptions

log = logging.getLogger(__name__)

_engine: OcrEngine | None = None  # one per worker process, like OCRmyPDF's worker_init
_options: DigitiseOptions | None = None


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


def init(options: DigitiseOptions) -> None:
    """Process initializer: pick the engine once, so its model is loaded once per worker."""
    global _engine, _options
    _options = options
    _engine = ENGINES[options.engine](languages=options.languages) if options.engine != "none" else ENGINES["none"]()


def digitise(job: Job) -> Done:
    """Run the digitise stages; a bad input becomes a coded failure, never an exception."""
    assert _engine is not None and _options is not None, "worker.init was not called"
    job.work.mkdir(parents=True, exist_ok=True)
    ctx = pipeline.StageContext(work=job.work, options=_options, engine=_engine)
    try:
        return Done(job.key, pipeline.run(job.doc, ctx))
    except DigitiseError as e:
        shutil.rmtree(job.work, ignore_errors=True)
        return Done(job.key, code=str(e.code), reason=str(e))
    except Exception as e:  # one bad input must never stop the batch: quarantine it
        log.debug("%s: unexpected error while digitising", job.doc.source, exc_info=True)
        shutil.rmtree(job.work, ignore_errors=True)
        return Done(job.key, code="internal_error", reason=f"{type(e).__name__}: {e}")
