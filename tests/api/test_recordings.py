"""GET /v1/recording/{call_id} without the rig: what a link or a token may reach, and that
guessing links costs like guessing tokens."""
from tests.fixtures_gateway import AUTH

CALL = "0f0e0d0c-0000-4000-8000-000000000001"


async def test_a_bad_link_is_403_and_guessing_links_is_limited_per_address(gateway):
    bad = f"/v1/recording/{CALL}?exp=9999999999&sig={'0' * 32}"
    resp = await gateway.get(bad)
    assert (resp.status, (await resp.json())["error"]) == (403, "FORBIDDEN")
    statuses = [(await gateway.get(bad)).status for _ in range(30)]
    assert statuses[-1] == 429 and set(statuses) == {403, 429}          # auth.failure_burst is 20
    assert (await gateway.get(f"/v1/recording/{CALL}", headers=AUTH)).status == 429   # every credential


async def test_a_token_without_a_call_or_its_recording_is_404(gateway):
    resp = await gateway.get(f"/v1/recording/{CALL}", headers=AUTH)
    assert (resp.status, (await resp.json())["error"]) == (404, "CALL_NOT_FOUND")
    resp = await gateway.get(f"/v1/recording/{CALL}?exp=1&nope=2", headers=AUTH)
    assert (resp.status, (await resp.json())["error"]) == (403, "FORBIDDEN")     # exp given: a link, and bad
