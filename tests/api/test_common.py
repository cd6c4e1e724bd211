"""What every handler shares: who is calling. Failed authentication costs, whatever the
credential: static tokens, issued tokens, the metrics token, api keys and the event stream's
``?token=`` share one limit of
failures per client address, checked before anything is compared."""
import pytest

from c2c_ami.app_keys import AUTH

from ..fixtures_gateway import AUTH as STATIC_AUTH
from .test_token import API_KEY, SECRET, tenants

METRICS_TOKEN = "metrics-scrape-token-0123456789"
LIMITED = {"signing_secret": SECRET, "failure_burst": 3, "failures_per_minute": 1}


@pytest.fixture
def keyed_gateway(make_gateway):
    """The gateway with an api key per tenant, ``auth`` as given."""
    async def make(auth, **sections):
        return await make_gateway(tenants=tenants(), auth=auth, **sections)
    return make


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


async def issued(client, **body):
    resp = await client.post("/v1/auth/token", json={"api_key": API_KEY, **body})
    assert resp.status == 200
    return (await resp.json())["data"]["token"]


async def _wrong_static(client):
    return await client.get("/v1/call", headers=bearer("a-static-token-guess-0001"))


async def _wrong_issued(client):
    if not hasattr(client, "issued"):
        client.issued = await issued(client)
    token = client.issued
    return await client.get("/v1/call", headers=bearer(token[:-2] + ("AA" if token[-2:] != "AA" else "BB")))


async def _wrong_metrics(client):
    return await client.get("/metrics", headers=bearer("a-metrics-token-guess-01"))


async def _wrong_api_key(client):
    return await client.post("/v1/auth/token", json={"api_key": "an-api-key-guess-000001"})


async def _wrong_stream_token(client):
    return await client.get("/v1/events/stream", params={"token": "a-stream-token-guess-01"})


@pytest.mark.parametrize("guess", [_wrong_static, _wrong_issued, _wrong_metrics, _wrong_api_key,
                                   _wrong_stream_token])
async def test_every_kind_of_wrong_credential_spends_the_addresses_failures(keyed_gateway, fake_ami, guess):
    client = await keyed_gateway(LIMITED, metrics={"token": METRICS_TOKEN})
    for _ in range(3):
        assert (await guess(client)).status == 401
    resp = await guess(client)
    assert resp.status == 429 and (await resp.json())["error"] == "RATE_LIMITED"
    assert int(resp.headers["Retry-After"]) >= 1
    # spent for every credential of this address, the right ones too: checked before comparing
    assert (await client.get("/v1/call", headers=STATIC_AUTH)).status == 429
    assert (await client.get("/metrics", headers=bearer(METRICS_TOKEN))).status == 429
    assert (await client.post("/v1/auth/token", json={"api_key": API_KEY})).status == 429


async def test_a_right_credential_does_not_spend_and_no_credential_is_no_guess(keyed_gateway, fake_ami):
    client = await keyed_gateway(LIMITED, metrics={"token": METRICS_TOKEN})
    token = await issued(client)
    for _ in range(10):
        assert (await client.get("/v1/call", headers=STATIC_AUTH)).status == 200
        assert (await client.get("/v1/call", headers=bearer(token))).status == 200
        assert (await client.get("/metrics", headers=bearer(METRICS_TOKEN))).status == 200
        assert (await client.get("/v1/call")).status == 401              # nothing presented
        assert (await client.get("/metrics")).status == 401
    assert (await _wrong_static(client)).status == 401                   # the budget is whole


async def test_a_guess_is_refused_without_being_compared(keyed_gateway, fake_ami, monkeypatch):
    client = await keyed_gateway(LIMITED)
    for _ in range(3):
        assert (await _wrong_static(client)).status == 401
    compared = []
    authority = client.app[AUTH]
    authenticate = authority.authenticate
    monkeypatch.setattr(authority, "authenticate", lambda header: compared.append(header) or authenticate(header))
    assert (await _wrong_static(client)).status == 429
    assert compared == []
