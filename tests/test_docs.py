"""The documentation can be navigated and says what the code does.

- every relative link in the Markdown files resolves to a file, and every ``#anchor`` to a
  heading of that file (GitHub's anchor rules);
- README.md stays short, and its minimal configuration loads;
- docs/configuration.md lists exactly the keys ``c2c_ami.config`` accepts, and the parser
  accepts every key it lists.
"""
from __future__ import annotations

import copy
import dataclasses
import re
import unicodedata
from pathlib import Path
from typing import Any

import yaml

from c2c_ami import config

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


def _markdown_files() -> list[Path]:
    files = [ROOT / "README.md", *sorted(DOCS.glob("*.md")), ROOT / "bench" / "README.md",
             ROOT / "asterisk-test-config" / "README.md"]
    return [f for f in files if f.exists()]


def _strip_fences(text: str) -> str:
    """The text without fenced code blocks (their lines become empty, so line numbers stay)."""
    out, fence = [], ""
    for line in text.splitlines():
        marker = re.match(r"\s*(`{3,}|~{3,})", line)
        if fence:
            if marker and marker.group(1)[0] == fence[0] and len(marker.group(1)) >= len(fence):
                fence = ""
            out.append("")
        elif marker:
            fence = marker.group(1)
            out.append("")
        else:
            out.append(line)
    return "\n".join(out)


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: the rendered text, lower case, punctuation dropped
    (but ``-`` and ``_``), spaces to ``-``."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)   # a link: its text
    text = text.replace("`", "").strip().lower()
    kept = "".join(c for c in text if c in " -_" or unicodedata.category(c)[0] in "LNM")
    return kept.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    """Every heading's anchor in one file, duplicates numbered ``-1``, ``-2``..."""
    seen: dict[str, int] = {}
    anchors = set()
    for line in _strip_fences(path.read_text(encoding="utf-8")).splitlines():
        m = re.match(r" {0,3}#{1,6}\s+(.*?)(?:\s+#+)?\s*$", line)
        if not m:
            continue
        slug = _slug(m.group(1))
        anchor = f"{slug}-{seen[slug]}" if slug in seen else slug
        seen[slug] = seen.get(slug, 0) + 1
        anchors.add(anchor)
    return anchors


_CODE_SPAN = re.compile(r"`[^`]*`")
_LINK = re.compile(r"\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")


def _links(path: Path) -> list[str]:
    text = _strip_fences(path.read_text(encoding="utf-8"))
    text = _CODE_SPAN.sub("code", text)   # a link's text may be code; code is never a link
    return _LINK.findall(text)


def test_every_relative_link_and_anchor_resolves():
    broken = []
    anchors: dict[Path, set[str]] = {}
    for source in _markdown_files():
        for target in _links(source):
            if re.match(r"[a-z][a-z0-9+.-]*:", target, re.IGNORECASE):   # http(s):, mailto:
                continue
            where, _, anchor = target.partition("#")
            file = (source.parent / where).resolve() if where else source
            name = f"{source.relative_to(ROOT)}: ({target})"
            if not file.exists():
                broken.append(f"{name}: no file {where}")
            elif anchor:
                if file.suffix != ".md":
                    broken.append(f"{name}: an anchor into a file that is not Markdown")
                    continue
                if file not in anchors:
                    anchors[file] = _anchors(file)
                if anchor not in anchors[file]:
                    broken.append(f"{name}: no heading #{anchor} in {file.relative_to(ROOT)}")
    assert not broken, "broken links:\n" + "\n".join(broken)


def test_slug_follows_githubs_rules():
    assert _slug("Two commands (fresh Debian 12 or 13, as root)") == "two-commands-fresh-debian-12-or-13-as-root"
    assert _slug("`POST /v1/auth/token`") == "post-v1authtoken"
    assert _slug("Trunks and the number → result table") == "trunks-and-the-number--result-table"
    assert _slug("`calls`") == "calls"


def test_readme_is_short():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) < 250, f"README.md has {len(lines)} lines: move detail into docs/"


def test_table_rows_are_short():
    long_rows = []
    for path in _markdown_files():
        if path.parent.name == "asterisk-test-config":
            continue
        for number, line in enumerate(_strip_fences(path.read_text(encoding="utf-8")).splitlines(), 1):
            if line.startswith("|") and len(line) > 200:
                long_rows.append(f"{path.relative_to(ROOT)}:{number}: {len(line)} characters")
    assert not long_rows, "table rows over 200 characters (move detail under the table):\n" + "\n".join(long_rows)


def test_readme_minimal_configuration_loads():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## A minimal configuration", 1)[1]
    block = re.search(r"```yaml\n(.*?)```", section, re.DOTALL)
    assert block, "README.md: no yaml block under 'A minimal configuration'"
    parsed = config.parse_config(yaml.safe_load(block.group(1)), {})
    assert parsed.tenants[0].hotlines == {"02873001234": "hotline-trunk"}


# --- configuration keys ---------------------------------------------------------------------

def _documented_keys() -> set[str]:
    """The backticked keys in the first column of docs/configuration.md's tables."""
    keys = set()
    for line in _strip_fences((DOCS / "configuration.md").read_text(encoding="utf-8")).splitlines():
        if not line.startswith("|") or re.match(r"\|[\s:|-]+$", line):
            continue
        first = line.split("|")[1]
        keys.update(re.findall(r"`([^`]+)`", first))
    return keys


def test_configuration_doc_lists_exactly_the_accepted_keys():
    accepted = config.accepted_keys()
    documented = _documented_keys()
    assert accepted - documented == set(), "accepted by the code, missing from docs/configuration.md"
    assert documented - accepted == set(), "listed in docs/configuration.md, not accepted by the code"


_MINIMAL: dict[str, Any] = {"tenants": [{"tokens": ["t0ken-0123456789abcdef"], "hotlines": {"0281": "trunk"}}]}

# Values for keys whose default is empty or not a plain value; the rest get their default.
_VALUES: dict[str, Any] = {
    "calls.auto_answer_bundles": {"mine": [["Call-Info", "<sip:127.0.0.1>;answer-after=0"]]},
    "calls.auto_answer_headers": {"Call-Info": "<sip:127.0.0.1>;answer-after=0"},
    "storage.url": "sqlite://:memory:",
    "storage.path": ":memory:",
    "webhooks.allow_networks": ["10.20.0.0/16"],
    "webhooks.deny_networks": ["10.20.30.0/24"],
    "auth.signing_secret": "s" * 32,
    "auth.signing_secrets_previous": ["p" * 32],
    "api.cors_origins": ["https://crm.example.com"],
    "metrics.token": "metrics-t0ken-0123456789",
    "cluster.instance_id": "gw1",
    "pbxs[].name": "pbx1",
    "tenants[].domain": "acme",
    "tenants[].tokens": ["another-t0ken-0123456789"],
    "tenants[].api_keys": ["an-api-key-0123456789"],
    "tenants[].endpoint": "SIP/{ext}",
    "tenants[].context": "c2c-outbound",
    "tenants[].extensions": "^1[0-9]{2}$",
    "tenants[].hotlines": {"02873001234": "hotline-trunk", "+842873005678": "hotline-trunk-2"},
    "tenants[].pbx": "default",
    "tenants[].auto_answer": "none",
    "api.public_url": "https://c2c.example.com",
    "recording.local_dir": "/srv/recordings",
    "recording.url_template": "https://pbx1.example/rec/{call_id}.wav",
    "tenants[].recording.enabled": True,
    "tenants[].recording.dir": "/var/spool/asterisk/monitor",
    "tenants[].recording.local_dir": "/srv/recordings",
    "tenants[].recording.url_template": "https://pbx1.example/rec/{call_id}.wav",
    "tenants[].recording.url_ttl": 3600,
    "calls.auto_answer_user_agents": {"^Acme": "answer-mode"},
    "calls.blacklist": ["0899990988"],
    "tenants[].default_region": "VN",
    "tenants[].caller_ids": ["02873009999", "^1900[0-9]{4}$"],
    "tenants[].agents": {"101": "Nguyễn Văn A"},
}
# Keys that are valid only together with another one.
_WITH: dict[str, dict[str, Any]] = {"auth.signing_secrets_previous": {"auth.signing_secret": "s" * 32}}


def _value(key: str) -> Any:
    if key in _VALUES:
        return _VALUES[key]
    section, _, name = key.removeprefix("pbxs[].").partition(".")
    default = getattr(config.SECTIONS[section](), name)
    assert isinstance(default, (bool, int, float, str)) and default != "", f"{key}: add a value to _VALUES"
    return default


def _set(raw: dict[str, Any], key: str, value: Any) -> None:
    if key.startswith("tenants[]."):
        path = key.removeprefix("tenants[].").split(".")
        tenant = raw["tenants"][0]
        if len(path) == 1:
            tenant[path[0]] = value
        else:
            tenant.setdefault(path[0], {})[path[1]] = value
    elif key.startswith("pbxs[]."):
        pbx = raw.setdefault("pbxs", [{"name": "pbx1"}])[0]
        path = key.removeprefix("pbxs[].").split(".")
        if len(path) == 1:
            pbx[path[0]] = value
        else:
            pbx.setdefault(path[0], {})[path[1]] = value
    else:
        section, _, name = key.partition(".")
        raw.setdefault(section, {})[name] = value


def test_the_parser_accepts_every_documented_key():
    rejected = []
    for key in sorted(_documented_keys()):
        raw = copy.deepcopy(_MINIMAL)
        for other, value in _WITH.get(key, {}).items():
            _set(raw, other, value)
        _set(raw, key, _value(key))
        try:
            config.parse_config(raw, {})
        except config.ConfigError as exc:
            rejected.append(f"{key}: {exc}")
    assert not rejected, "documented keys the parser refuses:\n" + "\n".join(rejected)


def test_accepted_keys_come_from_the_parsers_own_sets():
    keys = config.accepted_keys()
    assert {f"tenants[].{k}" for k in config.TENANT_KEYS - set(config.SECTIONS)} <= keys
    assert {f"tenants[].recording.{k}" for k in config.section_keys("recording")} <= keys
    for section in config.SECTIONS:
        assert section in config.ROOT_KEYS
        fields = {f.name for f in dataclasses.fields(config.SECTIONS[section])}
        assert {f"{section}.{f}" for f in fields} <= keys
    assert {f"pbxs[].ami.{k}" for k in config.section_keys("ami")} <= keys
    assert {"calls.auto_answer_bundles", "calls.auto_answer_headers", "storage.url", "storage.path",
            "webhooks.allow_networks", "webhooks.deny_networks", "auth.signing_secrets_previous",
            "api.cors_origins", "api.timezone"} <= keys


def test_an_unknown_key_is_refused_at_every_level():
    for key in ("nope", "listen.nope", "calls.nope", "api.nope", "pbxs[].nope", "pbxs[].ami.nope", "tenants[].nope"):
        raw = copy.deepcopy(_MINIMAL)
        if "." in key:
            _set(raw, key, 1)
        else:
            raw[key] = 1
        try:
            config.parse_config(raw, {})
        except config.ConfigError as exc:
            assert "unknown key" in str(exc), f"{key}: {exc}"
        else:
            raise AssertionError(f"{key}: accepted")
