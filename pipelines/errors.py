"""Exit codes of the `lgd` command, and the one error hierarchy the command line and the web service both report.

Each error carries its exit code, its HTTP status and a stable code string (as OCRmyPDF's
ExitCodeException carries its exit code), so `lgd search` and `GET /api/v1/search` say the same
failure the same way: a sentence and exit 2 on the shell, 400 with {"error", "message"} on the web.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    ok = 0
    partial = 1  # some inputs failed; the rest were processed and stored
    usage = 2  # bad command line or option values
    missing_dependency = 3  # a program or language pack lgd needs is not installed, or the queue's broker is unreachable
    archive_error = 4  # the archive cannot be opened or written (read-only, full, locked)
    verify_failed = 5  # a transfer pack failed verification: wrong passphrase, damaged or tampered
    not_permitted = 6  # the named user may not do this (role), or is unknown or disabled
    internal = 70  # a bug in lgd: please report it
    interrupted = 130  # Ctrl-C: documents already stored stay stored


EXIT_CODE_HELP = """exit codes:
  0    success
  1    some inputs failed (see the summary); everything else was stored
  2    bad usage: unknown option, bad value, missing file
  3    a required program is missing (run scripts/setup.sh), or the queue's broker
       (--queue URL) cannot be reached
  4    the archive cannot be used: read-only, full, locked or damaged
  5    a transfer pack failed verification (wrong passphrase, damaged or tampered); nothing unpacked
  6    not permitted: the user (--as NAME or LGD_USER) is unknown, disabled, or their role may not do this
  70   an internal error in lgd (run again with -vv and report the traceback)
  130  interrupted; finished documents are kept, a re-run resumes"""


# The HTTP status of each exit code, for errors that do not name their own.
_HTTP_STATUS = {
    ExitCode.partial: 404,  # most are "no such patient / document / page"
    ExitCode.usage: 400,
    ExitCode.missing_dependency: 500,
    ExitCode.archive_error: 503,
    ExitCode.verify_failed: 422,
    ExitCode.not_permitted: 403,
    ExitCode.internal: 500,
}


class LgdError(Exception):
    """An error reported as one sentence with an exit code (shell) or an HTTP status (web), never a traceback."""

    def __init__(self, message: str, exit_code: ExitCode = ExitCode.usage, code: str = "usage",
                 http_status: int | None = None) -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.code = code
        self.http_status = http_status or _HTTP_STATUS.get(exit_code, 500)

    def as_json(self) -> dict[str, str]:
        return {"error": self.code, "message": str(self)}


class NotFound(LgdError):
    """No such patient, document, page or user."""

    def __init__(self, message: str, code: str = "not_found") -> None:
        super().__init__(message, ExitCode.partial, code, 404)


class NotSignedIn(LgdError):
    """No session, token or named user: sign in first."""

    def __init__(self, message: str = "sign in first (POST /api/v1/session, or a Bearer token from `lgd user token`)",
                 code: str = "not_signed_in") -> None:
        super().__init__(message, ExitCode.not_permitted, code, 401)


class NotPermitted(LgdError):
    """The user's role may not do this."""

    def __init__(self, message: str, code: str = "not_permitted") -> None:
        super().__init__(message, ExitCode.not_permitted, code, 403)
