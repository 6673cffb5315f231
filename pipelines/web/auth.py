"""Who is asking: a session cookie (with a CSRF token for every change) or an API token, and login throttling.

Sessions live in the server's memory (a restart signs everyone out, which is acceptable for
a practice service and leaves nothing to steal from disk). The cookie is HttpOnly and
SameSite=Strict, Secure when the request arrived over TLS; a state-changing request made
with it must echo the session's CSRF token in `X-CSRF-Token`. A Bearer token carries no
ambient authority, so it needs no CSRF token.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field

from pipelines.errors import ExitCode, LgdError, NotSignedIn
from pipelines.service.access import Who

SESSION_COOKIE = "lgd_session"
CSRF_COOKIE = "lgd_csrf"
CSRF_HEADER = "x-csrf-token"
SESSION_IDLE_SECONDS = 30 * 60  # NHS smartcard-style idle sign-out
SESSION_MAX_SECONDS = 12 * 3600  # a working day
LOGIN_FAILURES = 5  # per user name and per client address...
LOGIN_WINDOW_SECONDS = 15 * 60  # ...within this window; then refused until the window passes
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass
class Session:
    who: Who
    csrf: str
    started: float
    seen: float


@dataclass
class Sessions:
    clock: callable = time.monotonic
    _by_id: dict[str, Session] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self, who: Who) -> tuple[str, Session]:
        now = self.clock()
        sid = secrets.token_urlsafe(32)
        session = Session(who, secrets.token_urlsafe(32), now, now)
        with self._lock:
            self._by_id[sid] = session
        return sid, session

    def get(self, sid: str | None) -> Session | None:
        if not sid:
            return None
        now = self.clock()
        with self._lock:
            session = self._by_id.get(sid)
            if session is None:
                return None
            if now - session.seen > SESSION_IDLE_SECONDS or now - session.started > SESSION_MAX_SECONDS:
                del self._by_id[sid]
                return None
            session.seen = now
            return session

    def end(self, sid: str | None) -> None:
        with self._lock:
            self._by_id.pop(sid or "", None)

    def end_user(self, name: str) -> None:
        """Sign a user out everywhere (disabled, password changed)."""
        with self._lock:
            for sid in [s for s, v in self._by_id.items() if v.who.name == name]:
                del self._by_id[sid]


@dataclass
class LoginThrottle:
    """Failed sign-ins per user name and per client; both are checked so neither spraying names nor addresses helps."""

    clock: callable = time.monotonic
    _failures: dict[str, deque] = field(default_factory=lambda: defaultdict(deque))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def check(self, name: str, client: str) -> None:
        now = self.clock()
        with self._lock:
            for key in (f"user:{name.casefold()}", f"client:{client}"):
                failures = self._failures[key]
                while failures and now - failures[0] > LOGIN_WINDOW_SECONDS:
                    failures.popleft()
                if len(failures) >= LOGIN_FAILURES:
                    wait = int(LOGIN_WINDOW_SECONDS - (now - failures[0])) + 1
                    raise LgdError(f"too many failed sign-ins; try again in {wait // 60 + 1} minutes",
                                   ExitCode.not_permitted, "too_many_attempts", 429)

    def failed(self, name: str, client: str) -> None:
        now = self.clock()
        with self._lock:
            for key in (f"user:{name.casefold()}", f"client:{client}"):
                self._failures[key].append(now)

    def succeeded(self, name: str) -> None:
        with self._lock:
            self._failures.pop(f"user:{name.casefold()}", None)


def client_address(request) -> str:
    """Where a request came from, as the audit records it (the proxy's X-Forwarded-For when it is trusted)."""
    return request.client.host if request.client else "unknown"


def bearer(header: str | None) -> str | None:
    if header and header[:7].lower() == "bearer ":
        return header[7:].strip()
    return None


def check_csrf(method: str, session: Session, sent: str | None) -> None:
    if method not in SAFE_METHODS and not (sent and secrets.compare_digest(sent, session.csrf)):
        raise LgdError("this request changes something and must carry the session's CSRF token in X-CSRF-Token",
                       ExitCode.not_permitted, "csrf", 403)


def signed_out() -> NotSignedIn:
    return NotSignedIn()
