"""Optional single sign-on: OpenID Connect (NHS CIS2, or a practice's own identity provider).

The authorisation-code flow with PKCE (S256), a state bound to the browser by a short-lived
cookie, and a nonce in the ID token. Authlib's httpx client does the protocol; joserfc checks
the ID token's signature against the provider's published keys, and its issuer, audience,
expiry and nonce. The identity provider says who someone is, never what they may do: the
claim named by `claim` must be the name of an enabled lgd account, whose role decides.
"""

from __future__ import annotations

import secrets
import threading
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

from pipelines.errors import ExitCode, LgdError, NotSignedIn

PENDING_SECONDS = 10 * 60  # a sign-in started and not finished in ten minutes is forgotten
HTTP_TIMEOUT = 10.0
OIDC_COOKIE = "lgd_oidc"


@dataclass(frozen=True, slots=True)
class OidcConfig:
    issuer: str
    client_id: str
    client_secret: str | None = None  # a confidential client; without it the client is public (PKCE only)
    claim: str = "preferred_username"  # which claim names the lgd account
    scope: str = "openid profile"

    def __post_init__(self) -> None:
        if not self.issuer.startswith(("https://", "http://127.0.0.1", "http://localhost")):
            raise LgdError(f"--oidc-issuer {self.issuer!r} must be https:// (plain http only for a local test issuer)",
                           ExitCode.usage, "bad_oidc_issuer")


@dataclass
class _Pending:
    state: str
    nonce: str
    verifier: str
    browser: str
    started: float


@dataclass
class Oidc:
    config: OidcConfig
    clock: Any = time.monotonic
    _pending: dict[str, _Pending] = field(default_factory=dict)
    _metadata: dict[str, Any] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _client(self, redirect_uri: str):
        with warnings.catch_warnings():  # Authlib 1.9 nudges towards httpx2, which lgd does not use yet
            warnings.simplefilter("ignore")
            from authlib.integrations.httpx_client import OAuth2Client
        return OAuth2Client(self.config.client_id, self.config.client_secret, scope=self.config.scope,
                            redirect_uri=redirect_uri, code_challenge_method="S256", timeout=HTTP_TIMEOUT,
                            token_endpoint_auth_method="client_secret_basic" if self.config.client_secret else "none")

    def metadata(self) -> dict[str, Any]:
        if self._metadata is None:
            url = self.config.issuer.rstrip("/") + "/.well-known/openid-configuration"
            with self._client("") as client:
                found = _json(client.request("GET", url, withhold_token=True), "discovery document")
            if found.get("issuer") != self.config.issuer:
                raise LgdError("the identity provider's discovery document names another issuer", ExitCode.internal,
                               "oidc_misconfigured", 502)
            self._metadata = found
        return self._metadata

    def start(self, redirect_uri: str) -> tuple[str, str]:
        """The provider's sign-in URL, and the value of the cookie that ties the answer to this browser."""
        token = secrets.token_urlsafe
        pending = _Pending(token(32), token(32), token(48), token(32), self.clock())
        with self._client(redirect_uri) as client:
            url, _ = client.create_authorization_url(self.metadata()["authorization_endpoint"], state=pending.state,
                                                     nonce=pending.nonce, code_verifier=pending.verifier)
        with self._lock:
            now = self.clock()
            for key in [k for k, p in self._pending.items() if now - p.started > PENDING_SECONDS]:
                del self._pending[key]
            self._pending[pending.state] = pending
        return url, pending.browser

    def finish(self, redirect_uri: str, state: str, code: str, browser: str | None) -> str:
        """The account name the provider vouches for; raises NotSignedIn on anything amiss."""
        from joserfc import jwt
        from joserfc.errors import JoseError
        from joserfc.jwk import KeySet

        with self._lock:
            pending = self._pending.pop(state or "", None)
        if pending is None or self.clock() - pending.started > PENDING_SECONDS \
                or not (browser and secrets.compare_digest(browser, pending.browser)):
            raise NotSignedIn("this sign-in was not started here or has expired; start again", "oidc_state")
        meta = self.metadata()
        with self._client(redirect_uri) as client:
            try:
                token = client.fetch_token(meta["token_endpoint"], code=code, code_verifier=pending.verifier,
                                           grant_type="authorization_code")
            except Exception as e:  # noqa: BLE001 - any failure of the exchange is a refused sign-in
                raise NotSignedIn(f"the identity provider refused the sign-in ({type(e).__name__})",
                                  "oidc_refused") from None
            keys = KeySet.import_key_set(_json(client.request("GET", meta["jwks_uri"], withhold_token=True), "key set"))
        try:
            decoded = jwt.decode(token.get("id_token", ""), keys, algorithms=["RS256", "ES256", "PS256"])
            jwt.JWTClaimsRegistry(
                iss={"essential": True, "value": self.config.issuer},
                aud={"essential": True, "value": self.config.client_id},
                nonce={"essential": True, "value": pending.nonce},
                exp={"essential": True},
            ).validate(decoded.claims)
        except (JoseError, ValueError) as e:
            raise NotSignedIn(f"the identity provider's ID token was not valid ({e})", "oidc_bad_token") from None
        name = decoded.claims.get(self.config.claim)
        if not isinstance(name, str) or not name:
            raise NotSignedIn(f"the ID token has no {self.config.claim!r} claim to name an lgd account", "oidc_no_claim")
        return name


def _json(response: Any, what: str) -> dict[str, Any]:
    try:
        response.raise_for_status()
        found = response.json()
    except Exception:  # noqa: BLE001 - unreachable, an error status or not JSON: all the same to the user
        raise LgdError(f"the identity provider's {what} could not be read", ExitCode.internal, "oidc_unreachable",
                       502) from None
    if not isinstance(found, dict):
        raise LgdError(f"the identity provider's {what} is not a JSON object", ExitCode.internal, "oidc_unreachable", 502)
    return found
