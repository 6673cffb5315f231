"""The pack-signing key over time (issue 12): never a silent new key, rotation on purpose, old packs still verify.

The real `lgd pack`, `lgd key` and `lgd verify` on a copy of the digitised sample, one patient.
"""

from __future__ import annotations

import json
import shutil

import pytest

from index import Catalogue
from index.decisions import latest_reconciliation, record_pack
from pipelines.transfer.keys import current_fingerprint, recorded_signers, require_known_key, retired_keys, rotate
from pipelines.transfer.problems import PackError
from tests.conftest import run_lgd

PASSPHRASE = "correct horse battery staple orbit lantern"


@pytest.fixture(scope="module")
def archive_with_a_pack(digitised, tmp_path_factory):
    """A copy of the sample archive, one patient reconciled, and one 7z pack signed by the first key."""
    root = tmp_path_factory.mktemp("keys")
    archive = root / "archive"
    shutil.copytree(digitised.archive, archive)
    patient = json.loads(digitised.batch.index.read_text())["patients"][1]
    nhs, coded = patient["nhs_number"], digitised.batch.out / patient["coded"]["csv"]
    secret = root / "pass.txt"
    secret.write_text(PASSPHRASE + "\n")
    secret.chmod(0o600)
    first = _pack(archive, nhs, root / "first", secret, "--coded", coded)
    assert first.returncode == 0, first.stderr
    return archive, nhs, secret, first.json


def _pack(archive, nhs, out, secret, *extra):
    return run_lgd("pack", "--patient", nhs, "--format", "7z", "--out", out, "--archive", archive,
                   "--passphrase-file", secret, "--json", *extra)


def test_a_lost_key_is_refused_then_rotated_on_purpose_and_old_packs_still_verify(archive_with_a_pack, tmp_path):
    archive, nhs, secret, first = archive_with_a_pack
    old = first["fingerprint"]
    shutil.rmtree(archive / "keys")  # e.g. not restored after a server move

    refused = _pack(archive, nhs, tmp_path / "refused", secret)
    assert refused.returncode == 4, refused.stderr
    assert refused.json["error"]["code"] == "signing_key_changed" and old in refused.stderr
    assert "lgd key rotate" in refused.stderr and not (archive / "keys" / "pack-signing.key").exists()

    shown = run_lgd("key", "show", "--archive", archive, "--json")
    assert shown.returncode == 0 and shown.json["current"] is None
    assert [u["fingerprint"] for u in shown.json["unknown"]] == [old] and shown.json["unknown"][0]["packs"] == 1

    rotated = run_lgd("key", "rotate", "--archive", archive, "--reason", "keys folder lost in the server move", "--json")
    assert rotated.returncode == 0, rotated.stderr
    assert rotated.json["old"] is None and rotated.json["kept"] == [old] and rotated.json["lost"] == []
    new = rotated.json["new"]
    assert new != old and (archive / "keys" / "pack-signing.key").stat().st_mode & 0o077 == 0

    second = _pack(archive, nhs, tmp_path / "second", secret)
    assert second.returncode == 0 and second.json["fingerprint"] == new, second.stderr

    verified = run_lgd("verify", first["outputs"][0], "--passphrase-file", secret, "--archive", archive, "--json")
    assert verified.returncode == 0, verified.stdout
    assert verified.json["signer"]["fingerprint"] == old and "retired key" in verified.json["signer"]["trusted_by"]

    with Catalogue.open(archive, create=False, readonly=True) as cat:
        assert [(s.fingerprint, s.packs) for s in recorded_signers(cat)] == [(old, 1), (new, 1)]
        assert [k.fingerprint for k in retired_keys(archive)] == [old] and current_fingerprint(archive) == new
        (audit,) = cat.audit_log(action="signing_key_rotated")
    assert audit.detail["reason"] == "keys folder lost in the server move" and audit.detail["new"] == new


def test_a_replaced_key_file_is_refused_and_a_plain_rotation_keeps_the_current_key(archive_with_a_pack, tmp_path):
    """In-process (the command line is exercised above): rotate, record a pack by the new key, put the old key back."""
    archive, nhs, _, _ = archive_with_a_pack
    keys = archive / "keys"
    saved = tmp_path / "saved-keys"
    shutil.copytree(keys, saved)
    with Catalogue.open(archive, create=False) as cat:
        current = current_fingerprint(archive)
        rotated = rotate(cat, "tester", "yearly rotation")
        assert rotated.old == current and current in rotated.kept and rotated.new == current_fingerprint(archive)
        assert current in {k.fingerprint for k in retired_keys(archive)}
        require_known_key(cat)  # nothing unknown: the old key is retired, the new one current
        record_pack(cat, nhs, latest_reconciliation(cat, nhs).id, format="7z", sha256="0" * 64,
                    detail={"fingerprint": rotated.new}, actor="tester")
        for name in ("pack-signing.key", "pack-signing.pub"):  # someone restores yesterday's keys/ over today's
            shutil.copy2(saved / name, keys / name)
        with pytest.raises(PackError) as refused:
            require_known_key(cat)
    assert refused.value.code == "signing_key_changed" and rotated.new in str(refused.value)
