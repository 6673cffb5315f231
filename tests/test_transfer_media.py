"""Transfer-pack media with the real 7zz, pycdlib, isoinfo and pikepdf: write, verify, unpack, and every kind of tampering."""

from __future__ import annotations

import json
import logging
import math
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from digitise import pdfa
from pipelines.transfer import media, passphrase, sevenzip, signing
from pipelines.transfer.problems import PackCode, PackError
from pipelines.transfer.verify import trusted_keys, unpack, verify
from index.store import sha256_file
from tests.conftest import LGD, run_lgd

pytestmark = pytest.mark.skipif(shutil.which("7zz") is None, reason="7zz not installed: run scripts/setup.sh")

NHS = "9434765919"
FIELDS = {
    "patient": NHS,
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


def write(pack_pdf, secret, archive, out, fmt="7z", size=None, extra=()):
    return media.write_media([("pack.pdf", pack_pdf), *extra], FIELDS, format=fmt, out=out, passphrase=secret, archive=archive, media_size=size)


@pytest.fixture(scope="module")
def made(pack_pdf, secret, archive, tmp_path_factory):
    return write(pack_pdf, secret, archive, tmp_path_factory.mktemp("made"))


def passfile(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "pass.txt"
    path.write_text(text + "\n")
    return path


def lgd_verify(pack: Path, pass_file: Path, archive: Path, *extra) -> subprocess.CompletedProcess:
    return run_lgd("verify", pack, "--passphrase-file", pass_file, "--archive", archive, "--json", *extra)


def seven(*args, stdin: str | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["7zz", *map(str, args)], input=stdin, capture_output=True, text=True, cwd=cwd,
                          stdin=subprocess.DEVNULL if stdin is None else None)


def contents(archive_file: Path, secret: str, tmp: Path) -> dict[str, bytes]:
    out = tmp / "x"
    out.mkdir()
    sevenzip.extract(archive_file, secret, out)
    return {p.name: p.read_bytes() for p in out.iterdir()}


def repack(tmp: Path, files: dict[str, bytes], secret: str) -> Path:
    """An archive made as an insider with the passphrase would: real 7zz, chosen contents."""
    src = tmp / "src"
    src.mkdir()
    for name, data in files.items():
        (src / name).write_bytes(data)
    target = tmp / "tampered.7z"
    sevenzip.create(target, [(n, src / n) for n in files], secret)
    return target


# --- passphrases ----------------------------------------------------------------------

def test_generated_passphrase_has_eight_words_and_over_100_bits():
    words = passphrase.wordlist()
    assert len(words) == 7776 == len(set(words))
    p = passphrase.generate()
    assert p.bits >= 100 and math.isclose(p.bits, 8 * math.log2(7776))
    assert len(p.secret.split(" ")) == 8 and all(w in words for w in p.secret.split(" "))
    assert p.secret not in repr(p) and p.secret not in str(p)
    assert passphrase.generate().secret != p.secret


def test_passphrase_file_strips_one_newline_and_refuses_unusable(tmp_path):
    f = tmp_path / "p"
    f.write_bytes(b"correct horse battery staple again\r\n")
    assert passphrase.read_file(f).secret == "correct horse battery staple again"
    for content, phrase in [(b"", "empty"), (b"\n", "empty"), (b"too short\n", "at least 20"),
                            (b"first line is long enough\nsecond\n", "more than one line"),
                            ("caf\u00e9 au lait with milk please".encode(), "ASCII")]:
        f.write_bytes(content)
        with pytest.raises(PackError, match=phrase) as e:
            passphrase.read_file(f)
        assert e.value.code == PackCode.passphrase_unusable


# --- 7z and signing -------------------------------------------------------------------

def test_7zz_opens_the_pack_with_the_passphrase_and_shows_nothing_without_it(made, secret, pack_pdf, tmp_path):
    (archive_file,) = made.outputs
    assert archive_file.name == "lgd-pack.7z" and made.volumes == 1 and made.seconds_encrypting > 0
    blind = seven("l", archive_file)
    assert blind.returncode != 0
    assert not any(n in blind.stdout + blind.stderr for n in ("pack.pdf", "manifest"))
    listed = seven("l", "-slt", archive_file, stdin=secret + "\n")
    assert listed.returncode == 0 and "7zAES" in listed.stdout
    assert {"Path = pack.pdf", "Path = manifest.json", "Path = manifest.sig"} <= set(listed.stdout.splitlines())
    out = tmp_path / "x"
    assert seven("x", f"-o{out}", archive_file, stdin=secret + "\n").returncode == 0
    assert (out / "pack.pdf").read_bytes() == pack_pdf.read_bytes()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["patient"] == NHS and manifest["format_version"] == 1
    assert manifest["files"] == [{"name": "pack.pdf", "size": pack_pdf.stat().st_size, "sha256": sha256_file(pack_pdf)}]
    assert manifest["signer"]["fingerprint"] == made.fingerprint


def test_passphrase_reaches_7zz_on_stdin_never_in_argv_or_logs(pack_pdf, tmp_path, caplog):
    secret = passphrase.generate().secret
    with caplog.at_level(logging.DEBUG, logger="lgd.exec.7zz"):
        sevenzip.create(tmp_path / "a.7z", [("pack.pdf", pack_pdf)], secret)
        sevenzip.list_entries(tmp_path / "a.7z", secret)
    runs = [r.getMessage() for r in caplog.records if r.getMessage().startswith("run ")]
    assert len(runs) == 2 and "'-p'" in runs[0]
    assert all(secret not in r.getMessage() for r in caplog.records)


def test_signing_key_is_made_once_private_and_verifies_with_openssl(made, archive, secret, tmp_path):
    key, pub = signing.archive_key_paths(archive)
    assert key.stat().st_mode & 0o777 == 0o600 and pub.is_file()
    assert b"PRIVATE KEY" in key.read_bytes() and b"PUBLIC KEY" in pub.read_bytes()
    assert made.fingerprint.startswith("SHA256:") and len(made.fingerprint) == 7 + 43
    assert signing.load_or_create_key(archive).private_bytes_raw() == signing.load_or_create_key(archive).private_bytes_raw()
    files = contents(made.outputs[0], secret, tmp_path)
    (tmp_path / "m.json").write_bytes(files["manifest.json"])
    (tmp_path / "m.sig").write_bytes(files["manifest.sig"])
    done = subprocess.run(["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", pub, "-rawin", "-in", tmp_path / "m.json",
                           "-sigfile", tmp_path / "m.sig"], capture_output=True, text=True)
    if "rawin" in done.stderr and done.returncode != 0:
        pytest.skip("this openssl has no -rawin (needs OpenSSL 3)")
    assert done.returncode == 0, done.stderr


def test_two_processes_making_the_key_at_once_share_one(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as pool:
        keys = list(pool.map(lambda _: signing.load_or_create_key(tmp_path / "a").public_key().public_bytes_raw(), range(8)))
    assert len(set(keys)) == 1
    assert signing.archive_public_key(tmp_path / "a") == keys[0]
    assert sorted(p.name for p in (tmp_path / "a" / "keys").iterdir()) == ["pack-signing.key", "pack-signing.pub"]


def test_passphrase_is_in_no_output_byte(pack_pdf, archive, tmp_path):
    secret = passphrase.generate().secret
    outputs = [write(pack_pdf, secret, archive, tmp_path / fmt, fmt) for fmt in ("7z", "iso")]
    write(pack_pdf, secret, archive, tmp_path / "usb", "usb")
    files = [p for r in outputs for p in r.outputs] + [p for p in (tmp_path / "usb").rglob("*") if p.is_file()]
    extracted = contents(outputs[0].outputs[0], secret, tmp_path)
    needles = [secret.encode(), secret.replace(" ", "").encode(), secret.encode("utf-16-le")]
    for blob in [p.read_bytes() for p in files] + list(extracted.values()) + [p.read_bytes() for p in (archive / "keys").iterdir()]:
        assert not any(n in blob for n in needles)
    assert not list(tmp_path.rglob(".lgd-*")), "no temporary files are left behind"
    assert not list((archive / "tmp").iterdir()), "the plaintext staging folder is removed"


# --- media ------------------------------------------------------------------------------

def test_iso_lists_with_isoinfo_and_7zz_and_its_archive_opens(pack_pdf, archive, secret, tmp_path):
    result = write(pack_pdf, secret, archive, tmp_path / "disc", "iso")
    (iso,) = result.outputs
    assert iso.name == "lgd-pack-001.iso" and iso.stat().st_size <= media.CD_R
    joliet = subprocess.run(["isoinfo", "-l", "-J", "-i", iso], capture_output=True, text=True, check=True).stdout
    assert {"README.TXT", "SHA256SUMS.TXT", "lgd-pack.7z"} <= {line.split()[-1] for line in joliet.splitlines() if line.strip()}
    described = subprocess.run(["isoinfo", "-d", "-i", iso], capture_output=True, text=True, check=True).stdout
    assert "Joliet" in described and NHS not in described and "Volume id: LGD_" in described
    listed = seven("l", iso)
    assert listed.returncode == 0 and "lgd-pack.7z" in listed.stdout and "README.TXT" in listed.stdout
    readme = subprocess.run(["isoinfo", "-J", "-i", iso, "-x", "/README.TXT"], capture_output=True, check=True).stdout
    assert b"DISC 1 OF 1" in readme and NHS.encode() not in readme and b"lgd verify" in readme
    assert result.fingerprint.encode() not in readme, "a forger would print their own fingerprint: never show one on the media"
    inner = tmp_path / "from-disc.7z"
    inner.write_bytes(subprocess.run(["isoinfo", "-J", "-i", iso, "-x", "/lgd-pack.7z"], capture_output=True, check=True).stdout)
    assert contents(inner, secret, tmp_path)["pack.pdf"] == pack_pdf.read_bytes()
    assert verify(iso, secret, trusted_keys(archive)).ok


def test_iso_split_across_two_volumes_and_a_missing_one_is_named(pack_pdf, archive, secret, tmp_path):
    size = media.parse_media_size("1.5M")
    result = write(pack_pdf, secret, archive, tmp_path / "discs", "iso", size)
    assert [p.name for p in result.outputs] == ["lgd-pack-001.iso", "lgd-pack-002.iso"] and result.volumes == 2
    for i, iso in enumerate(result.outputs, start=1):
        assert iso.stat().st_size <= size
        names = subprocess.run(["isoinfo", "-l", "-J", "-i", iso], capture_output=True, text=True, check=True).stdout
        assert f"lgd-pack.7z.{i:03d}" in names
        readme = subprocess.run(["isoinfo", "-J", "-i", iso, "-x", "/README.TXT"], capture_output=True, check=True).stdout
        assert f"DISC {i} OF 2".encode() in readme
    pass_file = passfile(tmp_path, secret)
    ok = lgd_verify(result.outputs[0], pass_file, archive)
    assert ok.returncode == 0 and ok.json["ok"] and ok.json["manifest"]["patient"] == NHS
    result.outputs[1].rename(tmp_path / "elsewhere.iso")
    gone = lgd_verify(result.outputs[0], pass_file, archive)
    assert gone.returncode == 5 and [p["code"] for p in gone.json["problems"]] == ["volume_missing"]
    assert "lgd-pack-002.iso" in gone.json["problems"][0]["message"]


def test_7z_split_into_volumes_opens_from_the_first(pack_pdf, archive, secret, tmp_path):
    result = write(pack_pdf, secret, archive, tmp_path / "split", "7z", media.MIN_MEDIA)
    assert [p.name for p in result.outputs] == ["lgd-pack.7z.001", "lgd-pack.7z.002"]
    assert result.outputs[0].stat().st_size == media.MIN_MEDIA
    assert seven("t", result.outputs[0], stdin=secret + "\n").returncode == 0
    assert verify(result.outputs[0], secret, trusted_keys(archive)).ok


def test_usb_folder_is_written_whole_and_verifies(pack_pdf, archive, secret, tmp_path):
    out = tmp_path / "stick" / "lgd-pack"
    out.parent.mkdir()
    result = write(pack_pdf, secret, archive, out, "usb")
    assert result.outputs == (out,)
    assert sorted(p.name for p in out.iterdir()) == ["README.TXT", "SHA256SUMS.TXT", "lgd-pack.7z"]
    assert sorted(p.name for p in out.parent.iterdir()) == ["lgd-pack"], "no temporary folder is left beside it"
    assert set(result.sha256) == {"README.TXT", "SHA256SUMS.TXT", "lgd-pack.7z"}
    assert verify(out, secret, trusted_keys(archive)).ok
    # Patient-bearing, even encrypted: owner only (issue 12).
    assert out.stat().st_mode & 0o777 == 0o700 and all(p.stat().st_mode & 0o777 == 0o600 for p in out.iterdir())
    with pytest.raises(PackError) as e:
        write(pack_pdf, secret, archive, out, "usb")
    assert e.value.code == PackCode.out_not_empty


def test_usb_split_into_volume_folders(pack_pdf, archive, secret, tmp_path):
    out = tmp_path / "lgd-pack"
    write(pack_pdf, secret, archive, out, "usb", media.MIN_MEDIA)
    assert sorted(p.name for p in out.iterdir()) == ["lgd-pack-001", "lgd-pack-002"]
    assert sorted(p.name for p in (out / "lgd-pack-002").iterdir()) == ["README.TXT", "SHA256SUMS.TXT", "lgd-pack.7z.002"]
    for given in (out, out / "lgd-pack-001", out / "lgd-pack-001" / "lgd-pack.7z.001"):
        result = verify(given, secret, trusted_keys(archive))
        assert result.ok and "SHA256SUMS.TXT" in result.checks[0].detail, result.problems


def test_media_sizes():
    assert media.parse_media_size("cd") == 737_280_000 and media.parse_media_size("DVD") == 4_700_372_992
    assert media.parse_media_size("700M") == 700_000_000 and media.parse_media_size("4.7G") == 4_700_000_000
    assert media.parse_media_size("2MiB") == 2 * 2**20 and media.parse_media_size("12345678") == 12_345_678
    for bad in ("big", "10k", "-5M"):
        with pytest.raises(ValueError, match="--media"):
            media.parse_media_size(bad)


# --- verification failures, each with its own code, through the real command line ---------

def _flip(path: Path, at: float) -> None:
    data = bytearray(path.read_bytes())
    data[int(len(data) * at)] ^= 0x10
    path.write_bytes(bytes(data))


def _tampered(case: str, made, secret: str, pack_pdf: Path, tmp: Path) -> tuple[Path, str]:
    """A copy of the good pack, damaged as `case` says; returns (pack, the passphrase to try)."""
    good = made.outputs[0]
    copy = tmp / "copy.7z"
    shutil.copyfile(good, copy)
    if case == "wrong_passphrase":
        return copy, passphrase.generate().secret
    if case == "archive_corrupt":
        _flip(copy, 0.5)
        return copy, secret
    if case == "archive_truncated":
        copy.write_bytes(good.read_bytes()[: good.stat().st_size * 2 // 3])
        return copy, secret
    files = contents(good, secret, tmp)
    if case == "file_mismatch":  # a changed copy of the PDF put in place of the signed one
        other = bytearray(files["pack.pdf"])
        other[other.rindex(b"%%EOF") - 40] ^= 0x01
        files["pack.pdf"] = bytes(other)
    elif case == "signature_invalid":  # the manifest edited, the signature left as it was
        files["manifest.json"] = files["manifest.json"].replace(NHS.encode(), b"9990001234")
    elif case == "untrusted_signer":  # edited and re-signed with a key of the forger's own
        manifest = json.loads(files["manifest.json"])
        fields = {k: manifest[k] for k in signing.REQUIRED_FIELDS} | {"patient": "9990001234"}
        entries = [signing.FileEntry(**f) for f in manifest["files"]]
        files["manifest.json"], files["manifest.sig"] = signing.build_manifest(fields, entries, Ed25519PrivateKey.generate())
    elif case == "file_unexpected":
        files["extra.pdf"] = pack_pdf.read_bytes()
    elif case == "file_missing":
        del files["pack.pdf"]
    elif case == "manifest_missing":
        del files["manifest.sig"]
    elif case == "not_encrypted":  # the same, correctly signed files in a plain 7z
        (tmp / "plain").mkdir()
        for name, data in files.items():
            (tmp / "plain" / name).write_bytes(data)
        seven("a", "-t7z", tmp / "plain.7z", *sorted(files), cwd=tmp / "plain")
        return tmp / "plain.7z", secret
    return repack(tmp, files, secret), secret


TAMPERING = ["wrong_passphrase", "archive_corrupt", "archive_truncated", "file_mismatch", "signature_invalid",
             "untrusted_signer", "file_unexpected", "file_missing", "manifest_missing", "not_encrypted"]


@pytest.mark.parametrize("case", TAMPERING)
def test_tampering_is_reported_with_its_code_and_exit_5(case, made, secret, pack_pdf, archive, tmp_path):
    pack, tried = _tampered(case, made, secret, pack_pdf, tmp_path)
    proc = lgd_verify(pack, passfile(tmp_path, tried), archive)
    assert proc.returncode == 5, proc.stderr
    assert proc.json["ok"] is False
    codes = [p["code"] for p in proc.json["problems"]]
    assert codes == [case], proc.json["problems"]
    assert "failed verification" in proc.stderr
    if case == "file_mismatch":
        assert "pack.pdf" in proc.json["problems"][0]["message"]
    if case == "untrusted_signer":
        message = proc.json["problems"][0]["message"]
        assert "signed by an unknown key (fingerprint SHA256:" in message
        forged_fp = message.split("(fingerprint ")[1].split(")")[0]
        trusted = lgd_verify(pack, passfile(tmp_path, tried), archive, "--fingerprint", forged_fp)
        assert trusted.returncode == 0 and trusted.json["manifest"]["patient"] == "9990001234"


def test_a_symbolic_link_in_the_archive_is_refused_before_extraction(made, secret, archive, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    files = contents(made.outputs[0], secret, tmp_path)
    for name, data in files.items():
        (src / name).write_bytes(data)
    (src / "notes.pdf").symlink_to("/etc/passwd")
    hostile = tmp_path / "hostile.7z"
    assert seven("a", "-t7z", "-mhe=on", "-snl", "-p", hostile, *files, "notes.pdf", stdin=secret + "\n", cwd=src).returncode == 0
    result = verify(hostile, secret, trusted_keys(archive))
    assert [(p.code, "notes.pdf" in p.message) for p in result.problems] == [(PackCode.file_unexpected, True)]
    assert [c.name for c in result.checks][-1] == "contents"


def test_a_flipped_bit_on_a_disc_is_found_by_its_checksums(pack_pdf, archive, secret, tmp_path):
    (iso,) = write(pack_pdf, secret, archive, tmp_path / "disc", "iso").outputs
    _flip(iso, 0.5)
    result = verify(iso, secret, trusted_keys(archive))
    assert [p.code for p in result.problems] == [PackCode.archive_corrupt]
    assert "SHA256SUMS.TXT" in result.problems[0].message


def test_a_pack_from_another_practice_needs_its_fingerprint(made, secret, tmp_path):
    pass_file = passfile(tmp_path, secret)
    stranger = lgd_verify(made.outputs[0], pass_file, tmp_path / "other-archive")
    assert stranger.returncode == 5 and [p["code"] for p in stranger.json["problems"]] == ["untrusted_signer"]
    assert made.fingerprint in stranger.json["problems"][0]["message"]
    known = lgd_verify(made.outputs[0], pass_file, tmp_path / "other-archive", "--fingerprint", made.fingerprint)
    assert known.returncode == 0 and known.json["ok"]
    assert {c["name"] for c in known.json["checks"]} >= {"media", "passphrase", "archive", "signature", "signer", "files", "pdfa"}


# --- unpack -----------------------------------------------------------------------------

def test_unpack_puts_the_verified_files_in_place(made, secret, archive, pack_pdf, tmp_path):
    out = tmp_path / "received"
    proc = run_lgd("unpack", made.outputs[0], "--out", out, "--passphrase-file", passfile(tmp_path, secret), "--archive", archive, "--json")
    assert proc.returncode == 0 and proc.json["ok"] and proc.json["out"] == str(out)
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "manifest.sig", "pack.pdf"]
    assert (out / "pack.pdf").read_bytes() == pack_pdf.read_bytes()
    again = run_lgd("unpack", made.outputs[0], "--out", out, "--passphrase-file", passfile(tmp_path, secret), "--archive", archive, "--json")
    assert again.returncode == 2 and again.json["error"]["code"] == "out_not_empty"


@pytest.mark.parametrize("case", ["file_mismatch", "archive_corrupt"])
def test_unpack_leaves_nothing_when_verification_fails(case, made, secret, pack_pdf, archive, tmp_path):
    pack, tried = _tampered(case, made, secret, pack_pdf, tmp_path)
    parent = tmp_path / "inbox"
    parent.mkdir()
    result = unpack(pack, tried, parent / "received", trusted_keys(archive))
    assert not result.ok and result.out is None and [p.code for p in result.problems] == [case]
    assert list(parent.iterdir()) == [], "neither the out folder nor a temporary one is left"


# --- the command line's edges ------------------------------------------------------------

def test_usage_errors_exit_2_without_traceback(made, tmp_path):
    missing = run_lgd("verify", tmp_path / "nope.7z", "--passphrase-file", passfile(tmp_path, "x" * 25), "--json")
    assert missing.returncode == 2 and missing.json["error"]["code"] == "not_a_pack"
    no_pass = subprocess.run(
        [*LGD, "verify", str(made.outputs[0])],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, cwd=Path(__file__).parent.parent,
    )
    assert no_pass.returncode == 2 and "--passphrase-file" in no_pass.stderr and "Traceback" not in no_pass.stderr
    short = run_lgd("verify", made.outputs[0], "--passphrase-file", passfile(tmp_path, "short"), "--json")
    assert short.returncode == 2 and short.json["error"]["code"] == "passphrase_unusable"
    bad_fp = run_lgd("verify", made.outputs[0], "--passphrase-file", passfile(tmp_path, "x" * 25), "--fingerprint", "SHA256:nope", "--json")
    assert bad_fp.returncode == 2
    not_pack = tmp_path / "notes.txt"
    not_pack.write_text("hello")
    other = run_lgd("verify", not_pack, "--passphrase-file", passfile(tmp_path, "x" * 25), "--json")
    assert other.returncode == 2 and other.json["error"]["code"] == "not_a_pack"
    second = made.outputs[0].with_name("lgd-pack.7z.002")
    shutil.copyfile(made.outputs[0], second)
    try:
        later = run_lgd("verify", second, "--passphrase-file", passfile(tmp_path, "x" * 25), "--json")
    finally:
        second.unlink()
    assert later.returncode == 2 and "give lgd-pack.7z.001" in later.json["error"]["message"]


def test_missing_7zz_says_to_run_setup(made, secret, tmp_path):
    proc = run_lgd("verify", made.outputs[0], "--passphrase-file", passfile(tmp_path, secret), "--json",
                   env={"PATH": str(tmp_path / "empty-bin")})
    assert proc.returncode == 3 and proc.json["error"]["code"] == "missing_dependency"
    assert "scripts/setup.sh" in proc.json["error"]["message"]


def test_human_output_names_each_check(made, secret, archive, tmp_path):
    proc = run_lgd("verify", made.outputs[0], "--passphrase-file", passfile(tmp_path, secret), "--archive", archive)
    assert proc.returncode == 0 and "VERIFIED" in proc.stdout and NHS in proc.stdout
    assert "ok    media" in proc.stdout and "ok    pdfa" in proc.stdout
