"""The do-not-call list and the caller-ID allow-list (calls/policy.py), on an in-memory store."""
import pytest

from c2c_ami.calls.policy import DUPLICATE, INVALID, NOT_LISTED, DialPolicy
from c2c_ami.config import parse_config
from c2c_ami.errors import BlacklistEntryNotFound, CallerIdNotAllowed, PhoneBlacklisted
from c2c_ami.store import SqliteStorage


def tenant(**extra):
    raw = {"calls": {"blacklist": ["0899990977"]},
           "tenants": [{"tokens": ["t-0123456789abcdef"], "hotlines": {"02873001234": "trunk"},
                        "default_region": "VN", **extra}]}
    return parse_config(raw, {}).tenants[0]


@pytest.fixture
async def policy():
    store = SqliteStorage(":memory:")
    yield DialPolicy(store)
    await store.close()


async def test_listed_in_one_form_refused_in_every_form(policy):
    t = tenant()
    result = await policy.add(t, [("0899990988", "spam"), ("+84899990988", "twice"), ("0899", ""), ("0899990989", "")])
    assert result.success == ["0899990988", "0899990989"]
    assert result.fail == [{"+84899990988": DUPLICATE}, {"0899": INVALID}]
    assert (await policy.add(t, [("84899990988", "")])).fail == [{"84899990988": DUPLICATE}]
    for form in ("0899990988", "84899990988", "0084899990988", "899990988"):
        with pytest.raises(PhoneBlacklisted):
            await policy.check_number(t, form)
    with pytest.raises(PhoneBlacklisted):
        await policy.check_number(t, "84899990977")               # the config's global list
    await policy.check_number(t, "0899990999")                   # not listed: passes
    entry = await policy.entry(t, "+84 899 990 988")
    assert (entry.phone_number, entry.description) == ("0899990988", "spam")
    assert (await policy.entry(t, entry.id)).carrier() == {"id": entry.id, "phone_number": "0899990988",
                                                           "description": "spam"}
    removed = await policy.remove(t, ["+84899990988", "0899990999", "x"])
    assert removed.success == ["+84899990988"]
    assert removed.fail == [{"x": INVALID}, {"0899990999": NOT_LISTED}]
    await policy.check_number(t, "0899990988")
    with pytest.raises(BlacklistEntryNotFound):
        await policy.entry(t, "0899990988")
    entries, total = await policy.listing(t, limit=10, offset=0)
    assert total == 1 and [e.phone_number for e in entries] == ["0899990989"]


def test_caller_ids_numbers_patterns_and_hotlines():
    t = tenant(caller_ids=["02873009999", "^1900[0-9]{4}$"])
    check = DialPolicy.check_caller_ids
    check(t, "101", None, None)                                  # the defaults
    check(t, "101", "101", "02873001234")                        # the ext itself; a hotline
    check(t, "101", "+842873009999", "842873009999")             # listed, in other forms
    check(t, "101", "19001234", None)                            # a pattern
    for src, dest, name in (("0911111111", None, "src_cid_number"), (None, "0911111111", "dest_cid_number"),
                            ("190012345", None, "src_cid_number")):
        with pytest.raises(CallerIdNotAllowed) as refused:
            check(t, "101", src, dest)
        assert refused.value.message.startswith(f"{name}:")
    check(tenant(), "101", "0911111111", "0911111111")           # no caller_ids: anything goes
