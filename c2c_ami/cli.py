"""Command line: ``c2c-ami --config config/c2c-ami.yaml`` (also ``python -m c2c_ami``)."""
from __future__ import annotations

import argparse
import logging
import sys

from aiohttp import web

from .app import create_app
from .config import ConfigError, load_config

log = logging.getLogger("c2c_ami")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="c2c-ami", description="HTTP click-to-call gateway for Asterisk")
    parser.add_argument("--config", default="config/c2c-ami.yaml", help="YAML config file")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"c2c-ami: bad config: {exc}", file=sys.stderr)
        return 2
    web.run_app(create_app(config), host=config.listen.host, port=config.listen.port,
                shutdown_timeout=config.calls.sync_timeout, print=log.info, handle_signals=True)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
