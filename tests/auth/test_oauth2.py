"""OAuth2Provider: OIDC discovery (exact issuer), JWKS, RFC 7662 introspection with caching,
and 503 (never 500, never allow) when the IdP is down. The IdP is mocked with pytest-httpx."""

from __future__ import annotations

import base64
from urllib.parse import parse_qs

import httpx
import pytest

from tests.auth.jwt_helpers import AUDIENCE, ISSUER, NOW, jwks, rsa, sign

DISCOVERY = ISSUER + "/.well-known/openid-configuration"
JWKS_URI = ISSUER + "/protocol/certs"
INTROSPECT = ISSUER + "/protocol/introspect"
DOC = {
    "issuer": ISSUER,
    "jwks_uri": JWKS_URI,
    "introspection_endpoint": INTROSPECT,
    "authorization_endpoint": ISSUER + "/auth",
}
OAUTH = {
    "oauth2": {
        "enabled": True,
        "issuer": ISSUER,
        "client_id": "tframex",
        "client_secret": "client-s3cret",
        "audience": AUDIENCE,
    }
}


@pytest.fixture
async def oenv(env_factory, httpx_mock):
    httpx_mock.add_response(url=DISCOVERY, json=DOC)
    return await env_factory(OAUTH)


def active(**over):
    return {
        "active": True,
        "sub": "svc-7",
        "username": "robot",
        "exp": NOW + 600,
        "iss": ISSUER,
        "scope": "agent.view flow.view",
        "roles": ["developer"],
        "client_id": "x",
        **over,
    }


async def bearer(env, token: str):
    return await env.get("/x", Authorization=f"Bearer {token}")


def calls(httpx_mock, url: str) -> int:
    return sum(1 for r in httpx_mock.get_requests() if str(r.url) == url)


async def test_jwt_access_token_via_discovered_jwks(oenv, httpx_mock) -> None:
    httpx_mock.add_response(url=JWKS_URI, json=jwks(rsa("k1")))
    resp = await bearer(oenv, sign(rsa("k1")))
    body = resp.json()
    assert resp.status_code == 200, resp.text
    assert body["method"] == "oauth2" and body["id"] == "ext-user-1" and body["roles"] == ["developer"]
    assert (await bearer(oenv, sign(rsa("k1"), iss=ISSUER + "/"))).status_code == 401
    assert (await bearer(oenv, sign(rsa("k1"), aud="tframex-other"))).status_code == 401


async def test_opaque_token_introspected_once_then_cached(oenv, httpx_mock) -> None:
    httpx_mock.add_response(url=INTROSPECT, method="POST", json=active())
    for _ in range(3):
        resp = await bearer(oenv, "opaque-token-123")
        assert resp.status_code == 200
    body = resp.json()
    assert body["id"] == "svc-7" and body["username"] == "robot" and body["scopes"] == ["agent.view", "flow.view"]
    assert calls(httpx_mock, INTROSPECT) == 1
    request = httpx_mock.get_request(url=INTROSPECT)
    assert parse_qs(request.content.decode()) == {"token": ["opaque-token-123"], "token_type_hint": ["access_token"]}
    expected = "Basic " + base64.b64encode(b"tframex:client-s3cret").decode()
    assert request.headers["authorization"] == expected


async def test_introspection_cache_never_outlives_the_token(oenv, httpx_mock) -> None:
    httpx_mock.add_response(url=INTROSPECT, method="POST", json=active(exp=NOW + 10))
    httpx_mock.add_response(url=INTROSPECT, method="POST", json={"active": False})
    assert (await bearer(oenv, "short-lived")).status_code == 200
    oenv.clock.advance(11)
    assert (await bearer(oenv, "short-lived")).status_code == 401
    assert calls(httpx_mock, INTROSPECT) == 2


async def test_inactive_token_refused_and_remembered(oenv, httpx_mock) -> None:
    httpx_mock.add_response(url=INTROSPECT, method="POST", json={"active": False})
    assert (await bearer(oenv, "revoked")).status_code == 401
    assert (await bearer(oenv, "revoked")).status_code == 401
    assert calls(httpx_mock, INTROSPECT) == 1


@pytest.mark.parametrize(
    "answer",
    [
        {"active": "true", "sub": "x"},
        {"active": 1, "sub": "x"},
        {"sub": "x"},
        active(exp=NOW - 60),
        active(iss="https://evil.example.com"),
        active(aud="someone-else"),
        active(sub=None, client_id=None),
        active(sub=""),
        active(sub=7),
        active(nbf=NOW + 600),
        active(exp="soon"),
        active(token_type="refresh_token"),
    ],
)
async def test_introspection_answers_checked(oenv, httpx_mock, answer) -> None:
    httpx_mock.add_response(url=INTROSPECT, method="POST", json={k: v for k, v in answer.items() if v is not None})
    assert (await bearer(oenv, "tok")).status_code == 401


@pytest.mark.parametrize("failure", ["connect", "timeout", 500, 401, "html"])
async def test_introspection_down_is_503(oenv, httpx_mock, failure) -> None:
    if failure == "connect":
        httpx_mock.add_exception(httpx.ConnectError("refused"), url=INTROSPECT)
    elif failure == "timeout":
        httpx_mock.add_exception(httpx.ReadTimeout("slow"), url=INTROSPECT)
    elif failure == "html":
        httpx_mock.add_response(url=INTROSPECT, method="POST", text="<html>oops</html>")
    else:
        httpx_mock.add_response(url=INTROSPECT, method="POST", status_code=failure)
    resp = await bearer(oenv, "tok")
    assert resp.status_code == 503
    assert resp.json()["error"]["code"] == "idp_unavailable" and "tok" not in resp.text


@pytest.mark.parametrize("issuer", [ISSUER + "/", "https://evil.example.com", "HTTPS://IDP.EXAMPLE.COM", None])
async def test_discovery_issuer_must_match_exactly(env_factory, httpx_mock, issuer) -> None:
    doc = {**DOC, "issuer": issuer} if issuer else {k: v for k, v in DOC.items() if k != "issuer"}
    httpx_mock.add_response(url=DISCOVERY, json=doc, is_reusable=True)
    env = await env_factory(OAUTH)  # startup survives a bad IdP
    resp = await bearer(env, "tok")
    assert resp.status_code == 503


async def test_idp_down_at_startup_then_recovers(env_factory, httpx_mock) -> None:
    httpx_mock.add_exception(httpx.ConnectError("refused"), url=DISCOVERY)
    env = await env_factory(OAUTH)
    resp = await bearer(env, "tok")
    assert resp.status_code == 503  # within the retry pause: not asked again
    assert calls(httpx_mock, DISCOVERY) == 1
    env.clock.advance(6)
    httpx_mock.add_response(url=DISCOVERY, json=DOC)
    httpx_mock.add_response(url=INTROSPECT, method="POST", json=active())
    assert (await bearer(env, "tok")).status_code == 200


async def test_token_in_query_string_never_read(oenv) -> None:
    assert (await oenv.get("/x?access_token=tok")).status_code == 401


async def test_oversized_or_odd_bearer_refused_without_calling_idp(oenv, httpx_mock) -> None:
    assert (await bearer(oenv, "x" * 9000)).status_code == 401
    odd = await oenv.client.get("/x", headers={"Authorization": "Bearer tök".encode()})
    assert odd.status_code == 401
    assert calls(httpx_mock, INTROSPECT) == 0


async def test_jwt_and_oauth2_together(env_factory, httpx_mock) -> None:
    from joserfc.jwk import OctKey

    from tests.auth.test_jwt import SECRET

    httpx_mock.add_response(url=DISCOVERY, json=DOC)
    httpx_mock.add_response(url=INTROSPECT, method="POST", json=active())
    env = await env_factory({"jwt": {"enabled": True, "algorithms": ["HS256"], "secret": SECRET}, **OAUTH})
    own = sign(OctKey.import_key(SECRET.encode()), alg="HS256")
    assert (await bearer(env, own)).json()["method"] == "jwt"
    assert (await bearer(env, "opaque")).json()["method"] == "oauth2"


async def test_without_client_secret_opaque_tokens_are_refused(env_factory, httpx_mock) -> None:
    httpx_mock.add_response(url=DISCOVERY, json=DOC)
    public_client = {"oauth2": {"enabled": True, "issuer": ISSUER, "client_id": "tframex", "audience": AUDIENCE}}
    env = await env_factory(public_client)
    assert (await bearer(env, "opaque")).status_code == 401
    assert calls(httpx_mock, INTROSPECT) == 0


DEFAULT_AUDIENCE = {"oauth2": {k: v for k, v in OAUTH["oauth2"].items() if k != "audience"}}


@pytest.mark.parametrize(
    ("aud", "status"),
    [
        ("some-other-api", 401),
        (["some-other-api", "another"], 401),
        ([], 401),
        ("tframex", 200),
        (["some-other-api", "tframex"], 200),
        (None, 200),  # no aud in the answer: nothing to check
    ],
)
async def test_introspection_checks_aud_at_the_default_audience(env_factory, httpx_mock, aud, status) -> None:
    """``audience`` left at its default (the client id): an answer naming other audiences is 401."""
    httpx_mock.add_response(url=DISCOVERY, json=DOC)
    httpx_mock.add_response(url=INTROSPECT, method="POST", json=active(**({} if aud is None else {"aud": aud})))
    env = await env_factory(DEFAULT_AUDIENCE)
    assert (await bearer(env, "opaque-aud")).status_code == status


async def test_client_credentials_answer_without_sub_uses_the_namespaced_client_id(oenv, httpx_mock) -> None:
    """RFC 7662 ``sub`` is optional (oidc-provider omits it for client-credentials tokens)."""
    answer = {k: v for k, v in active(client_id="reporting-service").items() if k not in ("sub", "username")}
    httpx_mock.add_response(url=INTROSPECT, method="POST", json=answer)
    resp = await bearer(oenv, "opaque-cc-token")
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["id"] == "client:reporting-service" and body["username"] == "reporting-service"
    assert body["method"] == "oauth2" and body["scopes"] == ["agent.view", "flow.view"]
