"""Configuration: the documented keys load; bad values fail with their key path."""
import copy
import hashlib
import re

import pytest

from c2c_ami.config import ConfigError, load_config, parse_config, token_digest

BASE = {
    "listen": {"host": "127.0.0.1", "port": 8080},
    "ami": {"host": "127.0.0.1", "port": 5038, "username": "c2c", "secret": "change-me"},
    "calls": {"ring_timeout": 30, "dial_timeout": 60, "sync_timeout": 45},
    "tenants": [{"domain": "default", "tokens": ["dev-token-change-me"], "endpoint": "PJSIP/{ext}",
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
    assert config.tenants[0].token_digests == (token_digest("dev-token-change-me"),)


def test_secrets_come_from_environment():
    raw = with_change(["ami", "secret"], "${AMI_SECRET}")
    assert parse_config(raw, {"AMI_SECRET": "s3cret"}).ami.secret == "s3cret"
    with pytest.raises(ConfigError, match="^ami.secret: environment variable AMI_SECRET"):
        parse_config(raw, {})


def test_tokens_may_be_stored_as_sha256():
    digest = hashlib.sha256(b"long-random-token").hexdigest()
    config = parse_config(with_change(["tenants", 0, "tokens"], [f"sha256:{digest}"]), {})
    assert config.tenants[0].token_digests == (bytes.fromhex(digest),)


@pytest.mark.parametrize("where, change", [
    ("tenants[0].tokens[0]", {"tenants": [dict(BASE["tenants"][0], tokens=["x"])]}),
    ("tenants[0].tokens[1]", {"tenants": [dict(BASE["tenants"][0], tokens=["dev-token-change-me", "15-characters!"])]}),
    ("tenants[0].api_keys[0]", {"tenants": [dict(BASE["tenants"][0], api_keys=["short-key"])]}),
    ("metrics.token", {"metrics": {"token": "scrape"}}),
])
def test_a_configured_secret_shorter_than_16_characters_is_refused_naming_its_key(where, change):
    """A short token is guessed; only its sha256:<hex> digest may be shorter than 16 (it is not)."""
    with pytest.raises(ConfigError, match=r"^" + re.escape(where) + r": 16-512 printable ASCII"):
        parse_config({**BASE, **change}, {})


def test_secrets_of_16_characters_or_digests_are_accepted_and_metrics_takes_a_digest_too():
    digest = hashlib.sha256(b"metrics-scraper-token").hexdigest()
    config = parse_config({**BASE, "tenants": [dict(BASE["tenants"][0], tokens=["16-characters!!!"],
                                                    api_keys=[f"sha256:{digest}"])],
                           "metrics": {"token": f"sha256:{digest}"}}, {})
    assert config.metrics.token_digest == bytes.fromhex(digest)
    assert config.tenants[0].api_key_digests == (bytes.fromhex(digest),)


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
    (["limits"], {"per_extension_per_minute": -1}, "limits.per_extension_per_minute"),
    (["limits"], {"per_extension_per_minute": False}, "limits.per_extension_per_minute"),
    (["limits"], {"rate_burst": 0}, "limits.rate_burst"),
])
def test_bad_config_names_the_key(path, value, where):
    with pytest.raises(ConfigError, match=f"^{where.replace('[', '.').replace(']', '.')}"):
        parse_config(with_change(path, value), {})


def test_duplicate_token_across_tenants_is_refused():
    raw = copy.deepcopy(BASE)
    raw["tenants"].append(dict(raw["tenants"][0], domain="other"))
    with pytest.raises(ConfigError, match="shared with another tenant"):
        parse_config(raw, {})


def test_single_ami_block_is_one_pbx_named_default():
    config = parse_config(BASE, {})
    assert [p.name for p in config.pbxs] == ["default"] and config.tenants[0].pbx == "default"


def test_several_pbxs_and_tenants_on_them():
    raw = copy.deepcopy(BASE)
    ami = raw.pop("ami")
    raw["pbxs"] = [{"name": "hcm-1", "ami": ami}, {"name": "hn-1", "ami": {**ami, "port": 6038, "ping_interval": 1}}]
    raw["tenants"].append(dict(raw["tenants"][0], domain="b", tokens=["b-token-012345678"], pbx="hn-1"))
    config = parse_config(raw, {})
    assert [(p.name, p.ami.port, p.ami.ping_interval) for p in config.pbxs] == [("hcm-1", 5038, 5.0),
                                                                                ("hn-1", 6038, 1.0)]
    assert [t.pbx for t in config.tenants] == ["hcm-1", "hn-1"]       # the first PBX by default


@pytest.mark.parametrize("change, where", [
    ({"pbxs": [{"name": "a", "ami": BASE["ami"]}]}, "pbxs"),                          # and ami: too
    ({"ami": None, "pbxs": []}, "pbxs"),
    ({"ami": None, "pbxs": [{"name": "a", "ami": BASE["ami"]}, {"name": "a", "ami": BASE["ami"]}]}, "pbxs[1].name"),
    ({"ami": None, "pbxs": [{"name": "a b", "ami": BASE["ami"]}]}, "pbxs[0].name"),
    ({"ami": None, "pbxs": [{"name": "a", "ami": {**BASE["ami"], "port": 0}}]}, "pbxs[0].ami.port"),
    ({"ami": None, "pbxs": [{"name": "a", "ami": BASE["ami"], "colour": 1}]}, "pbxs[0].colour"),
    ({"tenants": [dict(BASE["tenants"][0], pbx="nope")]}, "tenants[0].pbx"),
    ({"storage": {"url": "mysql://x/y"}}, "storage.url"),
    ({"storage": {"url": "sqlite:///x", "path": "y"}}, "storage.url"),
])
def test_bad_pbx_and_storage_config_names_the_key(change, where):
    raw = copy.deepcopy(BASE)
    for key, value in change.items():
        if value is None:
            del raw[key]
        else:
            raw[key] = value
    with pytest.raises(ConfigError, match=f"^{where.replace('[', '.').replace(']', '.')}"):
        parse_config(raw, {})


@pytest.mark.parametrize("storage, backend, path", [
    ({}, "sqlite", "var/c2c-ami.sqlite3"),
    ({"path": "/srv/c2c.db"}, "sqlite", "/srv/c2c.db"),
    ({"url": "sqlite:///var/x.sqlite3"}, "sqlite", "var/x.sqlite3"),
    ({"url": "sqlite:////srv/x.sqlite3"}, "sqlite", "/srv/x.sqlite3"),
    ({"url": "sqlite://:memory:"}, "sqlite", ":memory:"),
    ({"url": "postgresql://c2c:pw@db:5432/c2c"}, "postgresql", None),
])
def test_storage_url_picks_the_backend(storage, backend, path):
    config = parse_config(dict(copy.deepcopy(BASE), storage=storage), {})
    assert config.storage.backend == backend
    if path is not None:
        assert config.storage.sqlite_path == path


def test_http_metrics_and_log_sections_default_and_load():
    config = parse_config(BASE, {})
    assert (config.http.max_connections, config.http.header_timeout, config.metrics.token,
            config.log.access_query) == (10000, 10.0, "", False)
    raw = {**BASE, "http": {"max_connections": 5, "body_timeout": 2}, "metrics": {"token": "metrics-token-0123456789"},
           "log": {"access_query": True}}
    config = parse_config(raw, {})
    assert (config.http.max_connections, config.http.body_timeout, config.metrics.token,
            config.log.access_query) == (5, 2.0, "metrics-token-0123456789", True)
    assert "metrics-token-0123456789" not in repr(config)


@pytest.mark.parametrize("section, value, path", [
    ("http", {"max_connections": 0}, "http.max_connections"),
    ("http", {"header_timeout": "soon"}, "http.header_timeout"),
    ("http", {"nope": 1}, "http.nope"),
    ("metrics", {"token": "has space"}, "metrics.token"),
    ("log", {"access_query": "yes"}, "log.access_query"),
])
def test_bad_http_metrics_and_log_values_name_their_key(section, value, path):
    with pytest.raises(ConfigError) as info:
        parse_config({**BASE, section: value}, {})
    assert str(info.value).startswith(path)


def test_limit_defaults_serve_a_call_center_on_one_token_and_stop_a_stuck_button():
    limits = parse_config(BASE, {}).limits
    assert (limits.rate_per_minute, limits.rate_burst) == (3000.0, 200)
    assert limits.per_extension_per_minute == 10
    off = parse_config(with_change(["limits"], {"per_extension_per_minute": 0}), {}).limits
    assert off.per_extension_per_minute == 0


# -- auto-answer bundles ----------------------------------------------------------------------
STANDARD = (("Call-Info", "<sip:127.0.0.1>;answer-after=0"),
            ("Alert-Info", "<http://127.0.0.1>;info=alert-autoanswer;delay=0"),
            ("Answer-Mode", "Auto"), ("P-Auto-answer", "normal"), ("Answer-After", "0"))


def with_calls(**calls):
    return with_change(["calls"], {**BASE["calls"], **calls})


def test_a_tenant_gets_the_standard_bundle_by_default():
    config = parse_config(BASE, {})
    assert config.calls.auto_answer == "standard"
    assert (config.tenants[0].auto_answer, config.tenants[0].auto_answer_headers) == ("standard", STANDARD)


def test_calls_auto_answer_names_the_default_and_a_tenant_may_override_it():
    raw = with_calls(auto_answer="call-info")
    raw["tenants"].append({**BASE["tenants"][0], "domain": "b", "tokens": ["b-token-012345678"],
                           "auto_answer": "polycom"})
    raw["tenants"].append({**BASE["tenants"][0], "domain": "c", "tokens": ["c-token-012345678"],
                           "auto_answer": "none"})
    a, b, c = parse_config(raw, {}).tenants
    assert a.auto_answer_headers == (("Call-Info", "<sip:127.0.0.1>;answer-after=0"),)
    assert b.auto_answer_headers == (("Alert-Info", "Ring Answer"),)
    assert (c.auto_answer, c.auto_answer_headers) == ("none", ())


def test_user_bundles_as_pairs_keep_order_and_repeats_or_as_a_mapping():
    raw = with_calls(auto_answer="twice", auto_answer_bundles={
        "twice": [["Alert-Info", "<http://a>;info=alert-autoanswer"], ["Call-Info", "<sip:a>;answer-after=0"],
                  ["Alert-Info", "Ring Answer"]],
        "mapped": {"Answer-Mode": "Auto", "X-Answer": "yes", "Answer-After": 0},
        "standard": [["Answer-Mode", "Auto"]],     # a user bundle may replace a built-in one
        "empty": []})
    raw["tenants"].append({**BASE["tenants"][0], "domain": "b", "tokens": ["b-token-012345678"],
                           "auto_answer": "mapped"})
    raw["tenants"].append({**BASE["tenants"][0], "domain": "c", "tokens": ["c-token-012345678"],
                           "auto_answer": "standard"})
    raw["tenants"].append({**BASE["tenants"][0], "domain": "d", "tokens": ["d-token-012345678"],
                           "auto_answer": "empty"})
    a, b, c, d = parse_config(raw, {}).tenants
    assert a.auto_answer_headers == (("Alert-Info", "<http://a>;info=alert-autoanswer"),
                                     ("Call-Info", "<sip:a>;answer-after=0"), ("Alert-Info", "Ring Answer"))
    assert b.auto_answer_headers == (("Answer-Mode", "Auto"), ("X-Answer", "yes"), ("Answer-After", "0"))
    assert c.auto_answer_headers == (("Answer-Mode", "Auto"),)
    assert d.auto_answer_headers == ()


@pytest.mark.parametrize("calls, tenant, where", [
    ({"auto_answer": "yealink"}, None, "^calls.auto_answer: no auto-answer bundle named 'yealink' "
                                       r"\(bundles: alert-info, answer-mode, call-info, legacy, none, polycom"),
    ({}, "yealink", r"^tenants\[0\].auto_answer: no auto-answer bundle named 'yealink'"),
    ({}, 7, r"^tenants\[0\].auto_answer: no auto-answer bundle named 7"),
    ({"auto_answer_bundles": {"Yealink": []}}, None, "^calls.auto_answer_bundles.Yealink: a bundle name is"),
    ({"auto_answer_bundles": {"-x": []}}, None, "^calls.auto_answer_bundles.-x: a bundle name is"),
    ({"auto_answer_bundles": {"x": [["Call-Info"]]}}, None, r"^calls.auto_answer_bundles.x\[0\]: expected"),
    ({"auto_answer_bundles": {"x": "Call-Info"}}, None, "^calls.auto_answer_bundles.x: expected a list"),
    ({"auto_answer_bundles": {"x": [["Bad Name", "1"]]}}, None,
     r"^calls.auto_answer_bundles.x\[0\]: not a SIP header name"),
    ({"auto_answer_bundles": {"x": {"Call-Info": "a,b"}}}, None,
     "^calls.auto_answer_bundles.x.Call-Info: value must be printable ASCII without commas"),
    ({"auto_answer_bundles": {"x": [["Call-Info", "a\r\nX: y"]]}}, None, r"^calls.auto_answer_bundles.x\[0\]: value"),
    ({"auto_answer_bundles": {"x": [["Answer-Mode", True]]}}, None, r"^calls.auto_answer_bundles.x\[0\]: value"),
    ({"auto_answer_bundles": {"x": [["A", "1"]] * 17}}, None, "^calls.auto_answer_bundles.x: at most 16 headers"),
    ({"auto_answer_bundles": {"custom": []}, "auto_answer_headers": {"Answer-Mode": "Auto"}}, None,
     "^calls.auto_answer_headers: defines bundle 'custom'"),
    ({"auto_answer_headers": ["Answer-Mode"]}, None, "^calls.auto_answer_headers: expected a mapping"),
])
def test_bad_auto_answer_config_fails_at_start_naming_the_path(calls, tenant, where):
    raw = with_calls(**calls)
    if tenant is not None:
        raw["tenants"][0]["auto_answer"] = tenant
    with pytest.raises(ConfigError, match=where):
        parse_config(raw, {})


def test_deprecated_auto_answer_headers_define_bundle_custom_the_default_unless_auto_answer_is_set():
    legacy = {"Call-Info": "<sip:127.0.0.1>;answer-after=0", "X-Auto": "1"}
    config = parse_config(with_calls(auto_answer_headers=legacy), {})
    assert config.calls.auto_answer == config.tenants[0].auto_answer == "custom"
    assert config.tenants[0].auto_answer_headers == (("Call-Info", "<sip:127.0.0.1>;answer-after=0"), ("X-Auto", "1"))
    config = parse_config(with_calls(auto_answer_headers=legacy, auto_answer="legacy"), {})
    assert config.tenants[0].auto_answer == "legacy"
    assert config.calls.auto_answer_bundles["custom"] == (("Call-Info", "<sip:127.0.0.1>;answer-after=0"),
                                                          ("X-Auto", "1"))


def test_recording_defaults_and_a_tenant_overrides_key_by_key():
    config = parse_config(dict(BASE, recording={"enabled": True, "dir": "/var/rec", "url_ttl": 60},
                               tenants=[dict(BASE["tenants"][0], recording={"local_dir": "/mnt/rec"}),
                                        dict(BASE["tenants"][0], domain="b", tokens=["b-token-0123456789"],
                                             recording={"enabled": False})]), {})
    recording = config.recording
    assert (recording.enabled, recording.dir, recording.reads_from) == (True, "/var/rec", "/var/rec")
    first, second = config.tenants
    assert (first.recording.enabled, first.recording.dir, first.recording.reads_from, first.recording.url_ttl) == \
        (True, "/var/rec", "/mnt/rec", 60.0)
    assert (second.recording.enabled, second.recording.dir) == (False, "/var/rec")
    assert parse_config(BASE, {}).recording.enabled is False
    assert (config.calls.park_timeout, config.calls.park_context, config.api.public_url) == (10.0, "c2c-park", "")


@pytest.mark.parametrize("change, where", [
    ({"recording": {"dir": "/var/rec,evil"}}, "recording.dir"),
    ({"recording": {"dir": "relative/rec"}}, "recording.dir"),
    ({"recording": {"local_dir": "/var/../etc"}}, "recording.local_dir"),
    ({"recording": {"url_template": "https://pbx.example/rec.wav"}}, "recording.url_template"),
    ({"recording": {"url_template": "https://pbx.example/{call_id}/{other}.wav"}}, "recording.url_template"),
    ({"recording": {"enabled": "yes"}}, "recording.enabled"),
    ({"recording": {"nope": 1}}, "recording.nope"),
    ({"calls": {"park_context": "bad context"}}, "calls.park_context"),
    ({"api": {"public_url": "ftp://x"}}, "api.public_url"),
    ({"api": {"public_url": "https://c2c.example/ path"}}, "api.public_url"),
])
def test_bad_recording_and_call_control_config_names_the_key(change, where):
    raw = copy.deepcopy(BASE)
    for section, values in change.items():
        raw[section] = {**raw.get(section, {}), **values}
    with pytest.raises(ConfigError, match=rf"^{re.escape(where)}"):
        parse_config(raw, {})
    tenant = dict(BASE["tenants"][0], recording=change.get("recording", {}))
    if "recording" in change:
        with pytest.raises(ConfigError, match=rf"^tenants\[0\]\.{re.escape(where)}"):
            parse_config(dict(BASE, tenants=[tenant]), {})
