"""A small local OpenID Connect provider for tests: discovery, keys, authorize and token endpoints.

It signs in whoever `user` names without asking (a test stands in for the person), checks
PKCE (S256), the client id and the redirect URI like a real provider, and can be told to
misbehave (`tamper`: "aud", "nonce", "key", "expired") so lgd's checks are seen to work.
Run it with `running()`, which serves it with uvicorn on a free local port.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from urllib.parse import parse_qs, urlencode

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey


class StandIn:
    def __init__(self, port: int, client_id: str = "lgd-test") -> None:
        self.issuer = f"http://127.0.0.1:{port}"
        self.client_id = client_id
        self.key = RSAKey.generate_key(2048, parameters={"kid": "standin", "use": "sig", "alg": "RS256"})
        self.user = "dr.patel"
        self.tamper: str | None = None
        self.codes: dict[str, dict] = {}
        self.app = self._app()

    def _app(self) -> FastAPI:
        app = FastAPI()

        @app.get("/.well-known/openid-configuration")
        def discovery() -> dict:
            return {"issuer": self.issuer, "authorization_endpoint": f"{self.issuer}/authorize",
                    "token_endpoint": f"{self.issuer}/token", "jwks_uri": f"{self.issuer}/jwks",
                    "response_types_supported": ["code"], "id_token_signing_alg_values_supported": ["RS256"],
                    "code_challenge_methods_supported": ["S256"]}

        @app.get("/jwks")
        def jwks() -> dict:
            return KeySet([self.key]).as_dict(private=False)

        @app.get("/authorize")
        def authorize(request: Request):
            q = request.query_params
            if q.get("client_id") != self.client_id or q.get("code_challenge_method") != "S256":
                return JSONResponse({"error": "invalid_request"}, status_code=400)
            code = secrets.token_urlsafe(16)
            self.codes[code] = {"redirect_uri": q["redirect_uri"], "nonce": q.get("nonce"),
                                "challenge": q["code_challenge"], "user": self.user}
            return RedirectResponse(f"{q['redirect_uri']}?{urlencode({'code': code, 'state': q['state']})}",
                                    status_code=302)

        @app.post("/token")
        async def token(request: Request):
            form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
            grant = self.codes.pop(form.get("code", ""), None)
            verifier = form.get("code_verifier", "")
            challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
            if grant is None or grant["challenge"] != challenge or grant["redirect_uri"] != form.get("redirect_uri") \
                    or form.get("client_id", self.client_id) != self.client_id:
                return JSONResponse({"error": "invalid_grant"}, status_code=400)
            now = int(time.time())
            claims = {"iss": self.issuer, "aud": self.client_id, "sub": "standin-" + grant["user"],
                      "preferred_username": grant["user"], "nonce": grant["nonce"], "iat": now, "exp": now + 300}
            key = self.key
            if self.tamper == "aud":
                claims["aud"] = "someone-else"
            elif self.tamper == "nonce":
                claims["nonce"] = "replayed"
            elif self.tamper == "expired":
                claims["exp"] = now - 60
            elif self.tamper == "key":
                key = RSAKey.generate_key(2048, parameters={"kid": "standin"})
            id_token = jwt.encode({"alg": "RS256", "kid": "standin"}, claims, key)
            return {"access_token": secrets.token_urlsafe(16), "token_type": "Bearer", "expires_in": 300,
                    "id_token": id_token}

        return app


@contextlib.contextmanager
def running() -> Iterator[StandIn]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    standin = StandIn(port)
    server = uvicorn.Server(uvicorn.Config(standin.app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("the OIDC stand-in did not start")
        time.sleep(0.05)
    try:
        yield standin
    finally:
        server.should_exit = True
        thread.join(timeout=10)
