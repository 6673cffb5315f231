#!/usr/bin/env bash
# Install everything, then run the test suite (real tesseract, OCRmyPDF, SQLite and Whoosh).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest "$@"
