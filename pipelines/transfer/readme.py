"""The plain README.TXT on each volume of a pack: what it is and how to open and verify it, with no patient data."""

from __future__ import annotations

from collections.abc import Sequence

ARCHIVE_HELP = "https://www.7-zip.org"


def readme_text(volume: int, count: int, set_id: str, parts: Sequence[str], medium: str) -> str:
    """README.TXT for volume `volume` of `count`; `medium` is "disc" or "folder". ASCII, CRLF line ends.

    The signing key's fingerprint is deliberately not printed: anyone who forged a pack
    would print their own, and a receiver might copy it from here into `lgd verify`.
    """
    first = parts[0]
    on = "on" if medium == "disc" else "in"
    here = parts[volume - 1]
    if count == 1:
        where = f"This {medium} holds the whole pack: {here}."
        volumes = ""
        sums = "sha256sum -c SHA256SUMS.TXT"
    else:
        where = (
            f"This is {medium} {volume} of {count} of one pack (set {set_id}); it holds {here}.\n"
            f"Copy the files {', '.join(parts)} from all {count} {medium}s into one folder before opening."
        )
        volumes = "\n  7-Zip reads the other volumes from the same folder."
        sums = "sha256sum -c --ignore-missing SHA256SUMS.TXT"
    text = f"""LGD TRANSFER PACK - {medium.upper()} {volume} OF {count} - SET {set_id}
{'=' * 60}

What this is
  Part of a GP patient record sent from one practice to another, made by lgd
  (Lloyd George digitisation). The record is inside an encrypted 7-Zip archive
  (AES-256, file names hidden too). Nothing here can be read without its
  passphrase.

{where}

The passphrase and the key fingerprint
  They are NOT {on} this {medium}. The sending practice gives them to you
  separately (by phone, or by a letter sent on its own). If you have this
  {medium} but no passphrase, contact the sending practice.

How to open it
  Windows: install 7-Zip from {ARCHIVE_HELP}, right-click {first},
  choose 7-Zip > Extract Here, and type the passphrase exactly (words
  separated by single spaces).{volumes}
  Linux or macOS: 7zz x {first}  (type the passphrase when asked)

What is inside
  pack.pdf        the paper record pages (PDF/A) with their cover sheet
  electronic.pdf  (if present) the coded electronic record as PDF/A
  manifest.json   the list of files with their SHA-256 checksums
  manifest.sig    the sending practice's Ed25519 signature of manifest.json

How to check it has not been changed
  With lgd:  lgd verify <this {medium}, or lgd-pack-001.iso> --fingerprint <the fingerprint you were given>
  lgd checks the passphrase, SHA256SUMS.TXT, the signature, that the key is
  the one you were told, every file's checksum, and the PDF/A files.
  Without lgd: {sums} checks the encrypted files;
  after opening, the signature can be checked with OpenSSL and the sending
  practice's public key:
    openssl pkeyutl -verify -pubin -inkey pack-signing.pub -rawin -in manifest.json -sigfile manifest.sig
  If lgd reports the pack is signed by an unknown key, or anything else is
  wrong, do not use the pack: tell the sending practice.

SHA256SUMS.TXT lists the checksums of the encrypted files of every volume.
"""
    return text.replace("\n", "\r\n")
