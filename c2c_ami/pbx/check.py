"""A check of the Asterisk side: does this PBX provide what the gateway needs? Each finding
says what is wrong, where, and the line to add or change (``calls/pbx_port.Finding``).

Run at start, after every reconnect, on ``GET /v1/pbx/check`` and by ``c2c-ami check``, with
the gateway's own AMI user and nothing but harmless actions:

* **the AMI user's rights**: ``ListCommands`` names the actions this user may run (Originate,
  Getvar, Hangup, CoreShowChannels, DeviceStateList, ShowDialPlan...); read ``system`` is
  proven by ``FullyBooted`` at login, read ``call`` by setting the custom device state
  ``Custom:c2c-ami-check`` (``Setvar``, write ``call``) and seeing its ``DeviceStateChange``;
* **the dialplan**: ``ShowDialPlan`` of each tenant's context for a number as its customers
  dial one (the region's example mobile number): the context exists, matches it, and runs
  ``Dial`` with ``${C2C_TRUNK}`` (following ``Goto``/``Gosub`` and includes to literal
  contexts, three deep);
* **trunks and extensions**: ``DEVICE_STATE(TECH/<trunk>)`` of every hotline's trunk is not
  ``INVALID`` (it names a real endpoint or peer), and ``DeviceStateList`` holds a device
  of each tenant's ``endpoint`` pattern;
* **modules**: ``ModuleCheck`` of those the gateway and the enabled features need
  (``REQUIRED_MODULES``, ``TECH_MODULES``, ``FEATURE_MODULES``) and of the applications the
  context runs (``APP_MODULES``). ``ModuleCheck`` needs ``write = system``, which the
  gateway does not ask for: without it the modules are reported as not checked.
"""
from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from ..calls.pbx_port import CheckResult, Finding
from ..calls.phones import DeviceMap
from ..config import Config, Tenant
from ..numbers import example_number
from .ami import AmiClient, AmiError

# The modules every click-to-call needs, and those of each channel technology.
REQUIRED_MODULES: tuple[tuple[str, str], ...] = (
    ("pbx_config", "the dialplan of extensions.conf"),
    ("app_dial", "Dial() of the number"),
    ("func_devstate", "DEVICE_STATE(): the busy check"),
    ("func_channel", "CHANNELS() and CHANNEL(pjsip,call-id)"),
    ("res_manager_devicestate", "DeviceStateChange events and DeviceStateList: the agent monitor"),
)
TECH_MODULES: dict[str, tuple[tuple[str, str], ...]] = {
    "PJSIP": (("chan_pjsip", "PJSIP channels"), ("res_pjsip", "PJSIP"), ("res_pjsip_session", "PJSIP calls"),
              ("res_pjsip_header_funcs", "PJSIP_HEADER(): auto-answer headers"),
              ("func_pjsip_endpoint", "PJSIP_ENDPOINT(): the agent monitor"),
              ("func_pjsip_aor", "PJSIP_AOR(): the agent monitor"),
              ("func_pjsip_contact", "PJSIP_CONTACT(): the agent monitor's User-Agent and address")),
    "SIP": (("chan_sip", "chan_sip channels and peers"),),
}
# Features a config may enable -> the modules each needs (features add themselves here).
FEATURE_MODULES: dict[str, tuple[str, ...]] = {
    "recording": ("app_mixmonitor",),
    "supervision": ("app_chanspy",),
    "park": ("res_musiconhold",),
}
# Features -> the actions they run (why; never blocking: click-to-call works without them), and
# a core action of the same write class: when that one is allowed, a missing action is its
# module not loaded (reported as such), not a right.
FEATURE_ACTIONS: dict[str, tuple[tuple[str, str, str | None], ...]] = {
    "recording": (("MixMonitor", "recording calls (Asterisk puts it in the system class)", "ModuleCheck"),
                  ("MixMonitorMute", "masking recordings (pause/resume)", "Hangup")),
    "park": (("Redirect", "parking a party", None), ("Setvar", "a park's timeout", None)),
}
# Dialplan applications -> the module providing each (those a context runs must be loaded).
APP_MODULES: dict[str, str] = {
    "dial": "app_dial", "mixmonitor": "app_mixmonitor", "chanspy": "app_chanspy", "playback": "app_playback",
    "background": "pbx_builtins", "queue": "app_queue", "voicemail": "app_voicemail", "record": "app_record",
    "read": "app_read", "echo": "app_echo", "playtones": "app_playtones", "verbose": "app_verbose",
    "agi": "res_agi", "page": "app_page", "confbridge": "app_confbridge", "senddtmf": "app_senddtmf",
    "system": "app_system", "stasis": "res_stasis", "followme": "app_followme", "macro": "app_macro",
}
# Actions the gateway runs -> (why, blocking: no call can be placed without it).
ACTIONS: tuple[tuple[str, str, bool], ...] = (
    ("Originate", "placing every click-to-call", True),
    ("Getvar", "the busy check before each call (DEVICE_STATE, CHANNELS), the SIP Call-ID", True),
    ("Hangup", "DELETE /v1/calls/{id} and cancels", False),
    ("CoreShowChannels", "finding calls again after a lost link or a restart", False),
    ("DeviceStateList", "the agent monitor's snapshot", False),
    ("ShowDialPlan", "checking the dialplan", False),
)
WRITE_LINE = "write = originate,call,reporting"
READ_LINE = "read = call,system"
PROBE_DEVICE = "Custom:c2c-ami-check"    # toggled to prove read = call
PROBE_WAIT = 2.0
_GOTO = re.compile(r"^\s*([A-Za-z0-9_.-]+)\s*,\s*[^,]+\s*,\s*[^,]+\s*$")   # Goto/Gosub(context,exten,priority)


@dataclass
class _Context:
    """What ShowDialPlan told of one context: its lines (application, data), its includes."""
    name: str
    lines: list[tuple[str, str]] = field(default_factory=list)
    includes: list[str] = field(default_factory=list)


def enabled_features(config: Config) -> tuple[str, ...]:
    """The features of ``FEATURE_MODULES`` in use: call control's supervision and park are
    always offered by the API; recording when the config enables it anywhere (a request's
    record=true needs it too, but a shop that never records is not told to load it)."""
    recording = config.recording.enabled or any(t.recording.enabled for t in config.tenants)
    return ("supervision", "park", *(("recording",) if recording else ()))


class PbxCheck:
    """The check of one PBX for its tenants; ``run`` performs it."""

    def __init__(self, pbx: str, ami: AmiClient, tenants: Sequence[Tenant],
                 features: Iterable[str] = (), *, subscribe: bool = True) -> None:
        self.pbx = pbx
        self.ami = ami
        self.tenants = [t for t in tenants if t.pbx == pbx]
        self._config_index = {t.domain: i for i, t in enumerate(tenants)}   # tenants[i] in the findings
        self.features = tuple(features)
        self._probe: asyncio.Future[str] | None = None
        if subscribe:
            ami.subscribe(self._on_event, ("DeviceStateChange",))

    def _on_event(self, event: Mapping[str, str]) -> None:
        if event.get("Device") == PROBE_DEVICE and self._probe is not None and not self._probe.done():
            self._probe.set_result(event.get("State") or "")

    async def run(self) -> CheckResult:
        if not self.ami.ready:
            cfg = self.ami.config
            return CheckResult((Finding(
                "ami_login", f"no AMI link to {cfg.host}:{cfg.port} as {cfg.username!r} "
                f"({self.ami.last_error or self.ami.state.value})", "manager.conf",
                f"[{cfg.username}] with secret = ami.secret, permit = this host, and AMI enabled on that "
                "address and port", blocking=True),), checked_at=time.time())
        findings: list[Finding] = []
        skipped: list[str] = []
        try:
            allowed = await self._allowed_actions()
            findings += self._rights(allowed)
            findings += await self._read_classes(allowed, skipped)
            apps: dict[str, str] = {}
            if "ShowDialPlan" in allowed:
                for context, tenants in self._contexts().items():
                    found, used = await self._dialplan(context, tenants)
                    findings += found
                    apps.update(used)
            else:
                skipped.append("dialplan: not checked (ShowDialPlan needs write = reporting)")
            if "Getvar" in allowed:
                findings += await self._trunks()
            if "DeviceStateList" in allowed:
                findings += await self._endpoints()
            if "ModuleCheck" in allowed:
                findings += await self._modules(apps)
            elif "DeviceStateList" not in allowed and "Getvar" in allowed:     # its module is not loaded
                module = "res_manager_devicestate"
                findings.append(_module_missing(module, dict(REQUIRED_MODULES)[module]))
            if "ModuleCheck" not in allowed:
                skipped.append("modules: not checked (ModuleCheck needs write = system, which the gateway does "
                               "not need otherwise; check by hand with: module show like <name>)")
        except AmiError as exc:
            skipped.append(f"check interrupted: {exc}")
        return CheckResult(tuple(findings), tuple(skipped), time.time())

    # -- the AMI user ------------------------------------------------------------------------
    async def _allowed_actions(self) -> set[str]:
        reply = await self.ami.send({"Action": "ListCommands"})
        return {str(key) for key in reply if str(key) not in ("Response", "ActionID", "Message")}

    def _rights(self, allowed: set[str]) -> list[Finding]:
        user = self.ami.config.username
        wanted = [*ACTIONS, *((action, why, False) for feature in self.features
                              for action, why, same_class in FEATURE_ACTIONS.get(feature, ())
                              if same_class is None or same_class not in allowed)]
        return [Finding("ami_permission", f"the AMI user {user!r} may not run {action} ({why})",
                        f"manager.conf [{user}]", self._write_line(), blocking=blocking)
                for action, why, blocking in wanted if action not in allowed
                and not (action == "DeviceStateList" and self._lacks_module(allowed))]

    @staticmethod
    def _lacks_module(allowed: set[str]) -> bool:
        """DeviceStateList missing though Getvar (call, reporting) is allowed: its module is
        not loaded (reported as a module), not a right."""
        return "Getvar" in allowed

    def _write_line(self) -> str:
        return WRITE_LINE + (",system" if "recording" in self.features else "")

    async def _read_classes(self, allowed: set[str], skipped: list[str]) -> list[Finding]:
        user = self.ami.config.username
        found = []
        if not self.ami.booted_seen:
            found.append(Finding("ami_read", f"the AMI user {user!r} does not receive system events (no FullyBooted "
                                 "at login)", f"manager.conf [{user}]", READ_LINE))
        if "Setvar" not in allowed or "Getvar" not in allowed:
            skipped.append("read = call: not checked (needs write = call to set a custom device state)")
            return found
        state = await self._getvar(f"DEVICE_STATE({PROBE_DEVICE})")
        wanted = "NOT_INUSE" if state == "INUSE" else "INUSE"
        self._probe = asyncio.get_running_loop().create_future()
        try:
            await self.ami.send({"Action": "Setvar", "Variable": f"DEVICE_STATE({PROBE_DEVICE})", "Value": wanted})
            async with asyncio.timeout(PROBE_WAIT):
                await asyncio.shield(self._probe)
        except TimeoutError:
            found.append(Finding("ami_read", f"the AMI user {user!r} does not receive call events (no "
                                 f"DeviceStateChange of {PROBE_DEVICE}): the gateway would never see a call "
                                 "ring, answer or end", f"manager.conf [{user}]", READ_LINE, blocking=True))
        finally:
            self._probe = None
        return found

    # -- the dialplan ------------------------------------------------------------------------
    def _contexts(self) -> dict[str, list[Tenant]]:
        contexts: dict[str, list[Tenant]] = {}
        for tenant in self.tenants:
            contexts.setdefault(tenant.context, []).append(tenant)
        return contexts

    async def _dialplan(self, context: str, tenants: list[Tenant]) -> tuple[list[Finding], dict[str, str]]:
        tenant = tenants[0]
        concerned = tuple(t.domain for t in tenants)
        number = example_number(tenant.default_region)
        where = f"extensions.conf [{context}]"
        dial = _dial_line(tenant)
        first = await self._show(context, number)
        if isinstance(first, str):
            if first.startswith("Did not find context"):
                return [Finding("context_missing", f"the dialplan has no context {context!r} (tenant "
                                f"{tenant.domain}'s context)", f"{where}; tenants[{self._index(tenant)}].context",
                                f"[{context}] with exten => _X.,1,NoOp() then same => n,{dial}, "
                                "or the tenant's context set to the one that has them", tenants=concerned)], {}
            return [Finding("context_no_match", f"the context {context!r} has no extension matching a dialled "
                            f"number such as {number}", where, f"exten => _X.,1,NoOp() ... same => n,{dial}",
                            tenants=concerned)], {}
        seen: dict[str, _Context] = {context: first}
        queue = [first]
        depth = 0
        while queue and depth < 3:           # Goto/Gosub and includes to literal contexts
            depth += 1
            targets = []
            for ctx in queue:
                targets += ctx.includes
                targets += [m.group(1) for app, data in ctx.lines if app.lower() in ("goto", "gosub")
                            for m in [_GOTO.match(data)] if m]
            queue = []
            for target in dict.fromkeys(targets):
                if target not in seen:
                    shown = await self._show(target, None)
                    if isinstance(shown, _Context):
                        seen[target] = shown
                        queue.append(shown)
        lines = [line for ctx in seen.values() for line in ctx.lines]
        apps = {app.lower(): app for app, _ in lines}      # ShowDialPlan's spelling, by lower case
        if any(app.lower() == "dial" and "${C2C_TRUNK}" in data for app, data in lines):
            return [], apps
        dials = [data for app, data in lines if app.lower() == "dial"]
        if dials:
            return [Finding("dial_without_trunk", f"the context {context!r} dials {dials[0]!r} without "
                            "${C2C_TRUNK}: the number would not go out through the hotline's trunk", where,
                            f"same => n,{dial}", tenants=concerned)], apps
        return [Finding("context_no_dial", f"the context {context!r} never runs Dial with ${{C2C_TRUNK}}: the "
                        "agent's phone rings, but the number is never dialled", where,
                        f"same => n,{dial}", tenants=concerned)], apps

    async def _show(self, context: str, exten: str | None) -> _Context | str:
        """The context's lines (for ``exten``), or Asterisk's error message."""
        action = {"Action": "ShowDialPlan", "Context": context}
        if exten is not None:
            action["Extension"] = exten
        try:
            events = await self.ami.send_list(action)
        except AmiError as exc:
            message = str(exc)
            if message.startswith("Did not find"):
                return message
            raise
        ctx = _Context(context)
        for e in events:
            if e.get("Event") != "ListDialplan":
                continue
            if e.get("IncludeContext"):
                ctx.includes.append(str(e.get("IncludeContext")))
            elif e.get("Application"):
                ctx.lines.append((str(e.get("Application")), str(e.get("AppData") or "")))
        return ctx

    # -- trunks and extensions ---------------------------------------------------------------
    async def _trunks(self) -> list[Finding]:
        found = []
        for tenant in self.tenants:
            tech = _tech_of(tenant)
            for hotline, trunk in tenant.hotlines.items():
                if await self._getvar(f"DEVICE_STATE({tech}/{trunk})") == "INVALID":
                    conf = "pjsip.conf" if tech == "PJSIP" else "sip.conf"
                    kind = "endpoint" if tech == "PJSIP" else "peer"
                    found.append(Finding(
                        "trunk_missing", f"the trunk {trunk!r} of hotline {hotline} (tenant {tenant.domain}) is no "
                        f"{tech} {kind}", f"{conf}; tenants[{self._index(tenant)}].hotlines",
                        f"[{trunk}] type={kind} ... in {conf}, or the hotline's trunk set to an existing {kind}",
                        tenants=(tenant.domain,)))
        return found

    async def _endpoints(self) -> list[Finding]:
        events = await self.ami.send_list({"Action": "DeviceStateList"})
        devices = [str(e.get("Device") or "") for e in events]
        found = []
        for tenant in self.tenants:
            own = DeviceMap([tenant])
            if not any(own.wanted(self.pbx, d) for d in devices):
                conf, example = (("pjsip.conf", "[101] type=endpoint") if _tech_of(tenant) == "PJSIP"
                                 else ("sip.conf", "[101] type=friend"))
                found.append(Finding(
                    "endpoint_missing", f"no device of the PBX matches tenant {tenant.domain}'s endpoint "
                    f"{tenant.endpoint!r} with an extension matching {tenant.extensions.pattern!r}",
                    f"{conf}; tenants[{self._index(tenant)}].endpoint",
                    f"one per extension (e.g. {example}), or the tenant's endpoint and extensions set to match them",
                    tenants=(tenant.domain,)))
        return found

    def _index(self, tenant: Tenant) -> int:
        return self._config_index[tenant.domain]

    # -- modules -----------------------------------------------------------------------------
    async def _modules(self, apps: dict[str, str]) -> list[Finding]:
        wanted: dict[str, str] = dict(REQUIRED_MODULES)
        for tech in {_tech_of(t) for t in self.tenants}:
            wanted.update(TECH_MODULES.get(tech, ()))
        for feature in self.features:
            for module in FEATURE_MODULES.get(feature, ()):
                wanted.setdefault(module, feature)
        for app, spelled in sorted(apps.items()):
            provider = APP_MODULES.get(app)
            if provider is not None:
                wanted.setdefault(provider, f"{spelled}() in the dialplan")
        replies = await asyncio.gather(*(self.ami.send({"Action": "ModuleCheck", "Module": m}) for m in wanted))
        return [_module_missing(module, why) for (module, why), reply in zip(wanted.items(), replies, strict=True)
                if reply.get("Response") != "Success"]

    async def _getvar(self, variable: str) -> str:
        reply = await self.ami.send({"Action": "Getvar", "Variable": variable})
        return str(reply.get("Value") or "") if reply.get("Response") == "Success" else ""


def _module_missing(module: str, why: str) -> Finding:
    return Finding("module_missing", f"the module {module} is not loaded (needed for {why})", "modules.conf",
                   f"load => {module}.so")


def _tech_of(tenant: Tenant) -> str:
    tech = tenant.endpoint.partition("/")[0].upper()
    return "SIP" if tech == "SIP" else "PJSIP" if tech == "PJSIP" else tech


def _dial_line(tenant: Tenant) -> str:
    if _tech_of(tenant) == "SIP":
        return "Dial(SIP/${C2C_TRUNK}/${EXTEN},${C2C_DIAL_TIMEOUT})"
    return "Dial(PJSIP/${EXTEN}@${C2C_TRUNK},${C2C_DIAL_TIMEOUT})"


async def check_config(config: Config) -> dict[str, CheckResult]:
    """``c2c-ami check``: log in to every PBX of the config as the gateway would, check each
    one, log off."""
    async def one(name: str, ami: AmiClient) -> CheckResult:
        checker = PbxCheck(name, ami, config.tenants, enabled_features(config))
        ami.start()
        try:
            await ami.wait_ready(ami.config.connect_timeout + ami.config.boot_wait + 1)
            return await checker.run()
        finally:
            await ami.close()
    amis = {pbx.name: AmiClient(pbx.ami, name=pbx.name) for pbx in config.pbxs}
    results = await asyncio.gather(*(one(name, ami) for name, ami in amis.items()))
    return dict(zip(amis, results, strict=True))
