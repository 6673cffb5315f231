"""Why a transfer pack could not be written, verified or unpacked: a stable short code and a sentence."""

from __future__ import annotations

from enum import StrEnum

from pipelines.errors import ExitCode, LgdError


class PackCode(StrEnum):
    """Stable codes for `--json` and scripts; the sentences that go with them may be reworded."""

    # The passphrase given to lgd (usage: nothing was read or written yet).
    passphrase_unusable = "passphrase_unusable"
    # What was given as the pack.
    not_a_pack = "not_a_pack"
    volume_missing = "volume_missing"
    # What the medium holds besides the archive (read before anything is opened or created).
    unsafe_name = "unsafe_name"  # a name that is not one lgd writes: a path, a traversal, an unknown file
    media_unexpected = "media_unexpected"  # a file, folder or link on the medium that lgd did not write
    media_changed = "media_changed"  # README.TXT is not the text lgd wrote, or SHA256SUMS.TXT is missing
    volume_foreign = "volume_foreign"  # a volume or disc of another pack beside this one's
    # Opening the encrypted archive.
    not_encrypted = "not_encrypted"
    wrong_passphrase = "wrong_passphrase"
    archive_corrupt = "archive_corrupt"
    archive_truncated = "archive_truncated"
    archive_too_large = "archive_too_large"  # the archive would expand beyond its signed sizes (a bomb)
    # The signed manifest.
    manifest_missing = "manifest_missing"
    manifest_invalid = "manifest_invalid"
    signature_invalid = "signature_invalid"
    untrusted_signer = "untrusted_signer"
    # The files the manifest lists.
    file_mismatch = "file_mismatch"
    file_missing = "file_missing"
    file_unexpected = "file_unexpected"
    pdfa_invalid = "pdfa_invalid"
    # Writing.
    out_not_empty = "out_not_empty"
    media_too_small = "media_too_small"
    signing_key_unusable = "signing_key_unusable"
    signing_key_changed = "signing_key_changed"  # packs signed by a key the archive no longer holds or has retired
    out_unusable = "out_unusable"  # --out is read-only, full, a link, inside the archive, or not a folder


class PackError(LgdError):
    """A pack problem the command line reports as one sentence and an exit code, without a traceback.

    Problems with the pack itself (wrong passphrase, damage, tampering) exit with
    `ExitCode.verify_failed`; problems with what the user asked for exit with `ExitCode.usage`.
    """

    def __init__(self, code: PackCode, message: str, exit_code: ExitCode = ExitCode.verify_failed) -> None:
        super().__init__(message, exit_code, code.value)
        self.pack_code = code
