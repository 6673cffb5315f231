#!/usr/bin/env bash
# Install everything lgd needs: Debian packages, then a venv in .venv with lgd in it.
# Idempotent: packages already present and an up-to-date venv cost a few seconds.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  tesseract-ocr tesseract-ocr-eng tesseract-ocr-osd ghostscript unpaper pngquant
  qpdf poppler-utils 7zip genisoimage hunspell-en-gb hunspell-en-med
  fonts-dejavu-core fonts-humor-sans fonts-femkeklaver fonts-dkg-handwriting
  libtesseract-dev libleptonica-dev pkg-config g++
  python3 python3-venv python3-pip python3-dev
  chromium chromium-driver
  redis-server
)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "setup: lgd needs Python >= 3.11; $PY is $("$PY" --version 2>&1)" >&2
  exit 3
fi

stamp=.venv/.lgd-installed
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
# Reinstall only when the project's dependency list changed since the last install.
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ constraints.txt -nt "$stamp" ]; then
  echo "setup: installing Python dependencies into .venv" >&2
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null
  # tesserocr is built against Debian's libtesseract so lgd and the tesseract program
  # are the same engine and read the same language data.
  # constraints.txt pins every package to the version the tests last passed with.
  .venv/bin/python -m pip install -q --no-binary tesserocr -c constraints.txt -e '.[test]'
  touch "$stamp"
fi
