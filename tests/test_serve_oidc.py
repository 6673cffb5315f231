"""Single sign-on through OpenID Connect, against a real local provider (tests/oidc_standin.py) over HTTP."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient

from index import Catalogue
from tests.conftest import copy_with_accounts
from tests.oidc_standin import running


@pytest.fixture(scope="module")
def archive(digitised, tmp_path_factory) -> Path:
    return copy_with_accounts(digitised.archive, tmp_path_factory.mktemp("oidc"),
                              {"admin": "practice-admin", "dr.patel": "clinician"}, None)


@pytest.fixture(scope="module")
def provider():
    with running() as standin:
        yield standin


def sign_in_through(provider, app) -> tuple[TestClient, httpx.Response]:
    """What a browser does: lgd sends it to the provider, the provider sends it back with a code."""
    client = TestClient(app)
    start = client.get("/login/oidc", follow_redirects=False)
    assert start.status_code == 303 and start.headers["location"].startswith(provider.issuer + "/authorize?")
    back = httpx.get(start.headers["location"], follow_redirects=False)
    assert back.status_code == 302
    callback = urlsplit(back.headers["location"])
    return client, client.get(f"{callback.path}?{callback.query}", follow_redirects=False)


def test_a_person_the_provider_vouches_for_signs_in_with_their_own_role(archive, provider):
    from pipelines.web.app import create_app
    from pipelines.web.oidc import OidcConfig

    app = create_app(archive, OidcConfig(provider.issuer, provider.client_id))
    provider.user, provider.tamper = "dr.patel", None
    client, answer = sign_in_through(provider, app)
    assert answer.status_code == 200 and 'url=/' in answer.text
    assert client.get("/api/v1/session").json() == {"user": "dr.patel", "role": "clinician"}
    with Catalogue.open(archive, create=False) as catalogue:
        login = catalogue.audit_log(action="login")[-1]
    assert login.actor == "dr.patel" and login.detail["method"] == "oidc" and login.detail["role"] == "clinician"


@pytest.mark.parametrize("tamper", ["aud", "nonce", "key", "expired"])
def test_an_id_token_that_is_not_right_signs_nobody_in(archive, provider, tamper):
    from pipelines.web.app import create_app
    from pipelines.web.oidc import OidcConfig

    app = create_app(archive, OidcConfig(provider.issuer, provider.client_id))
    provider.user, provider.tamper = "dr.patel", tamper
    try:
        client, answer = sign_in_through(provider, app)
    finally:
        provider.tamper = None
    assert answer.status_code == 401 and answer.json()["error"] == "oidc_bad_token"
    assert client.get("/api/v1/session").status_code == 401


def test_the_provider_cannot_make_an_account_or_a_role(archive, provider):
    from pipelines.web.app import create_app
    from pipelines.web.oidc import OidcConfig

    app = create_app(archive, OidcConfig(provider.issuer, provider.client_id))
    provider.user = "stranger"
    try:
        client, answer = sign_in_through(provider, app)
    finally:
        provider.user = "dr.patel"
    assert answer.status_code == 401 and answer.json()["error"] == "no_account"
    with Catalogue.open(archive, create=False) as catalogue:
        assert catalogue.audit_log(action="login_failed")[-1].actor == "stranger"


def test_an_answer_this_browser_did_not_ask_for_is_refused(archive, provider):
    from pipelines.web.app import create_app
    from pipelines.web.oidc import OidcConfig

    app = create_app(archive, OidcConfig(provider.issuer, provider.client_id))
    victim = TestClient(app)
    start = victim.get("/login/oidc", follow_redirects=False)
    back = urlsplit(httpx.get(start.headers["location"], follow_redirects=False).headers["location"])
    attacker = TestClient(app)  # login CSRF: the answer arrives in another browser, without the binding cookie
    refused = attacker.get(f"{back.path}?{back.query}", follow_redirects=False)
    assert refused.status_code == 401 and refused.json()["error"] == "oidc_state"
    assert victim.get(f"{back.path}?{back.query}", follow_redirects=False).status_code == 401  # state used up
    assert TestClient(create_app(archive)).get("/login/oidc").json()["error"] == "no_oidc"
