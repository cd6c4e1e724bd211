"""Configuration: the YAML file loaded once into typed, validated objects.

A bad file fails at start with the key path in the message (``tenants[0].hotlines: ...``),
so nothing unchecked from the config ever reaches the AMI socket either.
String values may name environment variables as ``${NAME}`` (secrets stay out of the file).
"""
from __future__ import annotations

import dataclasses
import hashlib
import ipaddress
import os
import re
import socket
import zoneinfo
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from . import patterns
from .auto_answer import (
    BUILT_IN,
    BY_USER_AGENT,
    CUSTOM_BUNDLE,
    DEFAULT_BUNDLE,
    MAX_HEADERS,
    USER_AGENT_BUNDLES,
    Bundle,
    UserAgentTable,
)
from .carrier import zone
from .numbers import is_possible, known_region, number_key

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class ConfigError(ValueError):
    """The configuration is unusable; the message starts with the key path."""


@dataclass(frozen=True)
class ListenConfig:
    host: str = "127.0.0.1"
    port: int = 8080


@dataclass(frozen=True)
class HttpConfig:
    """What one HTTP client may hold of the gateway (docs/operations.md, "HTTP limits")."""
    max_connections: int = 10000    # open client connections at once (10,000 waiting sync requests); more closed
    # ...of which one client address (IPv6: its /64) may hold this many: one token at its full
    # rate of sync requests (3,000 a minute, each up to 45 s) holds 2,250, so one CRM behind one
    # NAT address fits; four such addresses fill max_connections (then the idle are shed)
    max_connections_per_address: int = 2500
    backlog: int = 128              # connections the kernel queues before they are accepted
    header_timeout: float = 10.0    # a request's line and headers must arrive within this
    body_timeout: float = 10.0      # ...and its body (POST /v1/event) within this: else 400
    keepalive_timeout: float = 15.0  # an idle keep-alive connection is closed after this
    client_max_size: int = 64 * 1024  # bytes of request body at most (413 beyond)
    max_line_size: int = 8190       # bytes of the request line, and of a header line
    max_field_size: int = 8190      # bytes of one header's value
    max_headers: int = 64           # headers per request


@dataclass(frozen=True)
class ApiConfig:
    # browser pages on these origins (scheme://host[:port]) may call the API (docs/api.md, "Browsers (CORS)")
    cors_origins: tuple[str, ...] = ()
    # the carrier's times ("YYYY-MM-DD HH:MM:SS" in CDRs, live calls) and date filters: an IANA zone
    timezone: str = "UTC"
    # how clients reach the gateway (scheme://host[:port][/prefix]): absolute links it hands
    # out (recording_url); "" (unset): http://listen.host:listen.port
    public_url: str = ""


@dataclass(frozen=True)
class MetricsConfig:
    token: str = field(default="", repr=False)   # "" (unset): /metrics is open; else Bearer <token>

    @property
    def token_digest(self) -> bytes | None:
        """The digest a Bearer token must have (the token may be given as ``sha256:<hex>``)."""
        return secret_digest(self.token) if self.token else None


@dataclass(frozen=True)
class AuthConfig:
    """Issued tokens (``POST /v1/auth/token``): lifetime, and the HMAC secrets that sign them."""
    token_ttl: float = 86400.0      # seconds an issued token is valid
    signing_secret: str = field(default="", repr=False)   # "" (unset): random at start (docs/api.md, "Token format")
    signing_secrets_previous: tuple[str, ...] = field(default=(), repr=False)  # still verify, never sign
    failures_per_minute: float = 10.0   # failed authentications (any credential) per client address, sustained...
    failure_burst: int = 20             # ...and at once; beyond: 429 before any credential is even checked


@dataclass(frozen=True)
class LogConfig:
    access_query: bool = False      # the access log shows query strings (phone numbers) only if true


@dataclass(frozen=True)
class AmiConfig:
    host: str = "127.0.0.1"
    port: int = 5038
    username: str = "c2c"
    secret: str = field(default="change-me", repr=False)
    connect_timeout: float = 3.0    # TCP connect + login
    action_timeout: float = 3.0     # any single AMI action's response
    ping_interval: float = 5.0      # a silent peer is detected within interval + timeout
    ping_timeout: float = 2.0
    reconnect_min: float = 0.2      # backoff between reconnects: min doubling to max
    reconnect_max: float = 2.0      # so a restarted PBX is in use again within ~2 s
    auth_retry: float = 30.0        # after a refused login (a wrong secret is not fixed in ms)
    boot_wait: float = 3.0          # wait for FullyBooted after login before assuming booted


@dataclass(frozen=True)
class CallsConfig:
    ring_timeout: float = 30.0      # seconds the extension may ring
    dial_timeout: float = 60.0      # seconds the called number may ring
    sync_timeout: float = 45.0      # hard bound on a synchronous request
    max_call_seconds: float = 4 * 3600.0  # forget a call still "up" after this long
    auto_answer: str = DEFAULT_BUNDLE   # the bundle of a tenant that names none
    # every bundle by name: the built-in ones, then calls.auto_answer_bundles
    # (docs/asterisk.md, "Auto-answer: which phones honour what")
    auto_answer_bundles: Mapping[str, Bundle] = field(default_factory=lambda: dict(BUILT_IN))
    # auto_answer: by_user_agent: the User-Agent -> bundle rows (calls.auto_answer_user_agents
    # first, then the built-in ones: auto_answer.USER_AGENT_BUNDLES)
    auto_answer_user_agents: UserAgentTable = field(default_factory=lambda: UserAgentTable.of(USER_AGENT_BUNDLES))
    # numbers no tenant may call (a global do-not-call list), each read in the tenant's region
    blacklist: tuple[str, ...] = ()
    park_timeout: float = 10.0      # a parked party waits this long for a transfer, then is hung up
    park_context: str = "c2c-park"  # the dialplan context a parked party waits in (docs/asterisk.md)


@dataclass(frozen=True)
class RecordingConfig:
    """Call recordings (docs/api.md, "Recordings"): globally, and per tenant (``tenants[].recording``
    takes the same keys and overrides these)."""
    enabled: bool = False           # record every call (a request's record=true|false overrides)
    dir: str = "/var/spool/asterisk/monitor"   # where Asterisk writes the WAV files
    local_dir: str = ""             # the same directory as the gateway reads it; "" = dir
    url_template: str = ""          # e.g. https://pbx1.example/rec/{call_id}.wav: hand this out instead
    url_ttl: float = 86400.0        # seconds a signed recording link is valid

    @property
    def reads_from(self) -> str:
        return self.local_dir or self.dir


@dataclass(frozen=True)
class LimitsConfig:
    rate_per_minute: float = 3000.0  # per token, sustained (one CRM token may serve a whole call center)
    rate_burst: int = 200           # per token, at once
    per_extension_per_minute: int = 10  # clicks per tenant + ext (as many at once); 0 = off
    remembered_per_tenant: int = 100_000  # request keys each guard keeps per tenant (docs/api.md, "Limits")
    duplicate_window: float = 5.0   # same tenant + ext + phone within this -> same call_id
    idempotency_ttl: float = 86400.0  # Idempotency-Key answers are replayed this long
    shutdown_grace: float = 10.0    # SIGTERM: in-flight sync requests may finish this long


@dataclass(frozen=True)
class StorageConfig:
    """``url``: ``sqlite:///relative/path``, ``sqlite:////absolute/path``, ``sqlite://:memory:``
    or ``postgresql://user:password@host:port/database``. ``path`` (a SQLite file) is the
    older spelling of the same thing; give one or the other."""
    url: str = ""
    path: str = "var/c2c-ami.sqlite3"   # SQLite file, created on first start; ":memory:" for tests

    @property
    def backend(self) -> str:
        return "postgresql" if self.url.startswith(("postgresql://", "postgres://")) else "sqlite"

    @property
    def sqlite_path(self) -> str:
        if not self.url:
            return self.path
        return self.url.removeprefix("sqlite://").removeprefix("/") or ":memory:"


@dataclass(frozen=True)
class WebhooksConfig:
    timeout: float = 5.0            # per delivery attempt
    max_attempts: int = 8           # then the delivery is dead (kept in the outbox, logged)
    backoff_base: float = 1.0       # seconds, doubled per attempt
    backoff_max: float = 300.0
    concurrency: int = 16           # POSTs in flight, all tenants
    per_tenant_concurrency: int = 8  # POSTs in flight for one tenant's hooks
    per_hook_concurrency: int = 4   # POSTs in flight to one hook
    max_hooks_per_tenant: int = 100  # POST /v1/event beyond this is refused (409 TOO_MANY_HOOKS)
    retention_days: float = 7.0     # delivered and dead deliveries are purged after this long
    allow_networks: tuple[str, ...] = ()   # CIDRs webhooks may reach despite the default refusals
    deny_networks: tuple[str, ...] = ()    # CIDRs webhooks may never reach (wins over allow)


@dataclass(frozen=True)
class EventsConfig:
    """The event stream, GET /v1/events/stream (docs/api.md, "The event stream")."""
    retention: float = 3600.0       # seconds events stay in the log: a client may resume this long after
    heartbeat: float = 15.0         # seconds between two heartbeats (an SSE comment) on an idle stream
    buffer: int = 1000              # events of each streamed tenant kept in memory; a stream further behind is dropped
    send_timeout: float = 30.0      # a write to a client stuck this long drops its stream
    max_streams: int = 10000        # open streams on one instance; more: 429
    max_streams_per_tenant: int = 1000   # open streams of one tenant on one instance; more: 429


@dataclass(frozen=True)
class ClusterConfig:
    """Several gateway instances on one PostgreSQL (docs/operations.md, "Several instances")."""
    instance_id: str = ""           # unique per running instance; "" = this host's name + pid
    lease_seconds: float = 10.0     # an instance silent this long is dead: its calls are adopted

    def resolved_instance_id(self) -> str:
        return self.instance_id or f"{socket.gethostname()}-{os.getpid()}"


@dataclass(frozen=True)
class PbxConfig:
    """One Asterisk server, reached over its own AMI link."""
    name: str
    ami: AmiConfig


@dataclass(frozen=True)
class CallerIds:
    """``tenants[].caller_ids``: the numbers (compared in E.164 by the tenant's region) and
    the patterns (regular expressions, full match on the number as given) a tenant may
    present as caller ID."""
    numbers: frozenset[str] = frozenset()
    patterns: tuple[re.Pattern[str], ...] = ()


@dataclass(frozen=True)
class Tenant:
    domain: str
    token_digests: tuple[bytes, ...] = field(repr=False)
    endpoint: str                   # dial string template, e.g. PJSIP/{ext}
    context: str
    extensions: re.Pattern[str]
    hotlines: Mapping[str, str]     # hotline number -> trunk endpoint, first = default
    pbx: str = "default"            # the PBX its extensions and trunks live on
    api_key_digests: tuple[bytes, ...] = field(default=(), repr=False)  # exchanged for issued tokens
    auto_answer: str = DEFAULT_BUNDLE   # the bundle's name...
    auto_answer_headers: Bundle = BUILT_IN[DEFAULT_BUNDLE]  # ...resolved (by_user_agent: the fallback)
    recording: RecordingConfig = RecordingConfig()   # recording.*, with this tenant's overrides
    default_region: str | None = None   # ISO 3166 alpha-2: how numbers without a country code are read
    caller_ids: CallerIds | None = None  # None: any caller ID may be presented
    agents: Mapping[str, str] = field(default_factory=dict)   # extension -> the agent's name
    blacklist: frozenset[str] = frozenset()   # calls.blacklist, as this tenant compares numbers

    @property
    def default_hotline(self) -> str:
        return next(iter(self.hotlines))

    def device(self, ext: str) -> str:
        """The dial string (and device name) of one of this tenant's extensions."""
        return self.endpoint.replace("{ext}", ext)


@dataclass(frozen=True)
class Config:
    listen: ListenConfig
    pbxs: tuple[PbxConfig, ...]     # at least one; names are unique
    calls: CallsConfig
    tenants: tuple[Tenant, ...]
    limits: LimitsConfig = LimitsConfig()
    storage: StorageConfig = StorageConfig()
    webhooks: WebhooksConfig = WebhooksConfig()
    cluster: ClusterConfig = ClusterConfig()
    http: HttpConfig = HttpConfig()
    metrics: MetricsConfig = MetricsConfig()
    log: LogConfig = LogConfig()
    auth: AuthConfig = AuthConfig()
    api: ApiConfig = ApiConfig()
    recording: RecordingConfig = RecordingConfig()
    events: EventsConfig = EventsConfig()

    @property
    def ami(self) -> AmiConfig:
        """The first PBX's AMI link (the only one in a single-PBX config)."""
        return self.pbxs[0].ami


# The keys the parser accepts, once: ``parse_config`` checks against these and
# ``accepted_keys`` (what docs/configuration.md must list) is built from them.
# The sections whose keys are their dataclass's fields (see ``_section``):
SECTIONS: Mapping[str, type] = {
    "listen": ListenConfig, "ami": AmiConfig, "calls": CallsConfig, "limits": LimitsConfig,
    "storage": StorageConfig, "webhooks": WebhooksConfig, "cluster": ClusterConfig, "http": HttpConfig,
    "metrics": MetricsConfig, "log": LogConfig, "auth": AuthConfig, "api": ApiConfig, "recording": RecordingConfig,
    "events": EventsConfig,
}
# Keys a section accepts besides its fields (read and removed before the section is built):
SECTION_EXTRA_KEYS: Mapping[str, frozenset[str]] = {
    "calls": frozenset({"auto_answer_headers"}),   # deprecated: defines the bundle "custom"
}
ROOT_KEYS = frozenset(SECTIONS) | {"pbxs", "tenants"}
PBX_KEYS = frozenset({"name", "ami"})             # pbxs[]: ami takes the keys of the ami section
TENANT_KEYS = frozenset({"domain", "tokens", "api_keys", "endpoint", "context", "extensions", "hotlines",
                         "pbx", "auto_answer", "default_region", "caller_ids", "agents",
                         "recording"})   # tenants[].recording: the recording section's keys


def section_keys(name: str) -> frozenset[str]:
    """The keys one flat section accepts: its dataclass's fields and its extra keys."""
    fields = {f.name for f in dataclasses.fields(SECTIONS[name])}
    return frozenset(fields) | SECTION_EXTRA_KEYS.get(name, frozenset())


def accepted_keys() -> frozenset[str]:
    """Every key path the parser accepts, in the documentation's notation: ``listen.host``,
    ``pbxs[].name``, ``pbxs[].ami.host``, ``tenants[].domain``, ``calls.auto_answer_bundles``..."""
    keys: set[str] = set()
    for root in ROOT_KEYS:
        if root in SECTIONS:
            keys |= {f"{root}.{key}" for key in section_keys(root)}
        elif root == "pbxs":
            for key in PBX_KEYS:
                if key in SECTIONS:   # pbxs[].ami: the keys of the ami section
                    keys |= {f"pbxs[].{key}.{sub}" for sub in section_keys(key)}
                else:
                    keys.add(f"pbxs[].{key}")
        elif root == "tenants":
            for key in TENANT_KEYS:
                if key in SECTIONS:   # tenants[].recording: the keys of the recording section
                    keys |= {f"tenants[].{key}.{sub}" for sub in section_keys(key)}
                else:
                    keys.add(f"tenants[].{key}")
        else:   # pragma: no cover - a new root key must say here what it holds
            raise AssertionError(f"accepted_keys: root key {root!r} is not described")
    return frozenset(keys)


def load_config(path: str, environ: Mapping[str, str] | None = None) -> Config:
    """Read, expand ``${ENV}`` references in, and validate the YAML file at ``path``."""
    try:
        with open(path, encoding="utf-8") as fh:
            raw = yaml.safe_load(fh)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    return parse_config(raw, os.environ if environ is None else environ)


def parse_config(raw: Any, environ: Mapping[str, str]) -> Config:
    """Validate an already-parsed YAML document (tests build configs from dicts)."""
    raw = _expand_env(raw, environ, "")
    root = _mapping(raw, "")
    _only(root, "", ROOT_KEYS)
    listen = _section(root, "listen", ListenConfig)
    pbxs = _pbxs(root)
    calls = _calls(root)
    limits = _section(root, "limits", LimitsConfig)
    storage = _storage(root)
    webhooks = _webhooks(root)
    cluster = _section(root, "cluster", ClusterConfig)
    if cluster.instance_id and not patterns.CONFIG_NAME.fullmatch(cluster.instance_id):
        raise ConfigError(f"cluster.instance_id: must be {patterns.CONFIG_NAME.rule}")
    _check_calls(calls)
    http = _section(root, "http", HttpConfig)
    metrics = _section(root, "metrics", MetricsConfig)
    if metrics.token:
        _token(metrics.token, "metrics.token")
    log = _section(root, "log", LogConfig)
    events = _section(root, "events", EventsConfig)
    auth = _auth(root)
    api = _api(root)
    recording = _recording(root.get("recording"), "recording", RecordingConfig())
    tenants_raw = root.get("tenants")
    if not isinstance(tenants_raw, list) or not tenants_raw:
        raise ConfigError("tenants: a non-empty list of tenants is required")
    pbx_names = [p.name for p in pbxs]
    tenants = tuple(_tenant(t, f"tenants[{i}]", pbx_names, calls, recording) for i, t in enumerate(tenants_raw))
    _check_unique(tenants)
    return Config(listen=listen, pbxs=pbxs, calls=calls, tenants=tenants, limits=limits,
                  storage=storage, webhooks=webhooks, cluster=cluster, http=http, metrics=metrics, log=log,
                  auth=auth, api=api, recording=recording, events=events)


def _pbxs(root: dict) -> tuple[PbxConfig, ...]:
    """``pbxs: [{name, ami: {...}}]``, or the single ``ami:`` block (one PBX, ``default``)."""
    if "pbxs" in root and "ami" in root:
        raise ConfigError("pbxs: give either pbxs or ami, not both")
    if "pbxs" not in root:
        ami = _section(root, "ami", AmiConfig)
        _check_ami(ami, "ami")
        return (PbxConfig("default", ami),)
    items = root["pbxs"]
    if not isinstance(items, list) or not items:
        raise ConfigError("pbxs: a non-empty list of {name, ami} is required")
    pbxs: list[PbxConfig] = []
    for i, item in enumerate(items):
        path = f"pbxs[{i}]"
        entry = _mapping(item, path)
        _only(entry, path, PBX_KEYS)
        name = _name(entry.get("name"), f"{path}.name")
        if name in {p.name for p in pbxs}:
            raise ConfigError(f"{path}.name: {name!r} is used twice")
        ami = _section(entry, "ami", AmiConfig, path=f"{path}.ami")
        _check_ami(ami, f"{path}.ami")
        pbxs.append(PbxConfig(name, ami))
    return tuple(pbxs)


def _calls(root: dict) -> CallsConfig:
    """The flat section, and the auto-answer bundles: built-in, then ``auto_answer_bundles``,
    then the deprecated ``auto_answer_headers`` as bundle ``custom`` (the default unless
    ``auto_answer`` names one)."""
    given = dict(_mapping(root.get("calls", {}) or {}, "calls"))
    bundles = dict(BUILT_IN)
    if "auto_answer_bundles" in given:
        path = "calls.auto_answer_bundles"
        for name, value in _mapping(given.pop("auto_answer_bundles"), path).items():
            bundles[_bundle_name(name, f"{path}.{name}")] = _bundle(value, f"{path}.{name}")
    user_agents = _user_agents(given.pop("auto_answer_user_agents", {}), bundles)
    blacklist = _numbers(given.pop("blacklist", []), "calls.blacklist")
    default = DEFAULT_BUNDLE
    if "auto_answer_headers" in given:
        path = "calls.auto_answer_headers"
        if CUSTOM_BUNDLE in bundles:   # not built in: calls.auto_answer_bundles has one
            raise ConfigError(f"{path}: defines bundle {CUSTOM_BUNDLE!r}, which "
                              "calls.auto_answer_bundles defines too: keep one")
        bundles[CUSTOM_BUNDLE] = _bundle(_mapping(given.pop("auto_answer_headers"), path), path)
        default = CUSTOM_BUNDLE
    calls = dataclasses.replace(_section({"calls": given}, "calls", CallsConfig),
                                auto_answer_bundles=bundles, auto_answer_user_agents=user_agents,
                                blacklist=blacklist)
    if "auto_answer" not in given:
        calls = dataclasses.replace(calls, auto_answer=default)
    _known_bundle(calls.auto_answer, calls, "calls.auto_answer")
    return calls


def _bundle_name(value: Any, path: str) -> str:
    if not isinstance(value, str) or not patterns.BUNDLE_NAME.fullmatch(value):
        raise ConfigError(f"{path}: a bundle name is {patterns.BUNDLE_NAME.rule}")
    return value


def _bundle(value: Any, path: str) -> Bundle:
    """``[[Header, value], ...]`` (order kept, a header may repeat) or ``{Header: value}``."""
    if isinstance(value, dict):
        pairs = [((name, val), f"{path}.{name}") for name, val in value.items()]
    elif isinstance(value, list):
        pairs = []
        for i, item in enumerate(value):
            if not isinstance(item, list) or len(item) != 2:
                raise ConfigError(f"{path}[{i}]: expected [Header, value]")
            pairs.append(((item[0], item[1]), f"{path}[{i}]"))
    else:
        raise ConfigError(f"{path}: expected a list of [Header, value] or a mapping {{Header: value}}")
    if len(pairs) > MAX_HEADERS:
        raise ConfigError(f"{path}: at most {MAX_HEADERS} headers")
    out = []
    for (name, val), where in pairs:
        if isinstance(val, int) and not isinstance(val, bool):
            val = str(val)             # YAML reads "Answer-After: 0" as a number
        if not isinstance(name, str) or not patterns.SIP_HEADER_NAME.fullmatch(name):
            raise ConfigError(f"{where}: {patterns.SIP_HEADER_NAME.rule}")
        if not isinstance(val, str) or not patterns.SIP_HEADER_VALUE.fullmatch(val):
            raise ConfigError(f"{where}: {patterns.SIP_HEADER_VALUE.rule}")
        out.append((name, val))
    return tuple(out)


def _user_agents(value: Any, bundles: Mapping[str, Bundle]) -> UserAgentTable:
    """``{pattern: bundle}`` in order, tried before the built-in rows."""
    path = "calls.auto_answer_user_agents"
    rows = []
    for pattern, bundle in _mapping(value or {}, path).items():
        where = f"{path}.{pattern}"
        try:
            re.compile(str(pattern), re.IGNORECASE)
        except re.error as exc:
            raise ConfigError(f"{where}: not a regular expression: {exc}") from None
        if not isinstance(bundle, str) or bundle not in bundles:
            raise ConfigError(f"{where}: no auto-answer bundle named {bundle!r} "
                              f"(bundles: {', '.join(sorted(bundles))})")
        rows.append((str(pattern), bundle))
    return UserAgentTable.of([*rows, *USER_AGENT_BUNDLES])


def _numbers(value: Any, path: str) -> tuple[str, ...]:
    """A list of phone numbers (3-20 digits, optional leading +, formatting allowed)."""
    if not isinstance(value, list):
        raise ConfigError(f"{path}: expected a list of phone numbers")
    out = []
    for i, item in enumerate(value):
        number = str(item) if isinstance(item, (str, int)) and not isinstance(item, bool) else ""
        if not is_possible(number, None):
            raise ConfigError(f"{path}[{i}]: a phone number is 3-20 digits with an optional leading + "
                              "(quote it in YAML to keep leading zeros)")
        out.append(number)
    return tuple(out)


def _known_bundle(name: Any, calls: CallsConfig, path: str) -> Bundle:
    if name == BY_USER_AGENT:       # chosen per call; a phone no row names gets the fallback
        return calls.auto_answer_bundles[DEFAULT_BUNDLE]
    if not isinstance(name, str) or name not in calls.auto_answer_bundles:
        raise ConfigError(f"{path}: no auto-answer bundle named {name!r} "
                          f"(bundles: {', '.join(sorted(calls.auto_answer_bundles))})")
    return calls.auto_answer_bundles[name]


def _storage(root: dict) -> StorageConfig:
    storage = _section(root, "storage", StorageConfig)
    given = _mapping(root.get("storage", {}) or {}, "storage")
    if "url" in given and "path" in given:
        raise ConfigError("storage.url: give either storage.url or storage.path, not both")
    if storage.url and not storage.url.startswith(("sqlite://", "postgresql://", "postgres://")):
        raise ConfigError("storage.url: must start with sqlite:// or postgresql://")
    return storage


def _webhooks(root: dict) -> WebhooksConfig:
    """The flat section, and its two CIDR lists (``webhooks.allow_networks: [10.0.0.0/8]``)."""
    given = dict(_mapping(root.get("webhooks", {}) or {}, "webhooks"))
    networks = {key: _networks(given.pop(key), f"webhooks.{key}")
                for key in ("allow_networks", "deny_networks") if key in given}
    return dataclasses.replace(_section({"webhooks": given}, "webhooks", WebhooksConfig), **networks)


def _auth(root: dict) -> AuthConfig:
    """The flat section, and ``auth.signing_secrets_previous`` (a list of secrets)."""
    given = dict(_mapping(root.get("auth", {}) or {}, "auth"))
    previous: tuple[str, ...] = ()
    if "signing_secrets_previous" in given:
        value = given.pop("signing_secrets_previous")
        if not isinstance(value, list):
            raise ConfigError("auth.signing_secrets_previous: expected a list of secrets")
        previous = tuple(_signing_secret(v, f"auth.signing_secrets_previous[{i}]") for i, v in enumerate(value))
    auth = dataclasses.replace(_section({"auth": given}, "auth", AuthConfig), signing_secrets_previous=previous)
    if auth.signing_secret:
        _signing_secret(auth.signing_secret, "auth.signing_secret")
    elif previous:
        raise ConfigError("auth.signing_secrets_previous: given without auth.signing_secret")
    return auth


def _signing_secret(value: Any, path: str) -> str:
    if not isinstance(value, str) or not patterns.SIGNING_SECRET.fullmatch(value):
        raise ConfigError(f"{path}: must be {patterns.SIGNING_SECRET.rule}")
    return value


def _networks(value: Any, path: str) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise ConfigError(f"{path}: expected a list of networks in CIDR form (10.0.0.0/8, fd00::/8)")
    out = []
    for i, item in enumerate(value):
        try:
            out.append(str(ipaddress.ip_network(str(item), strict=True)))
        except ValueError as exc:
            raise ConfigError(f"{path}[{i}]: not a network in CIDR form ({exc})") from None
    return tuple(out)


def _api(root: dict) -> ApiConfig:
    given = _mapping(root.get("api", {}) or {}, "api")
    _only(given, "api", section_keys("api"))
    origins = given.get("cors_origins", [])
    if not isinstance(origins, list):
        raise ConfigError("api.cors_origins: expected a list of origins (https://crm.example.com)")
    public_url = given.get("public_url", "")
    return ApiConfig(cors_origins=tuple(_origin(o, f"api.cors_origins[{i}]") for i, o in enumerate(origins)),
                     timezone=_timezone(given.get("timezone", "UTC"), "api.timezone"),
                     public_url=_public_url(public_url, "api.public_url") if public_url else "")


_PUBLIC_URL = re.compile(r"https?://[A-Za-z0-9.\[\]:-]+(/[A-Za-z0-9._~/-]*)?")
_RECORDING_DIR = re.compile(r"/[A-Za-z0-9_./-]*")
_URL_TEMPLATE = re.compile(r"https?://[A-Za-z0-9._~:/?#\[\]@!$&'()*+,;=%{}-]+")


def _public_url(value: Any, path: str) -> str:
    if not isinstance(value, str) or not _PUBLIC_URL.fullmatch(value) or len(value) > 200:
        raise ConfigError(f"{path}: expected scheme://host[:port][/path] with scheme http or https "
                          "(https://c2c.example.com, http://10.0.0.5:8080/c2c)")
    return value.rstrip("/")


def _recording(given: Any, path: str, base: RecordingConfig) -> RecordingConfig:
    """The recording section (or a tenant's overrides of it): directories are absolute paths
    of safe characters (the one Asterisk writes to reaches AMI), a URL template names
    {call_id}."""
    values = dict(_mapping(given or {}, path))
    unset = {key for key in ("local_dir", "url_template") if values.get(key) == ""}   # "": back to none
    section = _section({path: {k: v for k, v in values.items() if k not in unset}}, path, RecordingConfig)
    changes: dict[str, Any] = {key: "" if key in unset else getattr(section, key) for key in values}
    recording = dataclasses.replace(base, **changes)
    for key in ("dir", "local_dir"):
        value = getattr(recording, key)
        if value and (not _RECORDING_DIR.fullmatch(value) or ".." in value.split("/")):
            raise ConfigError(f"{path}.{key}: an absolute directory of letters, digits and _ . / - only")
    if recording.url_template and (not _URL_TEMPLATE.fullmatch(recording.url_template)
                                   or "{call_id}" not in recording.url_template
                                   or recording.url_template.replace("{call_id}", "").count("{")):
        raise ConfigError(f"{path}.url_template: an http(s) URL naming {{call_id}} (and no other {{...}}), "
                          "e.g. https://pbx1.example/rec/{call_id}.wav")
    return recording


def _timezone(value: Any, path: str) -> str:
    """An IANA time zone name (Asia/Ho_Chi_Minh, UTC) that this host's tz database knows."""
    if not isinstance(value, str) or not value or len(value) > 64 or not value.isascii():
        raise ConfigError(f"{path}: expected an IANA time zone name (e.g. Asia/Ho_Chi_Minh or UTC)")
    try:
        zone(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        raise ConfigError(f"{path}: unknown time zone {value!r} (an IANA name, e.g. Asia/Ho_Chi_Minh or UTC)") from None
    return value


_ORIGIN = re.compile(r"(https?)://([a-z0-9](?:[a-z0-9.-]*[a-z0-9])?|\[[0-9a-f:.]+\])(?::([0-9]{1,5}))?")
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _origin(value: Any, path: str) -> str:
    """One origin, in the form browsers send it in ``Origin``: lower case, no default port."""
    if value == "*":
        raise ConfigError(f"{path}: '*' is not allowed (the API takes Bearer tokens): list each origin")
    m = _ORIGIN.fullmatch(value.lower()) if isinstance(value, str) else None
    if not m or (m.group(3) and not 0 < int(m.group(3)) < 65536):
        raise ConfigError(f"{path}: expected an origin, scheme://host[:port] with scheme http or https "
                          "and no path, not even a trailing / (https://crm.example.com, http://127.0.0.1:8000)")
    scheme, host, port = m.groups()
    if host.startswith("["):
        try:
            host = f"[{ipaddress.IPv6Address(host[1:-1]).compressed}]"
        except ValueError:
            raise ConfigError(f"{path}: {host} is not an IPv6 address") from None
    if port and int(port) != _DEFAULT_PORTS[scheme]:
        return f"{scheme}://{host}:{int(port)}"
    return f"{scheme}://{host}"


def token_digest(token: str) -> bytes:
    """Tokens are kept and compared as SHA-256 digests, never as plain text."""
    return hashlib.sha256(token.encode("utf-8")).digest()


def _expand_env(value: Any, environ: Mapping[str, str], path: str) -> Any:
    if isinstance(value, str):
        def repl(m: re.Match[str]) -> str:
            if m.group(1) not in environ:
                raise ConfigError(f"{path or '<root>'}: environment variable {m.group(1)} is not set")
            return environ[m.group(1)]
        return _ENV_REF.sub(repl, value)
    if isinstance(value, dict):
        return {k: _expand_env(v, environ, _join(path, str(k))) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand_env(v, environ, f"{path}[{i}]") for i, v in enumerate(value)]
    return value


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _mapping(value: Any, path: str) -> dict:
    if not isinstance(value, dict):
        raise ConfigError(f"{path or '<root>'}: expected a mapping")
    return value


def _only(mapping: dict, path: str, allowed: Collection[str]) -> None:
    unknown = sorted(str(k) for k in mapping if k not in allowed)
    if unknown:
        raise ConfigError(f"{_join(path, unknown[0])}: unknown key (allowed: {', '.join(sorted(allowed))})")


_ZERO_IS_OFF = frozenset({"limits.per_extension_per_minute"})   # whole numbers where 0 turns it off


def _section(root: dict, name: str, cls: type, *, path: str | None = None) -> Any:
    """Build a flat dataclass section, checking each key's type against its default."""
    path = path or name
    values = _mapping(root.get(name, {}) or {}, path)
    defaults = cls()
    allowed = {f.name for f in dataclasses.fields(cls)}
    _only(values, path, allowed)
    kwargs = {}
    for key, value in values.items():
        default = getattr(defaults, key)
        if _join(path, key) in _ZERO_IS_OFF and value == 0 and not isinstance(value, bool):
            kwargs[key] = 0
            continue
        kwargs[key] = _coerce(value, default, _join(path, key))
    return cls(**kwargs)


def _coerce(value: Any, default: Any, path: str) -> Any:
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{path}: expected true or false")
        return value
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ConfigError(f"{path}: expected a positive whole number")
        return value
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 10**7:
            raise ConfigError(f"{path}: expected a positive number of seconds")
        return float(value)
    if isinstance(default, str):
        if not isinstance(value, (str, int)) or isinstance(value, bool) or str(value) == "":
            raise ConfigError(f"{path}: expected a non-empty string")
        return str(value)
    raise ConfigError(f"{path}: unsupported value")  # pragma: no cover


def _check_ami(ami: AmiConfig, path: str) -> None:
    for key in ("host", "username", "secret"):
        if not patterns.AMI_TEXT.fullmatch(getattr(ami, key)):
            raise ConfigError(f"{path}.{key}: {patterns.AMI_TEXT.rule}")
    if not 0 < ami.port < 65536:
        raise ConfigError(f"{path}.port: must be a TCP port number")
    if ami.reconnect_min > ami.reconnect_max:
        raise ConfigError(f"{path}.reconnect_min: must not exceed {path}.reconnect_max")


def _check_calls(calls: CallsConfig) -> None:
    if not patterns.CONFIG_NAME.fullmatch(calls.park_context):
        raise ConfigError(f"calls.park_context: must be {patterns.CONFIG_NAME.rule}")
    if calls.sync_timeout <= calls.ring_timeout:
        raise ConfigError("calls.sync_timeout: must be longer than calls.ring_timeout, "
                          "or a synchronous request could give up while the phone still rings")


def _tenant(raw: Any, path: str, pbx_names: list[str], calls: CallsConfig, recording: RecordingConfig) -> Tenant:
    t = _mapping(raw, path)
    _only(t, path, TENANT_KEYS)
    pbx = t.get("pbx", pbx_names[0])
    if pbx not in pbx_names:
        raise ConfigError(f"{path}.pbx: no PBX named {pbx!r} (pbxs: {', '.join(pbx_names)})")
    domain = _name(t.get("domain", "default"), f"{path}.domain")
    tokens = t.get("tokens", [] if "api_keys" in t else None)
    if not isinstance(tokens, list) or not (tokens or t.get("api_keys")):
        raise ConfigError(f"{path}.tokens: a non-empty list of tokens is required (or api_keys)")
    digests = tuple(_token(tok, f"{path}.tokens[{i}]") for i, tok in enumerate(tokens))
    api_keys = t.get("api_keys", [])
    if not isinstance(api_keys, list):
        raise ConfigError(f"{path}.api_keys: expected a list of api keys")
    key_digests = tuple(_token(key, f"{path}.api_keys[{i}]") for i, key in enumerate(api_keys))
    endpoint = str(t.get("endpoint", "PJSIP/{ext}"))
    if not patterns.ENDPOINT.fullmatch(endpoint):
        raise ConfigError(f"{path}.endpoint: {patterns.ENDPOINT.rule}")
    context = _name(t.get("context", "c2c-outbound"), f"{path}.context")
    pattern = t.get("extensions", r"^[0-9]{2,6}$")
    try:
        extensions = re.compile(str(pattern))
    except re.error as exc:
        raise ConfigError(f"{path}.extensions: not a regular expression: {exc}") from None
    hotlines_raw = _mapping(t.get("hotlines"), f"{path}.hotlines")
    if not hotlines_raw:
        raise ConfigError(f"{path}.hotlines: at least one hotline is required")
    hotlines = {}
    for number, trunk in hotlines_raw.items():
        number = str(number)
        if not patterns.HOTLINE.fullmatch(number):
            raise ConfigError(f"{path}.hotlines.{number}: a hotline is {patterns.HOTLINE.rule}; "
                              "quote it in YAML to keep leading zeros")
        hotlines[number] = _name(trunk, f"{path}.hotlines.{number}")
    bundle = t.get("auto_answer", calls.auto_answer)
    headers = _known_bundle(bundle, calls, f"{path}.auto_answer")
    region = _region(t.get("default_region"), f"{path}.default_region")
    return Tenant(domain=domain, token_digests=digests, endpoint=endpoint, context=context,
                  extensions=extensions, hotlines=hotlines, pbx=pbx, api_key_digests=key_digests,
                  auto_answer=bundle, auto_answer_headers=headers, default_region=region,
                  caller_ids=_caller_ids(t.get("caller_ids"), f"{path}.caller_ids", region),
                  agents=_agents(t.get("agents", {}), f"{path}.agents"),
                  blacklist=frozenset(number_key(n, region) for n in calls.blacklist),
                  recording=_recording(t.get("recording"), f"{path}.recording", recording))


def _region(value: Any, path: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not known_region(value):
        raise ConfigError(f"{path}: an ISO 3166 region code phone numbers are read in (VN, US, GB...)")
    return value


def _caller_ids(value: Any, path: str, region: str | None) -> CallerIds | None:
    """Numbers (``"02873001234"``, ``"+842873001234"``) or regular expressions starting
    with ``^`` (``"^1900[0-9]{4}$"``)."""
    if value is None:
        return None
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{path}: a non-empty list of numbers or patterns (^...) is expected")
    numbers, regexes = set(), []
    for i, item in enumerate(value):
        text = str(item) if isinstance(item, (str, int)) and not isinstance(item, bool) else ""
        if text.startswith("^"):
            try:
                regexes.append(re.compile(text))
            except re.error as exc:
                raise ConfigError(f"{path}[{i}]: not a regular expression: {exc}") from None
        elif is_possible(text, None):
            numbers.add(number_key(text, region))
        else:
            raise ConfigError(f"{path}[{i}]: a number (3-20 digits, optional +; quote it in YAML) or a "
                              "regular expression starting with ^")
    return CallerIds(frozenset(numbers), tuple(regexes))


def _agents(value: Any, path: str) -> dict[str, str]:
    agents = {}
    for ext, name in _mapping(value, path).items():
        if not isinstance(name, str) or not 0 < len(name) <= 80 or not name.isprintable():
            raise ConfigError(f"{path}.{ext}: an agent's name is 1-80 printable characters")
        agents[str(ext)] = name
    return agents


def _name(value: Any, path: str) -> str:
    if not isinstance(value, str) or not patterns.CONFIG_NAME.fullmatch(value):
        raise ConfigError(f"{path}: must be {patterns.CONFIG_NAME.rule}")
    return value


def _token(value: Any, path: str) -> bytes:
    """A configured secret's digest: the secret (at least ``MIN_TOKEN_LENGTH`` characters: a
    short one is guessed) or its ``sha256:<hex>`` digest."""
    if not isinstance(value, str) or not (patterns.TOKEN_DIGEST.fullmatch(value)
                                          or patterns.CONFIG_TOKEN.fullmatch(value)):
        raise ConfigError(f"{path}: {patterns.CONFIG_TOKEN.rule}")
    return secret_digest(value)


def secret_digest(value: str) -> bytes:
    """The digest of a configured secret: given as ``sha256:<hex>``, or computed."""
    m = patterns.TOKEN_DIGEST.compiled.fullmatch(value)
    return bytes.fromhex(m.group(1)) if m else token_digest(value)


def _check_unique(tenants: tuple[Tenant, ...]) -> None:
    """Domains once; a secret (static token or api key) names one tenant only, whichever of
    the two lists holds it (a Bearer token and an exchange must not mean two tenants)."""
    seen_domains: set[str] = set()
    owner: dict[bytes, int] = {}
    for i, t in enumerate(tenants):
        if t.domain in seen_domains:
            raise ConfigError(f"tenants[{i}].domain: {t.domain!r} is used twice")
        seen_domains.add(t.domain)
        for key, digests, what in (("tokens", t.token_digests, "a token"),
                                   ("api_keys", t.api_key_digests, "an api key")):
            for d in digests:
                if owner.setdefault(d, i) != i:
                    raise ConfigError(f"tenants[{i}].{key}: {what} is shared with another tenant "
                                      "(as its token or its api key)")
