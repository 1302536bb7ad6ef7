"""JWTProvider, adversarially: alg=none in every spelling, algorithm confusion, kid injection,
time claims, iss/aud, malformed and oversized tokens, JWKS rotation with at most one refresh."""

from __future__ import annotations

import httpx
import pytest

from tests.auth.jwt_helpers import (
    AUDIENCE,
    ISSUER,
    NOW,
    b64,
    claims,
    ec,
    forge,
    hs256_with,
    jwks,
    public_pem,
    rsa,
    sign,
)
from tframex_asgi.config import EnterpriseConfig
from tframex_asgi.errors import ConfigError

JWKS_URL = "https://idp.example.com/jwks"
SECRET = "s" * 40


def jwt_cfg(**over):
    return {
        "jwt": {
            "enabled": True,
            "algorithms": ["RS256"],
            "public_key": public_pem(rsa()),
            "issuer": ISSUER,
            "audience": AUDIENCE,
            **over,
        }
    }


@pytest.fixture
async def jenv(env_factory):
    return await env_factory(jwt_cfg())


async def bearer(env, token: str):
    return await env.get("/x", Authorization=f"Bearer {token}")


async def test_valid_token_gives_external_principal(jenv) -> None:
    resp = await bearer(jenv, sign(rsa()))
    body = resp.json()
    assert resp.status_code == 200, resp.text
    assert body["id"] == "ext-user-1" and body["username"] == "erin" and body["method"] == "jwt"
    assert body["roles"] == ["developer"] and "agent.view" in body["scopes"]
    assert "agent.execute" not in body["scopes"]


async def test_scope_claim_only_narrows(jenv) -> None:
    only_view = (await bearer(jenv, sign(rsa(), scope="openid agent.view"))).json()
    assert only_view["scopes"] == ["agent.view"]
    unrelated = (await bearer(jenv, sign(rsa(), scope="openid profile"))).json()
    assert "agent.view" in unrelated["scopes"] and "flow.view" in unrelated["scopes"]
    widen = await bearer(jenv, sign(rsa(), scope="system.admin user.manage"))
    assert widen.status_code == 200 and widen.json()["scopes"] == []


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE", "none ", " none", "", None, "NoNe"])
@pytest.mark.parametrize("signature", [b"", b"x"])
async def test_alg_none_in_every_spelling_is_refused(jenv, alg, signature) -> None:
    header = {"alg": alg, "typ": "JWT"} if alg is not None else {"typ": "JWT"}
    resp = await bearer(jenv, forge(header, claims(), signature))
    assert resp.status_code == 401


@pytest.mark.parametrize("spelling", ["none", "None", "NONE", " none "])
def test_alg_none_refused_at_startup(spelling) -> None:
    with pytest.raises(ConfigError, match="algorithms"):
        EnterpriseConfig.from_kwargs(
            enable_security=True,
            security_config={
                "auth_providers": {"jwt": {"enabled": True, "secret": SECRET, "algorithms": ["HS256", spelling]}}
            },
        )


@pytest.mark.parametrize("algs", [["RS256"], ["RS256", "HS256"]])
async def test_hs256_signed_with_the_rsa_public_key_is_refused(env_factory, algs) -> None:
    env = await env_factory(jwt_cfg(algorithms=algs, secret=SECRET))
    pem = public_pem(rsa()).encode()
    for secret in (pem, pem.strip(), rsa().as_dict(private=False)["n"].encode()):
        for header in ({"alg": "HS256", "kid": "k1"}, {"alg": "HS256"}):
            assert (await bearer(env, hs256_with(secret, header, claims()))).status_code == 401
    if "HS256" in algs:  # the real secret still works: the allow-list is honoured, keys are per type
        assert (await bearer(env, hs256_with(SECRET.encode(), {"alg": "HS256"}, claims()))).status_code == 200


async def test_algorithm_outside_allow_list_refused(jenv) -> None:
    assert (await bearer(jenv, sign(rsa(), alg="RS512"))).status_code == 401
    assert (await bearer(jenv, sign(rsa(), alg="PS256"))).status_code == 401
    assert (await bearer(jenv, sign(ec(), alg="ES256"))).status_code == 401


async def test_other_key_same_kid_refused(jenv) -> None:
    from joserfc.jwk import RSAKey

    attacker = RSAKey.generate_key(2048, parameters={"kid": "k1"})
    assert (await bearer(jenv, sign(attacker))).status_code == 401


@pytest.mark.parametrize("kid", ["nope", "../../../../dev/null", "' OR '1'='1", "k1\x00", 7, {"a": 1}, ["k1"], ""])
async def test_unknown_or_injected_kid_refused(env_factory, kid) -> None:
    import json

    env = await env_factory(jwt_cfg(public_key=json.dumps(rsa().as_dict(private=False))))  # a JWK with kid k1
    assert (await bearer(env, sign(rsa()))).status_code == 200
    if isinstance(kid, str):
        token = sign(rsa(), header={"kid": kid})
    else:  # joserfc will not even sign these: forge them
        token = forge({"alg": "RS256", "kid": kid}, claims(), b"s")
    assert (await bearer(env, token)).status_code == 401


async def test_kid_cannot_pick_another_key_than_the_configured_pem(jenv) -> None:
    from joserfc.jwk import RSAKey

    attacker = RSAKey.generate_key(2048, parameters={"kid": "evil"})
    assert (await bearer(jenv, sign(attacker))).status_code == 401
    assert (await bearer(jenv, sign(rsa(), header={"kid": "anything"}))).status_code == 200


async def test_embedded_jwk_jku_x5u_never_followed(jenv) -> None:
    from joserfc.jwk import RSAKey

    attacker = RSAKey.generate_key(2048)
    for extra in (
        {"jwk": attacker.as_dict(private=False)},
        {"jku": "https://evil.example/jwks"},
        {"x5u": "https://evil.example/cert"},
    ):
        token = sign(attacker, header=extra)
        assert (await bearer(jenv, token)).status_code == 401
    # httpx_mock is not active here: any outgoing request would have failed the test loudly.


@pytest.mark.parametrize(
    ("over", "reason"),
    [
        ({"exp": NOW - 31}, "expired_token"),
        ({"exp": None}, "invalid_token"),
        ({"exp": "9999999999"}, "invalid_token"),
        ({"nbf": NOW + 31}, "invalid_token"),
        ({"iat": NOW + 31}, "invalid_token"),
        ({"iss": "https://idp.example.com/"}, "invalid_token"),
        ({"iss": None}, "invalid_token"),
        ({"aud": "other"}, "invalid_token"),
        ({"aud": None}, "invalid_token"),
        ({"sub": None}, "invalid_token"),
        ({"sub": ""}, "invalid_token"),
    ],
)
async def test_claims_checked(env_factory, over, reason) -> None:
    seen: dict = {}

    async def app(scope, receive, send):
        raise AssertionError("must not be reached")

    env = await env_factory(jwt_cfg())
    scope_probe = env.app

    async def outer(scope, receive, send):
        scope["tframex"] = seen
        await scope_probe(scope, receive, send)

    env.client._transport = type(env.client._transport)(outer)
    resp = await bearer(env, sign(rsa(), **over))
    assert resp.status_code == 401 and seen["audit_reason"] == reason
    assert resp.json()["error"]["message"] == "invalid credentials"


async def test_leeway_accepts_small_skew(jenv) -> None:
    assert (await bearer(jenv, sign(rsa(), exp=NOW - 20, nbf=NOW + 20, iat=NOW + 20))).status_code == 200
    assert (await bearer(jenv, sign(rsa(), aud=["x", AUDIENCE]))).status_code == 200


async def test_cached_token_still_expires(jenv) -> None:
    token = sign(rsa(), exp=NOW + 10)
    assert (await bearer(jenv, token)).status_code == 200
    jenv.clock.advance(41)  # past exp + 30 s leeway, inside the cache TTL
    assert (await bearer(jenv, token)).status_code == 401


@pytest.mark.parametrize(
    "token",
    [
        "",
        "a",
        "a.b",
        "a.b.c.d",
        "a.b.c.d.e",
        "...",
        "eyJ.eyJ.",
        "!!.!!.!!",
        "e30.e30.e30",
        b64(b"[1,2]") + "." + b64(b"{}") + ".c2ln",
        b64(b'{"alg":"RS256"}') + ".bm90IGpzb24.c2ln",
        b64(b"[" * 1500) + ".e30.c2ln",  # a header within the size limit that json.loads cannot nest
    ],
)
async def test_malformed_tokens_refused(jenv, token) -> None:
    assert (await bearer(jenv, token)).status_code == 401


async def test_oversized_token_and_header_refused(jenv) -> None:
    big = sign(rsa(), padding="x" * 9000)
    assert (await bearer(jenv, big)).status_code == 401
    big_header = sign(rsa(), header={"x5t": "y" * 3000})
    assert (await bearer(jenv, big_header)).status_code == 401


async def test_crit_header_refused(jenv) -> None:
    token = forge({"alg": "RS256", "kid": "k1", "crit": ["exp"]}, claims(), b"s")
    assert (await bearer(jenv, token)).status_code == 401


async def test_hs256_secret_provider(env_factory) -> None:
    env = await env_factory({"jwt": {"enabled": True, "algorithms": ["HS256"], "secret": SECRET}})
    from joserfc.jwk import OctKey

    key = OctKey.import_key(SECRET.encode())
    assert (await bearer(env, sign(key, alg="HS256"))).status_code == 200
    wrong = OctKey.import_key(b"t" * 40)
    assert (await bearer(env, sign(wrong, alg="HS256"))).status_code == 401


@pytest.mark.parametrize(
    "bad",
    [
        {"algorithms": []},
        {"algorithms": ["HS256"]},
        {"algorithms": ["RS257"]},
        {"secret": "short", "algorithms": ["HS256"]},
        {"secret": "-----BEGIN PUBLIC KEY-----" + "x" * 40, "algorithms": ["HS256"]},
        {"public_key": None},
    ],
)
def test_bad_jwt_config_refused(bad) -> None:
    cfg = {"enabled": True, "public_key": "pem", **bad}
    cfg = {k: v for k, v in cfg.items() if v is not None}
    with pytest.raises(ConfigError):
        EnterpriseConfig.from_kwargs(enable_security=True, security_config={"auth_providers": {"jwt": cfg}})


# -- JWKS --------------------------------------------------------------------------------


@pytest.fixture
async def jwks_env(env_factory):
    return await env_factory(
        {
            "jwt": {
                "enabled": True,
                "algorithms": ["RS256", "ES256"],
                "jwks_url": JWKS_URL,
                "issuer": ISSUER,
                "audience": AUDIENCE,
            }
        }
    )


async def test_jwks_kid_lookup_and_rotation(jwks_env, httpx_mock) -> None:
    httpx_mock.add_response(url=JWKS_URL, json=jwks(rsa("k1")))
    assert (await bearer(jwks_env, sign(rsa("k1")))).status_code == 200
    assert (await bearer(jwks_env, sign(rsa("k1")))).status_code == 200
    assert len(httpx_mock.get_requests()) == 1
    # Rotation: a new kid triggers exactly one refresh (once the minimum interval has passed).
    jwks_env.clock.advance(31)
    httpx_mock.add_response(url=JWKS_URL, json=jwks(rsa("k1"), ec("e1")))
    assert (await bearer(jwks_env, sign(ec("e1"), alg="ES256"))).status_code == 200
    assert len(httpx_mock.get_requests()) == 2


async def test_unknown_kid_refreshes_at_most_once(jwks_env, httpx_mock) -> None:
    httpx_mock.add_response(url=JWKS_URL, json=jwks(rsa("k1")), is_reusable=True)
    from joserfc.jwk import RSAKey

    stranger = RSAKey.generate_key(2048, parameters={"kid": "zz"})
    assert (await bearer(jwks_env, sign(stranger))).status_code == 401
    assert len(httpx_mock.get_requests()) == 1  # the first fetch; too soon to refresh again
    for _ in range(5):
        assert (await bearer(jwks_env, sign(stranger, header={"kid": "random"}))).status_code == 401
    assert len(httpx_mock.get_requests()) == 1
    jwks_env.clock.advance(31)
    assert (await bearer(jwks_env, sign(stranger))).status_code == 401
    assert len(httpx_mock.get_requests()) == 2  # exactly one refresh for that unknown kid


async def test_jwks_skips_symmetric_and_encryption_keys(jwks_env, httpx_mock) -> None:
    from joserfc.jwk import OctKey

    oct_key = OctKey.import_key(b"k" * 40, parameters={"kid": "sym"})
    doc = {"keys": [oct_key.as_dict(), {**rsa("k1").as_dict(private=False), "use": "enc"}]}
    httpx_mock.add_response(url=JWKS_URL, json=doc, is_reusable=True)
    assert (await bearer(jwks_env, sign(oct_key, alg="HS256"))).status_code == 401
    assert (await bearer(jwks_env, sign(rsa("k1")))).status_code == 401


@pytest.mark.parametrize("failure", ["down", 500, "junk"])
async def test_jwks_unreachable_is_503(jwks_env, httpx_mock, failure) -> None:
    if failure == "down":
        httpx_mock.add_exception(httpx.ConnectError("refused"), url=JWKS_URL)
    elif failure == "junk":
        httpx_mock.add_response(url=JWKS_URL, text="<html>")
    else:
        httpx_mock.add_response(url=JWKS_URL, status_code=failure)
    resp = await bearer(jwks_env, sign(rsa("k1")))
    assert resp.status_code == 503 and resp.json()["error"]["code"] == "idp_unavailable"
