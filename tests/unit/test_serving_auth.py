"""API keys and JWTs become principals with roles; failures say why and what to do."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from shipyard.serving import auth
from shipyard.serving.auth import ROLES, ApiKey, Authenticator, AuthError, JwtSettings, Principal

ISSUER = "https://idp.example"
SECRET = "a-shared-secret-of-at-least-32-bytes!"
KEYS = [
    ApiKey("reader", "reader-key-1", frozenset({"predict"})),
    ApiKey("ops", "ops-key-2", frozenset(ROLES)),
]


def token(claims: dict[str, Any], key: Any = SECRET, algorithm: str = "HS256") -> str:
    return jwt.encode({"exp": int(time.time()) + 60, **claims}, key, algorithm=algorithm)


def hs256(**settings: Any) -> Authenticator:
    return Authenticator(KEYS, JwtSettings("HS256", SECRET, **settings), service="churn-api")


def test_api_key_in_either_header_gives_its_principal() -> None:
    authenticator = Authenticator(KEYS, None)
    assert authenticator.enabled
    by_bearer = authenticator.authenticate("Bearer reader-key-1", None)
    assert by_bearer == Principal("reader", frozenset({"predict"}), "api_key")
    assert authenticator.authenticate(None, "ops-key-2").name == "ops"


@pytest.mark.parametrize(
    ("authorization", "header", "reason"),
    [
        ("Bearer wrong-key", None, "invalid_key"),
        (None, "reader-key-1x", "invalid_key"),
        (None, None, "missing_credentials"),
        ("Basic cmVhZGVy", None, "missing_credentials"),
    ],
)
def test_bad_or_missing_credentials_are_401(
    authorization: str | None, header: str | None, reason: str
) -> None:
    with pytest.raises(AuthError) as caught:
        Authenticator(KEYS, None).authenticate(authorization, header)
    assert (caught.value.status, caught.value.reason) == (401, reason)
    assert "X-API-Key" in str(caught.value) or "services." in str(caught.value)


def test_missing_role_is_403_naming_key_role_and_where_to_grant_it() -> None:
    authenticator = Authenticator(KEYS, None, service="churn-api")
    reader = authenticator.authenticate(None, "reader-key-1")
    authenticator.authorize(reader, "predict")
    with pytest.raises(AuthError) as caught:
        authenticator.authorize(reader, "admin")
    assert (caught.value.status, caught.value.reason) == (403, "missing_role")
    assert str(caught.value) == (
        "key 'reader' lacks the role 'admin' (it has: predict); "
        "give it the role in services.churn-api.auth"
    )


def test_key_with_unknown_role_is_rejected_naming_the_key() -> None:
    with pytest.raises(ValueError, match="API key 'bad' has unknown role"):
        Authenticator([ApiKey("bad", "k", frozenset({"write"}))], None)


def test_two_keys_with_the_same_value_are_rejected() -> None:
    with pytest.raises(ValueError, match="'a' and 'b' have the same key"):
        Authenticator([ApiKey("a", "k", frozenset()), ApiKey("b", "k", frozenset())], None)


def test_disabled_auth_makes_everyone_anonymous_with_all_roles() -> None:
    authenticator = Authenticator([], None)
    assert not authenticator.enabled
    principal = authenticator.authenticate(None, None)
    assert principal == Principal("anonymous", frozenset(ROLES), "anonymous")
    authenticator.authorize(principal, "admin")


def test_hs256_token_gives_subject_and_known_roles() -> None:
    value = token({"sub": "alice", "roles": ["predict", "feedback", "superuser"]})
    principal = hs256().authenticate(f"Bearer {value}", None)
    assert principal == Principal("alice", frozenset({"predict", "feedback"}), "jwt")


def test_roles_may_be_a_space_separated_string_in_a_custom_claim() -> None:
    value = token({"scope": "admin predict"})
    principal = hs256(roles_claim="scope").authenticate(f"Bearer {value}", None)
    assert principal.roles == frozenset({"admin", "predict"})
    assert principal.name == "jwt"


def test_token_missing_a_role_is_403_pointing_at_the_claim() -> None:
    authenticator = hs256()
    principal = authenticator.authenticate(f"Bearer {token({'sub': 'bob'})}", None)
    with pytest.raises(AuthError, match="token for 'bob' lacks the role 'predict'") as caught:
        authenticator.authorize(principal, "predict")
    assert caught.value.status == 403
    assert "'roles' claim" in str(caught.value)


def test_expired_token_is_401_saying_when() -> None:
    value = token({"sub": "alice", "exp": 1_700_000_000})
    with pytest.raises(AuthError) as caught:
        hs256().authenticate(f"Bearer {value}", None)
    assert (caught.value.status, caught.value.reason) == (401, "token_expired")
    assert "2023-11-14T22:13:20+00:00" in str(caught.value)


@pytest.mark.parametrize(
    ("claims", "key", "fragment"),
    [
        ({"aud": "other-api", "iss": ISSUER}, SECRET, "audience"),
        ({"aud": "churn-api", "iss": "somebody"}, SECRET, "issuer"),
        ({"aud": "churn-api", "iss": ISSUER}, "another-secret-of-at-least-32-bytes!!", "signature"),
    ],
    ids=["audience", "issuer", "signature"],
)
def test_invalid_tokens_are_401_with_the_reason(
    claims: dict[str, Any], key: str, fragment: str
) -> None:
    authenticator = hs256(audience="churn-api", issuer=ISSUER)
    with pytest.raises(AuthError) as caught:
        authenticator.authenticate(f"Bearer {token(claims, key)}", None)
    assert (caught.value.status, caught.value.reason) == (401, "invalid_token")
    assert fragment.lower() in str(caught.value).lower()


def test_tampered_payload_is_rejected() -> None:
    header, _, signature = token({"roles": ["predict"]}).split(".")
    forged_payload = jwt.utils.base64url_encode(b'{"exp":9999999999,"roles":["admin"]}').decode()
    with pytest.raises(AuthError) as caught:
        hs256().authenticate(f"Bearer {header}.{forged_payload}.{signature}", None)
    assert caught.value.reason == "invalid_token"


def test_token_without_exp_is_rejected() -> None:
    value = jwt.encode({"sub": "alice"}, SECRET, algorithm="HS256")
    with pytest.raises(AuthError, match="exp") as caught:
        hs256().authenticate(f"Bearer {value}", None)
    assert caught.value.reason == "invalid_token"


def test_api_keys_still_work_when_jwt_is_configured() -> None:
    assert hs256().authenticate("Bearer ops-key-2", None).name == "ops"


def test_rs256_token_verified_with_the_public_key() -> None:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    authenticator = Authenticator([], JwtSettings("RS256", public_pem))
    value = token({"sub": "svc", "roles": "predict"}, private, "RS256")
    assert authenticator.authenticate(f"Bearer {value}", None).name == "svc"
    # An HS256 token signed with the public key text must not pass (algorithm confusion).
    forged = jwt.api_jws.PyJWS()
    header = jwt.utils.base64url_encode(b'{"alg":"HS256","typ":"JWT"}').decode()
    payload = jwt.utils.base64url_encode(b'{"exp":9999999999,"roles":"admin"}').decode()
    signature = forged.get_algorithm_by_name("HS256").sign(
        f"{header}.{payload}".encode(), public_pem.encode()
    )
    tampered = f"{header}.{payload}.{jwt.utils.base64url_encode(signature).decode()}"
    with pytest.raises(AuthError) as caught:
        authenticator.authenticate(f"Bearer {tampered}", None)
    assert caught.value.reason == "invalid_token"


def test_rs256_needs_a_public_key() -> None:
    with pytest.raises(ValueError, match="RS256"):
        Authenticator([], JwtSettings("RS256", "not a pem"))


def test_short_hs256_secret_is_rejected() -> None:
    with pytest.raises(ValueError, match="too short"):
        Authenticator([], JwtSettings("HS256", "secret"))


def test_cached_token_is_rejected_once_past_its_exp(monkeypatch: pytest.MonkeyPatch) -> None:
    authenticator = hs256()
    exp = int(time.time()) + 60
    value = token({"sub": "alice", "exp": exp})
    assert authenticator.authenticate(f"Bearer {value}", None).name == "alice"
    # Only the cache sees this clock: PyJWT would still accept the token if it decoded it again.
    monkeypatch.setattr(auth, "time", SimpleNamespace(time=lambda: exp + 1.0))
    with pytest.raises(AuthError) as caught:
        authenticator.authenticate(f"Bearer {value}", None)
    assert caught.value.reason == "token_expired"


def test_cached_token_within_leeway_is_still_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    authenticator = hs256(leeway_seconds=30)
    exp = int(time.time()) + 60
    value = token({"exp": exp})
    authenticator.authenticate(f"Bearer {value}", None)
    monkeypatch.setattr(auth, "time", SimpleNamespace(time=lambda: exp + 10.0))
    assert authenticator.authenticate(f"Bearer {value}", None).kind == "jwt"


def test_token_with_the_expected_audience_and_issuer_passes() -> None:
    authenticator = hs256(audience="churn-api", issuer=ISSUER)
    value = token({"sub": "carol", "aud": "churn-api", "iss": ISSUER, "roles": ["admin"]})
    assert authenticator.authenticate(f"Bearer {value}", None).roles == frozenset({"admin"})
