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

import pytest

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


# --- 2. what the medium holds besides the signed archive ---------------------------------


def _edit_usb(case: str, folder: Path, tmp: Path) -> Path:
    """Change a copied USB pack folder as a hostile party could; returns what to verify."""
    if case == "extra_file":
        (folder / "evil.exe").write_bytes(b"MZ\x90\x00")
    elif case == "sub_folder":
        (folder / "more").mkdir()
        (folder / "more" / "notes.txt").write_text("x")
    elif case == "symlinked_7z":
        elsewhere = tmp / "elsewhere.7z"
        (folder / media.ARCHIVE_NAME).rename(elsewhere)
        (folder / media.ARCHIVE_NAME).symlink_to(elsewhere)
    elif case == "edited_readme":
        readme = folder / media.README
        readme.write_bytes(readme.read_bytes().replace(b"7-Zip", b"EvilZip", 1) + b"Also run setup.exe\r\n")
    elif case == "missing_sums":
        (folder / media.SUMS).unlink()
    elif case == "hidden_file":
        (folder / ".autorun").write_text("x")
    return folder


USB_CASES = {"extra_file": "media_unexpected", "sub_folder": "media_unexpected", "symlinked_7z": "media_unexpected",
             "hidden_file": "media_unexpected", "edited_readme": "media_changed", "missing_sums": "media_changed"}


@pytest.mark.parametrize("case", sorted(USB_CASES))
def test_anything_on_a_usb_pack_that_lgd_did_not_write_fails_verification(case, usb, secret, archive, tmp_path):
    given = _edit_usb(case, copy_of(usb, tmp_path), tmp_path)
    proc, doc = lgd("verify", given, secret, archive, tmp_path)
    assert proc.returncode == 5 and codes(doc, proc) == {USB_CASES[case]}, (doc, proc.stderr)
    assert "VERIFIED" not in proc.stdout or "NOT VERIFIED" in proc.stdout


def test_an_untouched_copy_of_each_medium_still_verifies(usb, usb_split, iso, secret, archive, tmp_path):
    for pack in (usb, usb_split, usb_split / "lgd-pack-001", iso):
        proc, doc = lgd("verify", pack, secret, archive, tmp_path)
        assert proc.returncode == 0 and doc["ok"], (pack, doc.get("problems"), proc.stderr)


def test_a_stray_volume_of_another_pack_beside_a_split_set_is_refused(usb_split, secret, archive, tmp_path):
    received = copy_of(usb_split, tmp_path)
    stray = received / "lgd-pack-003"
    shutil.copytree(received / "lgd-pack-002", stray)
    (stray / "lgd-pack.7z.002").rename(stray / "lgd-pack.7z.003")
    for given in (received, received / "lgd-pack-001"):
        proc, doc = lgd("verify", given, secret, archive, tmp_path)
        assert proc.returncode == 5 and codes(doc, proc) == {"volume_foreign"}, (doc, proc.stderr)


def test_a_volume_folder_from_another_pack_is_refused(usb_split, pack_pdf, secret, archive, tmp_path):
    other = tmp_path / "other" / "lgd-pack"
    other.parent.mkdir()
    media.write_media([("pack.pdf", pack_pdf)], FIELDS, format="usb", out=other, passphrase=secret, archive=archive,
                      media_size=media.MIN_MEDIA)
    received = copy_of(usb_split, tmp_path)
    shutil.rmtree(received / "lgd-pack-002")
    shutil.copytree(other / "lgd-pack-002", received / "lgd-pack-002")
    proc, doc = lgd("verify", received, secret, archive, tmp_path)
    assert proc.returncode == 5 and codes(doc, proc) == {"volume_foreign"}, (doc, proc.stderr)


def test_a_disc_image_with_a_file_added_is_refused(iso, secret, archive, tmp_path):
    import io

    import pycdlib

    image = pycdlib.PyCdlib()
    image.open(str(iso))
    data = b"#!/bin/sh\nrm -rf ~\n"
    image.add_fp(io.BytesIO(data), len(data), iso_path="/AUTORUN.SH;1", joliet_path="/autorun.sh", udf_path="/autorun.sh")
    rebuilt = tmp_path / "lgd-pack-001.iso"
    image.write(str(rebuilt))
    image.close()
    proc, doc = lgd("verify", rebuilt, secret, archive, tmp_path)
    assert proc.returncode == 5 and codes(doc, proc) == {"media_unexpected"}, (doc, proc.stderr)


def test_a_pack_repacked_with_unencrypted_headers_is_refused(usb, secret, archive, tmp_path):
    inside = tmp_path / "inside"
    inside.mkdir()
    sevenzip.extract(usb / media.ARCHIVE_NAME, secret, inside)
    names = sorted(p.name for p in inside.iterdir())
    target = tmp_path / "plainheaders" / media.ARCHIVE_NAME
    target.parent.mkdir()
    done = subprocess.run(["7zz", "a", "-t7z", "-mx=0", "-mhe=off", "-p", str(target), *names], input=secret + "\n",
                          capture_output=True, text=True, cwd=inside)
    assert done.returncode == 0, done.stdout
    proc, doc = lgd("verify", target, secret, archive, tmp_path)
    assert proc.returncode == 5 and codes(doc, proc) == {"not_encrypted"}, (doc, proc.stderr)


# --- 3. sizes before decompression -----------------------------------------------------


def _bomb(tmp: Path, secret: str, archive: Path, bomb_bytes: int, signed_bytes: int | None) -> Path:
    """A pack whose pack.pdf is `bomb_bytes` of zeros, compressed (lgd stores, never compresses);
    its manifest, signed with the archive's own key, says `signed_bytes` (None: the truth)."""
    from pipelines.transfer import signing

    src = tmp / "bombsrc"
    src.mkdir()
    with open(src / "pack.pdf", "wb") as f:
        f.truncate(bomb_bytes)  # sparse: costs no disk here
    size = bomb_bytes if signed_bytes is None else signed_bytes
    entry = signing.FileEntry("pack.pdf", size, "0" * 64)
    manifest, signature = signing.build_manifest(FIELDS, [entry], signing.load_or_create_key(archive))
    (src / "manifest.json").write_bytes(manifest)
    (src / "manifest.sig").write_bytes(signature)
    target = tmp / "bomb" / media.ARCHIVE_NAME
    target.parent.mkdir()
    done = subprocess.run(["7zz", "a", "-t7z", "-mx=1", "-mhe=on", "-p", str(target), "pack.pdf", "manifest.json",
                           "manifest.sig"], input=secret + "\n", capture_output=True, text=True, cwd=src)
    assert done.returncode == 0, done.stdout
    assert target.stat().st_size < bomb_bytes // 100
    return target


@pytest.mark.parametrize("signed", [870_000, None], ids=["manifest_says_small", "manifest_says_large"])
def test_a_small_pack_that_expands_hugely_is_refused_before_extraction(signed, secret, archive, tmp_path):
    bomb = _bomb(tmp_path, secret, archive, 256 * 2**20, signed)
    scratch = tmp_path / "tmpdir"
    scratch.mkdir()
    # RLIMIT_FSIZE in the child: any file lgd (or 7zz) writes over 8 MiB kills it, so a test that
    # passes wrote no more than that however the budget is reached.
    proc = subprocess.run(
        [".venv/bin/python", "-c",
         "import resource, sys, runpy; resource.setrlimit(resource.RLIMIT_FSIZE, (8 << 20, 8 << 20)); "
         "sys.argv = ['lgd', *sys.argv[1:]]; runpy.run_module('pipelines.cli', run_name='__main__')",
         "verify", str(bomb), "--passphrase-file", str(passfile(tmp_path, secret)), "--archive", str(archive), "--json"],
        capture_output=True, text=True, cwd=Path(__file__).parents[1], env={**os.environ, "TMPDIR": str(scratch)}, timeout=120)
    assert proc.returncode == 5, proc.stderr
    doc = json.loads(proc.stdout)
    assert {p["code"] for p in doc["problems"]} == {"archive_too_large"}, doc["problems"]
    assert list(scratch.iterdir()) == []


# --- 4. passphrase and key files, and 7zz outliving lgd ---------------------------------


@pytest.mark.parametrize("flag,source", [("--passphrase-file", "huge"), ("--passphrase-file", "/dev/zero"),
                                         ("--public-key", "/dev/zero"), ("--public-key", "huge")])
def test_oversized_passphrase_and_key_files_are_refused_at_once_naming_the_bound(flag, source, usb, secret, archive, tmp_path):
    huge = tmp_path / "huge"
    huge.write_bytes(b"a" * 1_000_000)
    huge.chmod(0o600)  # a private file: the one line on stderr is about its size
    given = huge if source == "huge" else Path(source)
    pass_arg = given if flag == "--passphrase-file" else passfile(tmp_path, secret)
    extra = ("--public-key", given) if flag == "--public-key" else ()
    proc = run_lgd("verify", usb, "--passphrase-file", pass_arg, "--archive", archive, *extra, check_json=False, timeout=30)
    assert proc.returncode == 2, proc.stderr
    assert "bytes" in proc.stderr and "internal error" not in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr


def test_7zz_dies_with_the_process_that_started_it(tmp_path):
    """The child set-up lgd gives 7zz, applied to `sleep`: kill -9 its parent and it must go too."""
    script = ("import functools, subprocess, sys, time; from pipelines.transfer import sevenzip; "
              "p = subprocess.Popen(['sleep', '60'], preexec_fn=functools.partial(sevenzip._child_setup, None)); "
              "print(p.pid, flush=True); time.sleep(60)")
    parent = subprocess.Popen([".venv/bin/python", "-c", script], stdout=subprocess.PIPE, text=True,
                              cwd=Path(__file__).parents[1])
    child = int(parent.stdout.readline())
    parent.kill()
    parent.wait()
    import time
    for _ in range(50):
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        with open(f"/proc/{child}/stat") as f:
            if f.read().split(") ")[1].startswith("Z"):  # killed, not yet reaped by init
                break
        time.sleep(0.1)
    else:
        os.kill(child, 9)
        pytest.fail("sleep outlived the process that started it")


# --- 5. destinations: read-only, full, a link, inside the archive ------------------------


def _write_in_child(tmp: Path, code: str, limit: int | None) -> subprocess.CompletedProcess:
    """Run `code` in a child Python. A full disc is simulated with RLIMIT_FSIZE (no tmpfs or loop
    device here): with SIGXFSZ ignored, any write past `limit` bytes fails with EFBIG, in lgd and in
    the 7zz it starts (which inherits the limit and is stopped by SIGXFSZ, as 7zz resets signals)."""
    prelude = "import resource, signal\n"
    if limit is not None:
        prelude += (f"signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
                    f"resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))\n")
    prelude += ("from pipelines.errors import LgdError\n"
                "try:\n" + "".join(f"    {line}\n" for line in code.splitlines()) +
                "except LgdError as e:\n    print(int(e.exit_code), e.code, str(e).count(chr(10)), str(e))\n")
    return subprocess.run([".venv/bin/python", "-c", prelude], capture_output=True, text=True,
                          cwd=Path(__file__).parents[1], timeout=60)


def test_a_full_disc_leaves_no_partial_pack_and_exits_4(pack_pdf, secret, archive, tmp_path):
    out = tmp_path / "full"
    code = (f"from pipelines.transfer import media\nfrom pathlib import Path\n"
            f"media.write_media([('pack.pdf', Path({str(pack_pdf)!r}))], {FIELDS!r}, format='7z', out=Path({str(out)!r}), "
            f"passphrase={secret!r}, archive=Path({str(archive)!r}))")
    proc = _write_in_child(tmp_path, code, 600_000)
    assert proc.stdout.startswith("4 out_unusable 0 "), (proc.stdout, proc.stderr[-2000:])
    assert list(out.iterdir()) == [], "no partial archive or work folder is left"


def test_a_full_disc_leaves_no_plaintext_print_part(pack_pdf, tmp_path):
    out = tmp_path / "print"
    out.mkdir()
    code = (f"from pipelines.transfer import pack, destination\nfrom pathlib import Path\n"
            f"with destination.writing(Path({str(out)!r})):\n"
            f"    pack._place(Path({str(pack_pdf)!r}), Path({str(out)!r}) / pack.PRINT_NAME)")
    proc = _write_in_child(tmp_path, code, 300_000)
    assert proc.stdout.startswith("4 out_unusable 0 "), (proc.stdout, proc.stderr[-2000:])
    assert list(out.iterdir()) == [], "no .print-pack.pdf.part (a plaintext record) is left behind"


@pytest.mark.parametrize("case", ["read_only", "symlink", "a_file", "inside_archive"])
def test_an_unusable_destination_is_refused_first_with_exit_4(case, pack_pdf, secret, archive, tmp_path):
    from pipelines.errors import LgdError
    from tests.conftest import unwritable

    out = tmp_path / "out"
    out.mkdir()
    target = out
    if case == "symlink":
        target = tmp_path / "link"
        target.symlink_to(out)
    elif case == "a_file":
        target = tmp_path / "file"
        target.write_text("x")
    elif case == "inside_archive":
        archive.mkdir(parents=True, exist_ok=True)
        target = archive / "packs"
    guard = unwritable(out) if case == "read_only" else __import__("contextlib").nullcontext()
    with guard, pytest.raises(LgdError) as e:
        media.write_media([("pack.pdf", pack_pdf)], FIELDS, format="7z", out=target, passphrase=secret, archive=archive)
    assert int(e.value.exit_code) == 4 and e.value.code == "out_unusable", str(e.value)
    assert "\n" not in str(e.value)
    assert list(out.iterdir()) == [] and not (archive / "packs").exists()


def test_patient_bearing_outputs_are_private_and_an_open_passphrase_file_is_warned_about(tmp_path):  # issue 12
    from pipelines.transfer.passphrase import read_file
    import logging
    secret = tmp_path / "phrase.txt"
    secret.write_text("correct horse battery staple orbit lantern\n")
    secret.chmod(0o644)
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logging.getLogger("pipelines.transfer.passphrase").addHandler(handler)
    try:
        read_file(secret)
        secret.chmod(0o600)
        read_file(secret)
    finally:
        logging.getLogger("pipelines.transfer.passphrase").removeHandler(handler)
    assert len(records) == 1 and "chmod 600" in records[0].getMessage()
