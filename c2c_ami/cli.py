"""Command line: ``c2c-ami --config config/c2c-ami.yaml`` (also ``python -m c2c_ami``) runs the
gateway; ``c2c-ami check --config FILE`` checks the Asterisk side and exits."""
from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import resource
import sys

from . import patterns
from .app import create_app
from .config import Config, ConfigError, ListenConfig, load_config
from .http_server import ListenError, bind, serve
from .log_filters import OneLineFormatter
from .pbx.check import check_config

log = logging.getLogger("c2c_ami")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["check"]:
        return check(argv[1:])
    parser = argparse.ArgumentParser(prog="c2c-ami", description="HTTP click-to-call gateway for Asterisk "
                                     "(`c2c-ami check --config FILE`: check the Asterisk side and exit)")
    parser.add_argument("--config", default="config/c2c-ami.yaml", help="YAML config file")
    parser.add_argument("--listen", metavar="HOST:PORT", help="overrides listen.host and listen.port")
    parser.add_argument("--instance-id", metavar="ID", help="overrides cluster.instance_id "
                        "(default: this host's name and the process id)")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    args = parser.parse_args(argv)
    handler = logging.StreamHandler()
    handler.setFormatter(OneLineFormatter())    # one line per record: no request can forge one
    logging.basicConfig(level=args.log_level, handlers=[handler])
    try:
        config = _overridden(load_config(args.config), args.listen, args.instance_id)
    except ConfigError as exc:
        print(f"c2c-ami: bad config: {exc}", file=sys.stderr)
        return 2
    _enough_files(config.http.max_connections)
    try:        # before the store and AMI: a taken port ends the start at once
        socks = bind(config.listen.host, config.listen.port, config.http.backlog)
    except ListenError as exc:
        print(f"c2c-ami: {exc}", file=sys.stderr)
        return 1
    serve(create_app(config), socks, config, shutdown_timeout=config.calls.sync_timeout, announce=log.info)
    return 0


def check(argv: list[str]) -> int:
    """``c2c-ami check --config FILE``: the check of every PBX's Asterisk side, printed; exit
    status 0 when nothing was found, 1 when something was, 2 for a bad config."""
    parser = argparse.ArgumentParser(prog="c2c-ami check", description="Check that each PBX of the config "
                                     "provides what the gateway needs (AMI rights, dialplan, trunks, modules)")
    parser.add_argument("--config", default="config/c2c-ami.yaml", help="YAML config file")
    parser.add_argument("--json", action="store_true", help="print the findings as JSON")
    args = parser.parse_args(argv)
    logging.basicConfig(level="ERROR", format="%(levelname)s %(name)s: %(message)s")
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"c2c-ami: bad config: {exc}", file=sys.stderr)
        return 2
    results = asyncio.run(check_config(config))
    if args.json:
        print(json.dumps({name: {"findings": [f.as_dict() for f in r.findings], "skipped": list(r.skipped)}
                          for name, r in results.items()}, indent=2))
    else:
        for pbx in config.pbxs:
            result = results[pbx.name]
            print(f"PBX {pbx.name} ({pbx.ami.host}:{pbx.ami.port}): "
                  f"{len(result.findings) or 'no'} finding{'' if len(result.findings) == 1 else 's'}")
            for finding in result.findings:
                print(f"  - {finding.line()}")
            for note in result.skipped:
                print(f"  (not checked) {note}")
    return 1 if any(r.findings for r in results.values()) else 0


def _enough_files(connections: int) -> None:
    """Each client connection is a file descriptor: raise the soft limit (often 1024) towards
    the hard one so ``http.max_connections`` can be reached, and say so if it cannot."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = connections + 256          # the store, AMI links, webhooks, logs
    if soft < wanted:
        raised = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
        if raised < wanted:
            log.warning("open files limited to %d (ulimit -n): fewer than http.max_connections (%d) "
                        "connections can be served", raised, connections)


def _overridden(config: Config, listen: str | None, instance_id: str | None) -> Config:
    """The command line's --listen and --instance-id win over the file."""
    if listen is not None:
        host, sep, port = listen.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(f"--listen: HOST:PORT expected, got {listen!r}")
        config = dataclasses.replace(config, listen=ListenConfig(host.strip("[]"), int(port)))
    if instance_id is not None:
        if not patterns.CONFIG_NAME.fullmatch(instance_id):
            raise ConfigError(f"--instance-id: must be {patterns.CONFIG_NAME.rule}")
        config = dataclasses.replace(config, cluster=dataclasses.replace(config.cluster, instance_id=instance_id))
    return config


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
