#!/usr/bin/env bash
# Install everything, generate a synthetic batch of Lloyd George scans, digitise it into a fresh archive.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
out=${LGD_DEMO_DIR:-/tmp/lgd-demo}
rm -rf "$out"
mkdir -p "$out"
.venv/bin/python -m fixtures.generate --out "$out/batch" --patients "${LGD_DEMO_PATIENTS:-4}" --seed 7
.venv/bin/lgd digitise "$out/batch/scans" --archive "$out/archive" --jobs "$(nproc)"
echo >&2
echo "search the imported notes (synonyms and OCR slips included):" >&2
.venv/bin/lgd search "high blood pressure OR asthma" --archive "$out/archive" --limit 3
echo "archive: $out/archive (catalogue.sqlite, pdf/, fulltext/)" >&2
