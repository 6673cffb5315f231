#!/usr/bin/env bash
# Install everything, then run the whole lgd flow on the bundled synthetic sample (fixtures/sample):
# digitise -> search -> reconcile against each patient's coded record -> build encrypted packs -> verify them.
# LGD_DEMO_PATIENTS=N generates N new synthetic patients instead. Run on a terminal, it ends by
# serving the archive to a browser (lgd serve) with a demo clinician account; --no-serve skips that.
set -euo pipefail
serve=yes
[ "${1:-}" = "--no-serve" ] && serve=no
[ -t 0 ] || serve=no  # not on a terminal (a script, CI): nobody is there to press Ctrl-C
cd "$(dirname "$0")/.."
bash scripts/setup.sh
out=${LGD_DEMO_DIR:-/tmp/lgd-demo}
rm -rf "$out"
mkdir -p "$out"
lgd=.venv/bin/lgd
archive="$out/archive"

if [ -n "${LGD_DEMO_PATIENTS:-}" ]; then
    echo "== generate a synthetic batch (scans, truth, coded records)" >&2
    .venv/bin/python -m fixtures.generate --out "$out/batch" --patients "$LGD_DEMO_PATIENTS" --seed 7
else
    cp -r fixtures/sample "$out/batch"  # scans, truth and coded records of 3 synthetic patients
fi

echo "== digitise" >&2
$lgd digitise "$out/batch/scans" --archive "$archive" --jobs "$(nproc)"

echo "== search the imported notes (synonyms and OCR slips included)" >&2
$lgd search "high blood pressure OR asthma" --archive "$archive" --limit 3

echo "== reconcile each patient against their GP2GP record" >&2
.venv/bin/python - "$out" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
index = json.loads((out / "batch/truth/index.json").read_text())
with (out / "leavers.csv").open("w") as f:
    f.write("nhs_number,coded\n")
    for p in index["patients"]:
        f.write(f"{p['nhs_number']},batch/{p['coded']['gp2gp']}\n")
PY
$lgd reconcile --batch "$out/leavers.csv" --archive "$archive"
first=$(sed -n 2p "$out/leavers.csv" | cut -d, -f1)
$lgd reconcile --patient "$first" --archive "$archive" | head -25

echo "== build encrypted ISO packs of the pages that must be sent" >&2
$lgd pack --batch "$out/leavers.csv" --format iso --out "$out/packs" --archive "$archive" \
    --new-passphrase-file "$out/passphrases.csv"

echo "== verify every pack as the receiving practice would (passphrase sent separately)" >&2
tail -n +2 "$out/passphrases.csv" | while IFS=, read -r pack nhs phrase; do
    (umask 077; printf '%s\n' "$phrase" > "$out/$pack.pass")  # lgd warns of a passphrase file others can read
    $lgd verify "$out/packs/$pack/lgd-pack-001.iso" --passphrase-file "$out/$pack.pass" --archive "$archive" | tail -1
    rm -f "$out/$pack.pass"
done
echo "archive: $archive; packs: $out/packs; passphrases (keep private): $out/passphrases.csv" >&2

if [ "$serve" = yes ]; then
    echo "== serve the archive to a browser" >&2
    umask 077
    .venv/bin/python -c 'import secrets; print(secrets.token_urlsafe(12))' > "$out/demo-password"
    $lgd user add demo.clinician --role clinician --password-file "$out/demo-password" --archive "$archive"
    echo "sign in at http://127.0.0.1:8800/ as demo.clinician with the password in $out/demo-password" >&2
    echo "(scripts: curl -c jar -H 'Content-Type: application/json' -d '{\"username\":\"demo.clinician\",\"password\":\"...\"}' http://127.0.0.1:8800/api/v1/session)" >&2
    echo "Ctrl-C stops the server; the archive stays in $archive" >&2
    exec $lgd serve --archive "$archive"
fi
