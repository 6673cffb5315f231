#!/usr/bin/env bash
# Install everything, then run the test suite (real tesseract, OCRmyPDF, SQLite and Whoosh).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# One pytest worker per core (LGD_TEST_WORKERS=0 runs in this process). --dist loadfile keeps a
# test file on one worker, so a module's fixture (an OCR'd corpus) is built once, not once per worker.
exec .venv/bin/python -m pytest -n "${LGD_TEST_WORKERS:-2}" --dist loadfile "$@"
