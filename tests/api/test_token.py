"""POST /v1/auth/token: api keys for signed, expiring tokens (optionally for one extension),
verified by any instance with the same signing secret; rotation; failed attempts limited."""
import base64
import hashlib
import json
import logging

import pytest

from c2c_ami.api.openapi import build_openapi
from c2c_ami.app_keys import AUTH
from c2c_ami.auth import TokenAuthority
from c2c_ami.config import ConfigError, parse_config
from c2c_ami.errors import Unauthorized
from c2c_ami.testing.fake_ami import Behaviour
from tests.fixtures_gateway import AUTH as STATIC_AUTH
from tests.fixtures_gateway import OTHER_TOKEN, TOKEN
from tests.test_config import BASE

API_KEY = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeee"
OTHER_KEY = "other-tenant-api-key-0123456789"
SECRET = "s" * 40
NEW_SECRET = "n" * 40
CLOCK = 1_700_000_000.0


def tenants(**first):
    """The fixture's two tenants, each with an api key (the first's stored as a digest)."""
    digest = hashlib.sha256(API_KEY.encode()).hexdigest()
    return [
        {"domain": "default", "tokens": [TOKEN], "api_keys": [f"sha256:{digest}"], "endpoint": "PJSIP/{ext}",
         "context": "c2c-outbound", "extensions": "^1[0-9]{2}$",
         "hotlines": {"02873001234": "hotline-trunk"}, **first},
        {"domain": "other", "tokens": [OTHER_TOKEN], "api_keys": [OTHER_KEY], "endpoint": "PJSIP/{ext}",
         "context": "c2c-outbound", "extensions": "^2[0-9]{2}$", "hotlines": {"02439990000": "other-trunk"}},
    ]


@pytest.fixture
def make_token_gateway(make_gateway):
    async def make(auth=None, **sections):
        client = await make_gateway(tenants=tenants(), auth=auth or {"signing_secret": SECRET}, **sections)
        client.app[AUTH].clock = lambda: CLOCK
        return client
    return make


async def issue(client, body, **kwargs):
    resp = await client.post("/v1/auth/token", json=body, **kwargs) if not isinstance(body, bytes) else \
        await client.post("/v1/auth/token", data=body, **kwargs)
    return resp.status, await resp.json(), resp


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


async def token_of(client, **body):
    status, answer, _ = await issue(client, {"api_key": API_KEY, **body})
    assert status == 200, answer
    return answer["data"]["token"]


# -- the exchange -----------------------------------------------------------------------------

async def test_issued_token_places_a_call(make_token_gateway, fake_ami):
    client = await make_token_gateway()
    status, body, _ = await issue(client, {"api_key": API_KEY})
    assert status == 200 and set(body) == {"data"}
    assert body["data"]["expired"] == int(CLOCK) + 86400 and body["data"]["user_id"] == "default"
    token = body["data"]["token"]
    assert token.startswith("c2c1.") and API_KEY not in token
    resp = await client.get("/v1/click2call/async", params={"ext": "101", "phone": "0899"}, headers=bearer(token))
    assert resp.status == 200, await resp.json()
    originate = await fake_ami.wait_for_action("Originate")
    assert originate["Channel"] == "PJSIP/101"


async def test_token_ttl_is_configurable_and_expiry_is_401(make_token_gateway, fake_ami):
    client = await make_token_gateway({"signing_secret": SECRET, "token_ttl": 60})
    status, body, _ = await issue(client, {"api_key": API_KEY})
    assert body["data"]["expired"] == int(CLOCK) + 60
    headers = bearer(body["data"]["token"])
    client.app[AUTH].clock = lambda: CLOCK + 59
    assert (await client.get("/v1/call", headers=headers)).status == 200
    client.app[AUTH].clock = lambda: CLOCK + 60
    resp = await client.get("/v1/call", headers=headers)
    answer = await resp.json()
    assert (resp.status, answer["error"], answer["message"]) == (401, "UNAUTHORIZED", "token expired")
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")


def _b64(raw):
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _tampered(token):
    """Every way to change one part of a token: another tenant, a later expiry, a changed mac."""
    prefix, payload, mac = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    out = []
    for change in ({"d": "other"}, {"x": claims["x"] + 86400}, {"e": "102"}):
        forged = _b64(json.dumps({**claims, **change}, separators=(",", ":"), sort_keys=True).encode())
        out.append(f"{prefix}.{forged}.{mac}")
    flipped = ("A" if mac[0] != "A" else "B") + mac[1:]
    out += [f"{prefix}.{payload}.{flipped}", f"{prefix}.{payload}.", f"{prefix}.{payload}",
            f"{prefix}.{payload}.{mac}.{mac}", f"c2c2.{payload}.{mac}", f"{prefix}.{payload}.{mac}="]
    return out


async def test_tampered_token_is_401(make_token_gateway, fake_ami):
    client = await make_token_gateway()
    token = await token_of(client, ext="101")
    assert (await client.get("/v1/call", headers=bearer(token))).status == 200
    for forged in _tampered(token):
        resp = await client.get("/v1/call", headers=bearer(forged))
        answer = await resp.json()
        assert (resp.status, answer["error"], answer["message"]) == (401, "UNAUTHORIZED", "invalid token"), forged


async def test_a_second_instance_with_the_same_secret_accepts_the_token(make_token_gateway, fake_ami):
    first = await make_token_gateway()
    second = await make_token_gateway()          # its own store and memory: only the secret is shared
    stranger = await make_token_gateway({"signing_secret": NEW_SECRET})
    token = await token_of(first)
    assert (await second.get("/v1/call", headers=bearer(token))).status == 200
    assert (await stranger.get("/v1/call", headers=bearer(token))).status == 401


@pytest.mark.parametrize("body", [{"api_key": "wrong-key"}, {}, {"api_key": ""}, {"api_key": OTHER_KEY + "x"},
                                  {"api_key": "sha256:" + hashlib.sha256(API_KEY.encode()).hexdigest()}])
async def test_wrong_or_missing_api_key_is_401_with_one_message(make_token_gateway, fake_ami, body):
    client = await make_token_gateway()
    status, answer, resp = await issue(client, body)
    assert (status, answer["error"], answer["message"]) == (401, "UNAUTHORIZED", "invalid api_key")
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    assert "data" not in answer


@pytest.mark.parametrize("body, field", [
    (b"not json", "body:"), (b"[1, 2]", "body:"), (b"", "body:"), (b"[" * 40 + b"]" * 40, "body:"),
    ({"api_key": 12345}, "api_key:"), ({"api_key": "has space"}, "api_key:"),
    ({"api_key": API_KEY, "ext": 101}, "ext:"), ({"api_key": API_KEY, "ext": "1 0"}, "ext:"),
])
async def test_malformed_body_is_400_naming_the_field(make_token_gateway, fake_ami, body, field):
    client = await make_token_gateway()
    status, answer, _ = await issue(client, body)
    assert (status, answer["error"]) == (400, "INVALID_PARAMS") and answer["message"].startswith(field)


async def test_the_other_tenant_gets_its_own_token(make_token_gateway, fake_ami):
    client = await make_token_gateway()
    status, body, _ = await issue(client, {"api_key": OTHER_KEY})
    assert status == 200 and body["data"]["user_id"] == "other"
    headers = bearer(body["data"]["token"])
    resp = await client.get("/v1/click2call/async", params={"ext": "101", "phone": "0899"}, headers=headers)
    assert (resp.status, (await resp.json())["error"]) == (403, "FORBIDDEN")
    resp = await client.get("/v1/click2call/async", params={"ext": "201", "phone": "0899"}, headers=headers)
    assert resp.status == 200


async def test_static_tokens_still_work_beside_api_keys(make_token_gateway, fake_ami):
    client = await make_token_gateway()
    resp = await client.get("/v1/click2call/async", params={"ext": "101", "phone": "0899"}, headers=STATIC_AUTH)
    assert resp.status == 200
    # an api key is not a Bearer token
    assert (await client.get("/v1/call", headers=bearer(API_KEY))).status == 401


async def test_failed_attempts_are_limited_per_client_before_the_key_is_checked(make_token_gateway, fake_ami):
    client = await make_token_gateway({"signing_secret": SECRET, "failure_burst": 3, "failures_per_minute": 1})
    for _ in range(3):
        status, _, _ = await issue(client, {"api_key": "guess"})
        assert status == 401
    status, answer, resp = await issue(client, {"api_key": API_KEY})      # even the right key, now
    assert (status, answer["error"]) == (429, "RATE_LIMITED") and int(resp.headers["Retry-After"]) >= 1
    # the address's failures are shared by every credential (tests/api/test_common.py)
    assert (await client.get("/v1/call", headers=STATIC_AUTH)).status == 429


async def test_successes_do_not_spend_the_failure_budget(make_token_gateway, fake_ami):
    client = await make_token_gateway({"signing_secret": SECRET, "failure_burst": 2, "failures_per_minute": 1})
    for _ in range(5):
        assert (await issue(client, {"api_key": API_KEY}))[0] == 200
    assert (await issue(client, {"api_key": "guess"}))[0] == 401


async def test_issuing_counts_against_the_api_keys_request_rate(make_token_gateway, fake_ami):
    client = await make_token_gateway(limits={"rate_per_minute": 1, "rate_burst": 2})
    assert (await issue(client, {"api_key": API_KEY}))[0] == 200
    assert (await issue(client, {"api_key": API_KEY}))[0] == 200
    status, answer, _ = await issue(client, {"api_key": API_KEY})
    assert (status, answer["error"]) == (429, "RATE_LIMITED")


# -- extension-scoped tokens ----------------------------------------------------------------

async def test_ext_token_may_only_call_with_its_ext(make_token_gateway, fake_ami):
    client = await make_token_gateway()
    headers = bearer(await token_of(client, ext="101"))
    resp = await client.get("/v1/click2call/async", params={"ext": "102", "phone": "0899"}, headers=headers)
    answer = await resp.json()
    assert (resp.status, answer["error"]) == (403, "FORBIDDEN") and answer["message"].startswith("ext:")
    assert fake_ami.actions_named("Originate") == []
    resp = await client.get("/v1/click2call/async", params={"ext": "101", "phone": "0899"}, headers=headers)
    assert resp.status == 200
    assert (await fake_ami.wait_for_action("Originate"))["Channel"] == "PJSIP/101"


async def test_ext_token_cannot_learn_another_principals_idempotency_keys(make_token_gateway, fake_ami):
    """Keys are remembered per principal: a key another token used is, for this one, a new key."""
    fake_ami.default_behaviour = Behaviour("answer", dial="none", talk_time=None)     # both stay up
    client = await make_token_gateway()
    key = {"Idempotency-Key": "crm-order-7"}
    theirs = await client.get("/v1/click2call/async", params={"ext": "102", "phone": "0899"},
                              headers={**STATIC_AUTH, **key})
    assert theirs.status == 200
    headers = {**bearer(await token_of(client, ext="101")), **key}
    mine = await client.get("/v1/click2call/async", params={"ext": "101", "phone": "0899"}, headers=headers)
    body = await mine.json()
    assert mine.status == 200, body                   # not "already used with different parameters"
    assert body["call_id"] != (await theirs.json())["call_id"]
    again = await client.get("/v1/click2call/async", params={"ext": "101", "phone": "0899"}, headers=headers)
    assert (await again.json())["call_id"] == body["call_id"]          # its own key replays for it
    assert len(fake_ami.actions_named("Originate")) == 2


async def test_ext_token_sees_only_its_extensions_calls(make_token_gateway, fake_ami):
    fake_ami.default_behaviour = Behaviour("answer", dial="none", talk_time=None)     # both stay up
    client = await make_token_gateway()
    headers = bearer(await token_of(client, ext="101"))
    mine = await (await client.get("/v1/click2call/async", params={"ext": "101", "phone": "0899"},
                                   headers=headers)).json()
    theirs = await (await client.get("/v1/click2call/async", params={"ext": "102", "phone": "0899"},
                                     headers=STATIC_AUTH)).json()
    resp = await client.get(f"/v1/calls/{mine['call_id']}", headers=headers)
    assert resp.status == 200 and (await resp.json())["call"]["extension"] == "101"
    for method in ("GET", "DELETE"):
        resp = await client.request(method, f"/v1/calls/{theirs['call_id']}", headers=headers)
        assert (resp.status, (await resp.json())["error"]) == (404, "CALL_NOT_FOUND"), method
    resp = await client.get(f"/v1/cdr/{theirs['call_id']}", headers=headers)
    assert (resp.status, (await resp.json())["error"]) == (404, "CALL_NOT_FOUND")
    live = (await (await client.get("/v1/call", headers=headers)).json())["calls"]
    assert [c["call_id"] for c in live] == [mine["call_id"]]
    everyone = (await (await client.get("/v1/call", headers=STATIC_AUTH)).json())["calls"]
    assert {c["call_id"] for c in everyone} == {mine["call_id"], theirs["call_id"]}
    # the other extension's call was not cancelled by the refused DELETE
    assert fake_ami.actions_named("Hangup") == []
    call = (await (await client.get(f"/v1/calls/{theirs['call_id']}", headers=STATIC_AUTH)).json())["call"]
    assert call["time_ended"] is None


async def test_ext_token_lists_only_its_cdrs_and_no_other_extension(make_token_gateway, fake_ami):
    client = await make_token_gateway()
    headers = bearer(await token_of(client, ext="101"))
    resp = await client.get("/v1/cdr", params={"extension": "102"}, headers=headers)
    answer = await resp.json()
    assert (resp.status, answer["error"]) == (403, "FORBIDDEN") and answer["message"].startswith("extension:")
    assert (await client.get("/v1/cdr", params={"extension": "101"}, headers=headers)).status == 200
    assert (await client.get("/v1/cdr", headers=headers)).status == 200


async def test_ext_token_may_not_manage_webhooks(make_token_gateway, fake_ami):
    client = await make_token_gateway()
    headers = bearer(await token_of(client, ext="101"))
    hook = "0" * 8 + "-0000-0000-0000-" + "0" * 12
    for method, path, body in [("POST", "/v1/event", {"url": "https://crm.example.com/hook"}),
                               ("GET", "/v1/event", None), ("DELETE", f"/v1/event/{hook}", None)]:
        resp = await client.request(method, path, json=body, headers=headers)
        assert (resp.status, (await resp.json())["error"]) == (403, "FORBIDDEN"), (method, path)
    # the tenant-wide token may
    assert (await client.get("/v1/event", headers=bearer(await token_of(client)))).status == 200


async def test_ext_outside_the_tenants_extensions_is_refused_at_issue(make_token_gateway, fake_ami):
    client = await make_token_gateway()
    status, answer, _ = await issue(client, {"api_key": API_KEY, "ext": "201"})
    assert (status, answer["error"]) == (403, "FORBIDDEN") and answer["message"].startswith("ext:")


# -- the authority without HTTP: rotation, revocation, the random secret ----------------------

def authority(auth=None, **first):
    raw = dict(BASE, tenants=tenants(**first))
    if auth is not None:
        raw["auth"] = auth
    config = parse_config(raw, {})
    return TokenAuthority(config.tenants, config.auth, clock=lambda: CLOCK), config.tenants


def _issued(auth, ext=None):
    signer, tenants_ = authority(auth)
    tenant, digest = signer.tenant_of_api_key(API_KEY)
    return signer.issue(tenant, digest, ext).token


def test_a_previous_secret_verifies_until_expiry_an_unknown_one_never():
    old = _issued({"signing_secret": SECRET})
    rotated, _ = authority({"signing_secret": NEW_SECRET, "signing_secrets_previous": [SECRET]})
    assert rotated.authenticate(f"Bearer {old}").tenant.domain == "default"
    rotated.clock = lambda: CLOCK + 86400
    with pytest.raises(Unauthorized, match="token expired"):
        rotated.authenticate(f"Bearer {old}")
    for auth in ({"signing_secret": NEW_SECRET},
                 {"signing_secret": NEW_SECRET, "signing_secrets_previous": ["p" * 40]}):
        stranger, _ = authority(auth)
        with pytest.raises(Unauthorized, match="invalid token"):
            stranger.authenticate(f"Bearer {old}")


def test_the_current_secret_signs_and_old_instances_do_not_know_it():
    new = _issued({"signing_secret": NEW_SECRET, "signing_secrets_previous": [SECRET]})
    assert authority({"signing_secret": NEW_SECRET})[0].authenticate(f"Bearer {new}").tenant.domain == "default"
    with pytest.raises(Unauthorized):
        authority({"signing_secret": SECRET})[0].authenticate(f"Bearer {new}")


def test_removing_the_api_key_revokes_its_tokens():
    token = _issued({"signing_secret": SECRET})
    without, _ = authority({"signing_secret": SECRET}, api_keys=["a-replacement-key-0123456789"])
    with pytest.raises(Unauthorized, match="invalid token"):
        without.authenticate(f"Bearer {token}")


def test_ext_token_is_refused_once_its_ext_leaves_the_tenants_extensions():
    token = _issued({"signing_secret": SECRET}, ext="101")
    narrowed, _ = authority({"signing_secret": SECRET}, extensions="^10[2-9]$")
    with pytest.raises(Unauthorized):
        narrowed.authenticate(f"Bearer {token}")
    assert authority({"signing_secret": SECRET})[0].authenticate(f"Bearer {token}").ext == "101"


def test_issued_tokens_share_one_rate_bucket_per_tenant_and_ext():
    auth, _ = authority({"signing_secret": SECRET})
    tenant, digest = auth.tenant_of_api_key(API_KEY)
    a, b = (auth.authenticate(f"Bearer {auth.issue(tenant, digest).token}") for _ in range(2))
    scoped = auth.authenticate(f"Bearer {auth.issue(tenant, digest, '101').token}")
    assert a.token_key == b.token_key != scoped.token_key


def test_unset_signing_secret_is_random_with_a_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="c2c_ami.auth"):
        first, _ = authority()
        second, _ = authority()
    assert "auth.signing_secret is not set" in caplog.text
    tenant, digest = first.tenant_of_api_key(API_KEY)
    token = first.issue(tenant, digest).token
    assert first.authenticate(f"Bearer {token}").tenant.domain == "default"
    with pytest.raises(Unauthorized):
        second.authenticate(f"Bearer {token}")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="c2c_ami.auth"):
        authority({"signing_secret": SECRET})
    assert "signing_secret" not in caplog.text


# -- configuration ---------------------------------------------------------------------------

@pytest.mark.parametrize("change, where", [
    ({"auth": {"signing_secret": "short"}}, "auth.signing_secret"),
    ({"auth": {"signing_secret": SECRET, "signing_secrets_previous": SECRET}}, "auth.signing_secrets_previous"),
    ({"auth": {"signing_secret": SECRET, "signing_secrets_previous": ["short"]}},
     r"auth.signing_secrets_previous\[0\]"),
    ({"auth": {"signing_secrets_previous": [SECRET]}}, "auth.signing_secrets_previous"),
    ({"auth": {"token_ttl": 0}}, "auth.token_ttl"),
    ({"auth": {"failure_burst": 0}}, "auth.failure_burst"),
    ({"auth": {"colour": "blue"}}, "auth.colour"),
    ({"tenants": [dict(BASE["tenants"][0], api_keys="k")]}, r"tenants\[0\].api_keys"),
    ({"tenants": [dict(BASE["tenants"][0], api_keys=["has space"])]}, r"tenants\[0\].api_keys\[0\]"),
    ({"tenants": [dict(BASE["tenants"][0], api_keys=["same-key-0123456789"]),
                  dict(BASE["tenants"][0], domain="b", tokens=["b-token-012345678"],
                       api_keys=["same-key-0123456789"])]},
     r"tenants\[1\].api_keys"),
    ({"tenants": [{k: v for k, v in BASE["tenants"][0].items() if k != "tokens"}]}, r"tenants\[0\].tokens"),
    ({"tenants": [dict(BASE["tenants"][0], api_keys=["one-secret-0123456789"]),     # A's api key is B's token
                  dict(BASE["tenants"][0], domain="b", tokens=["one-secret-0123456789"])]}, r"tenants\[1\].tokens"),
    ({"tenants": [dict(BASE["tenants"][0], tokens=["one-secret-0123456789"]),       # A's token is B's api key
                  dict(BASE["tenants"][0], domain="b", tokens=["b-token-012345678"],
                       api_keys=["one-secret-0123456789"])]},
     r"tenants\[1\].api_keys"),
])
def test_config_errors_name_their_key(change, where):
    with pytest.raises(ConfigError, match=f"^{where}:"):
        parse_config(dict(BASE, **change), {})


def test_a_tenant_may_have_api_keys_only_and_defaults_apply():
    tenant = {k: v for k, v in BASE["tenants"][0].items() if k != "tokens"}
    config = parse_config(dict(BASE, tenants=[dict(tenant, api_keys=[API_KEY])]), {})
    assert config.tenants[0].token_digests == ()
    assert config.tenants[0].api_key_digests == (hashlib.sha256(API_KEY.encode()).digest(),)
    assert config.auth.token_ttl == 86400 and config.auth.signing_secret == ""
    assert config.auth.signing_secrets_previous == ()
    assert SECRET not in repr(parse_config(dict(BASE, auth={"signing_secret": SECRET}), {}))


def test_the_openapi_document_describes_the_exchange():
    operation = build_openapi()["paths"]["/v1/auth/token"]["post"]
    assert operation["security"] == []
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    assert schema == {"$ref": "#/components/schemas/TokenRequest"}
    token = build_openapi()["components"]["schemas"]["Token"]["properties"]["data"]
    assert token["required"] == ["token", "expired", "user_id"]
    assert set(operation["responses"]) == {"200", "400", "401", "403", "429", "503"}


def test_one_secret_may_be_a_tenants_token_and_its_api_key():
    tenant = dict(BASE["tenants"][0], api_keys=[BASE["tenants"][0]["tokens"][0]])
    assert parse_config(dict(BASE, tenants=[tenant]), {}).tenants[0].api_key_digests
