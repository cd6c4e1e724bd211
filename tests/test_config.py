"""Configuration: the documented keys load; bad values fail with their key path."""
import copy
import hashlib

import pytest

from c2c_ami.config import ConfigError, load_config, parse_config, token_digest

BASE = {
    "listen": {"host": "127.0.0.1", "port": 8080},
    "ami": {"host": "127.0.0.1", "port": 5038, "username": "c2c", "secret": "change-me"},
    "calls": {"ring_timeout": 30, "dial_timeout": 60, "sync_timeout": 45},
    "tenants": [{"domain": "default", "tokens": ["dev-token"], "endpoint": "PJSIP/{ext}",
                 "context": "c2c-outbound", "extensions": "^[0-9]{2,6}$",
                 "hotlines": {"02873001234": "hotline-trunk"}}],
}


def with_change(path, value):
    raw = copy.deepcopy(BASE)
    node = raw
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return raw


def test_shipped_config_loads():
    config = load_config("config/c2c-ami.yaml")
    tenant = config.tenants[0]
    assert tenant.default_hotline == "02873001234"
    assert tenant.device("101") == "PJSIP/101"
    assert config.calls.sync_timeout > config.calls.ring_timeout


def test_issue_example_config_loads():
    config = parse_config(BASE, {})
    assert config.ami.secret == "change-me"
    assert config.tenants[0].token_digests == (token_digest("dev-token"),)


def test_secrets_come_from_environment():
    raw = with_change(["ami", "secret"], "${AMI_SECRET}")
    assert parse_config(raw, {"AMI_SECRET": "s3cret"}).ami.secret == "s3cret"
    with pytest.raises(ConfigError, match="^ami.secret: environment variable AMI_SECRET"):
        parse_config(raw, {})


def test_tokens_may_be_stored_as_sha256():
    digest = hashlib.sha256(b"long-random-token").hexdigest()
    config = parse_config(with_change(["tenants", 0, "tokens"], [f"sha256:{digest}"]), {})
    assert config.tenants[0].token_digests == (bytes.fromhex(digest),)


@pytest.mark.parametrize("path, value, where", [
    (["ami", "secret"], "a\r\nAction: Command", "ami.secret"),
    (["ami", "port"], "x", "ami.port"),
    (["calls", "sync_timeout"], 10, "calls.sync_timeout"),
    (["calls", "ring_timeout"], -1, "calls.ring_timeout"),
    (["tenants", 0, "endpoint"], "PJSIP/101", "tenants[0].endpoint"),
    (["tenants", 0, "context"], "ctx,1", "tenants[0].context"),
    (["tenants", 0, "extensions"], "([", "tenants[0].extensions"),
    (["tenants", 0, "hotlines"], {"abc": "trunk"}, "tenants[0].hotlines.abc"),
    (["tenants", 0, "hotlines"], {"0287": "trunk\n"}, "tenants[0].hotlines.0287"),
    (["tenants", 0, "tokens"], [], "tenants[0].tokens"),
    (["tenants", 0, "colour"], "blue", "tenants[0].colour"),
    (["tenants"], [], "tenants"),
    (["lisen"], {}, "lisen"),
])
def test_bad_config_names_the_key(path, value, where):
    with pytest.raises(ConfigError, match=f"^{where.replace('[', '.').replace(']', '.')}"):
        parse_config(with_change(path, value), {})


def test_duplicate_token_across_tenants_is_refused():
    raw = copy.deepcopy(BASE)
    raw["tenants"].append(dict(raw["tenants"][0], domain="other"))
    with pytest.raises(ConfigError, match="shared with another tenant"):
        parse_config(raw, {})
