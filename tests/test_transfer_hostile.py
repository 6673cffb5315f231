"""Transfer packs read from a hostile receiver's disc or stick, and written to hostile destinations.

Every case is built here by code from one real pack: names that escape the pack folder,
files lgd never writes, decompression bombs, oversized key and passphrase files,
unencrypted headers, volumes of another pack, full and read-only destinations. Each must
end in exit 5 (the pack) or 4 (the destination) with its problem code, never a traceback,
and nothing may be written outside lgd's own folders.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from digitise import pdfa
from pipelines.transfer import media, passphrase, sevenzip
from pipelines.transfer.problems import PackCode
from tests.conftest import run_lgd

pytestmark = pytest.mark.skipif(shutil.which("7zz") is None, reason="7zz not installed: run scripts/setup.sh")

FIELDS = {
    "patient": "9434765919",
    "created": "2026-11-24T09:30:00+00:00",
    "coded": {"format": "gp2gp", "sha256": "ab" * 32},
    "counts": {"pages": 2, "included": 2, "omitted": 0},
}


@pytest.fixture(scope="module")
def pack_pdf(tmp_path_factory) -> Path:
    """A PDF/A-2b of two pages, one of noise (~1.2 MB, so a 1 MiB medium splits it in two)."""
    folder = tmp_path_factory.mktemp("pdfa")
    Image.new("L", (300, 400), 255).save(folder / "p1.png", dpi=(150, 150))
    noise = np.random.default_rng(7).integers(0, 256, (1100, 1100), dtype=np.uint8)
    Image.fromarray(noise).save(folder / "p2.png", dpi=(150, 150))
    pdfa.images_to_pdf([folder / "p1.png", folder / "p2.png"], folder / "image.pdf")
    (folder / "words").mkdir()
    pdfa.make_pdfa(folder / "image.pdf", folder / "words", folder / "pack.pdf", "synthetic", "eng", [])
    return folder / "pack.pdf"


@pytest.fixture(scope="module")
def secret() -> str:
    return passphrase.generate().secret


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("archive") / "lgd-archive"


@pytest.fixture(scope="module")
def usb(pack_pdf, secret, archive, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("usb") / "lgd-pack"
    media.write_media([("pack.pdf", pack_pdf)], FIELDS, format="usb", out=out, passphrase=secret, archive=archive)
    return out


@pytest.fixture(scope="module")
def usb_split(pack_pdf, secret, archive, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("usbsplit") / "lgd-pack"
    media.write_media([("pack.pdf", pack_pdf)], FIELDS, format="usb", out=out, passphrase=secret, archive=archive,
                      media_size=media.MIN_MEDIA)
    return out


@pytest.fixture(scope="module")
def iso(pack_pdf, secret, archive, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("iso")
    media.write_media([("pack.pdf", pack_pdf)], FIELDS, format="iso", out=out, passphrase=secret, archive=archive)
    return out / "lgd-pack-001.iso"


def passfile(folder: Path, secret: str) -> Path:
    path = folder / "pass.txt"
    path.write_text(secret + "\n")
    path.chmod(0o600)
    return path


def copy_of(pack: Path, tmp: Path) -> Path:
    target = tmp / "received" / pack.name
    target.parent.mkdir(parents=True, exist_ok=True)
    if pack.is_dir():
        shutil.copytree(pack, target, symlinks=True)
    else:
        shutil.copy2(pack, target)
    return target


def tree(root: Path) -> set[str]:
    """Every path under `root`, symbolic links included (not followed)."""
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def lgd(command: str, pack: Path, secret: str, archive: Path, tmp: Path, *extra) -> tuple[subprocess.CompletedProcess, dict]:
    proc = run_lgd(command, pack, "--passphrase-file", passfile(tmp, secret), "--archive", archive, "--json", *extra,
                   check_json=False)
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr, proc.stderr
    try:
        doc = json.loads(proc.stdout) if proc.stdout.strip() else {}
    except json.JSONDecodeError:
        doc = {}
    return proc, doc


def codes(doc: dict, proc: subprocess.CompletedProcess) -> set[str]:
    found = {p["code"] for p in doc.get("problems", [])}
    if not found and proc.stderr.startswith("lgd:"):
        found = {w.rstrip(":,") for w in proc.stderr.split() if w.rstrip(":,") in {c.value for c in PackCode}}
    return found


# --- 1. names read from the medium ------------------------------------------------------


@pytest.mark.parametrize("name", ["../../x", "../../../../etc/hostname", "/etc/hostname", "sub/lgd-pack.7z", "lgd-pack.7z.001/../x"])
@pytest.mark.parametrize("command", ["verify", "unpack"])
def test_a_sums_line_naming_a_path_outside_the_pack_is_refused_before_anything_is_opened(
        name, command, usb_split, secret, archive, tmp_path):
    received = copy_of(usb_split, tmp_path)
    target = Path(os.path.normpath(received / "lgd-pack-001" / name))
    if not name.startswith("/") and not target.exists():  # give the escape something to find, as an attacker would
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(b"outside")
    sums = received / "lgd-pack-001" / media.SUMS
    sums.write_bytes(sums.read_bytes() + f"{'0' * 64}  {name}\r\n".encode())
    before = tree(tmp_path)
    extra = ("--out", tmp_path / "unpacked") if command == "unpack" else ()
    proc, doc = lgd(command, received / "lgd-pack-001", secret, archive, tmp_path, *extra)
    assert proc.returncode == 5, proc.stderr
    assert codes(doc, proc) == {PackCode.unsafe_name.value}, (doc, proc.stderr)
    assert tree(tmp_path) - before <= {"pass.txt"}, "nothing may be created anywhere"


@pytest.mark.parametrize("name", ["../lgd-pack.7z", "lgd-pack.7z.004", "README.TXT"])
def test_a_sums_file_in_a_disc_image_naming_anything_but_its_volumes_is_refused(name, iso, secret, archive, tmp_path):
    import pycdlib

    received = copy_of(iso, tmp_path)
    image = pycdlib.PyCdlib()
    image.open(str(received))
    import io
    buffer = io.BytesIO()
    image.get_joliet_facade().get_file_from_iso_fp(buffer, "/" + media.SUMS)
    data = buffer.getvalue() + f"{'0' * 64}  {name}\r\n".encode()
    image.rm_file(iso_path=f"/{media.SUMS};1", joliet_path=f"/{media.SUMS}", udf_path=f"/{media.SUMS}")
    image.add_fp(io.BytesIO(data), len(data), iso_path=f"/{media.SUMS};1", joliet_path=f"/{media.SUMS}",
                 udf_path=f"/{media.SUMS}")
    rebuilt = tmp_path / "lgd-pack-001.iso"
    image.write(str(rebuilt))
    image.close()
    proc, doc = lgd("verify", rebuilt, secret, archive, tmp_path)
    assert proc.returncode == 5 and codes(doc, proc) == {PackCode.unsafe_name.value}, (doc, proc.stderr)
