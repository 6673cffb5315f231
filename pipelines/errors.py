"""Exit codes of the `lgd` command and the one error type the command line turns into them."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    ok = 0
    partial = 1  # some inputs failed; the rest were processed and stored
    usage = 2  # bad command line or option values
    missing_dependency = 3  # a program or language pack lgd needs is not installed
    archive_error = 4  # the archive cannot be opened or written (read-only, full, locked)
    verify_failed = 5  # a transfer pack failed verification: wrong passphrase, damaged or tampered
    internal = 70  # a bug in lgd: please report it
    interrupted = 130  # Ctrl-C: documents already stored stay stored


EXIT_CODE_HELP = """exit codes:
  0    success
  1    some inputs failed (see the summary); everything else was stored
  2    bad usage: unknown option, bad value, missing file
  3    a required program is missing (run scripts/setup.sh)
  4    the archive cannot be used: read-only, full, locked or damaged
  5    a transfer pack failed verification (wrong passphrase, damaged or tampered); nothing unpacked
  70   an internal error in lgd (run again with -vv and report the traceback)
  130  interrupted; finished documents are kept, a re-run resumes"""


class LgdError(Exception):
    """An error the command line reports as one sentence and an exit code, without a traceback."""

    def __init__(self, message: str, exit_code: ExitCode = ExitCode.usage, code: str = "usage") -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.code = code
