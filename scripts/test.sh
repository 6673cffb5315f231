#!/usr/bin/env bash
# Install everything, then run the test suite (real tesseract, OCRmyPDF, SQLite and Whoosh).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# One redis-server for the queue tests (tests/test_queue*.py) on a free port, without persistence,
# stopped when the run ends (so no exec below); each pytest worker uses a database of its own.
if [ -z "${LGD_TEST_REDIS_URL:-}" ] && command -v redis-server >/dev/null; then
  port=$(.venv/bin/python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no >/dev/null 2>&1 &
  redis_pid=$!
  trap 'kill "$redis_pid" 2>/dev/null || true' EXIT
  for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
  export LGD_TEST_REDIS_URL="redis://127.0.0.1:$port"
fi
# One pytest worker per core (LGD_TEST_WORKERS=0 runs in this process). --dist loadfile keeps a
# test file on one worker, so a module's fixture (an OCR'd corpus) is built once, not once per worker.
# --maxfail: when the machine itself is wrong (a missing file, a full disk), every test fails slowly;
# stopping early leaves the reasons in the output instead of a run cut off by CI's time limit.
df -h . "${TMPDIR:-/tmp}" | sed 's/^/disk: /'
.venv/bin/python -m pytest -n "${LGD_TEST_WORKERS:-2}" --dist loadfile --maxfail=40 --durations=15 "$@"
