"""A newcomer's first minutes: ``scripts/demo``'s config works for every documented curl
(the static token and the token exchange), README shows what the demo prints, and the demo
installs only what it uses (``scripts/setup demo``) while ``scripts/test`` installs everything."""
import dataclasses
import json
import os
import re
import subprocess
import sys

import yaml

from c2c_ami.app import create_app
from c2c_ami.app_keys import AMI
from c2c_ami.config import AmiConfig, PbxConfig, StorageConfig, parse_config
from c2c_rig.demo import DEMO_API_KEY, DEMO_TOKEN, banner, demo_config

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RIG = {"offset": 3, "ami": {"host": "127.0.0.1", "port": 5038, "username": "c2c", "secret": "rig-secret"},
       "endpoint": "PJSIP/{ext}", "asterisk_version": "Asterisk 22", "driver": "pjsip", "sip": {"port": 5360},
       "dir": "/tmp/rig-3"}


def read(path):
    with open(os.path.join(REPO, path), encoding="utf-8") as fh:
        return fh.read()


async def test_the_demo_config_takes_the_static_token_and_the_token_exchange(aiohttp_client, fake_ami):
    config = parse_config(yaml.safe_load(demo_config(RIG)), {})
    assert config.tenants[0].api_key_digests and config.auth.signing_secret       # no warning at start
    ami = AmiConfig(port=fake_ami.port, username="c2c", secret="change-me")
    config = dataclasses.replace(config, pbxs=(PbxConfig("default", ami),), storage=StorageConfig(path=":memory:"))
    app = create_app(config)
    client = await aiohttp_client(app)
    assert await app[AMI].wait_ready(3)
    assert (await client.get("/v1/cdr", headers={"Authorization": f"Bearer {DEMO_TOKEN}"})).status == 200
    resp = await client.post("/v1/auth/token", json={"api_key": DEMO_API_KEY})     # the printed curl
    assert resp.status == 200, await resp.text()
    token = (await resp.json())["data"]["token"]
    assert (await client.get("/v1/call", headers={"Authorization": f"Bearer {token}"})).status == 200


def test_the_demo_prints_the_curl_lines_readme_shows(tmp_path):
    rig_json, config_yaml = tmp_path / "rig.json", tmp_path / "demo.yaml"
    rig_json.write_text(json.dumps(RIG))
    done = subprocess.run([sys.executable, "-m", "c2c_rig.demo", str(rig_json), str(config_yaml)],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    printed = done.stdout
    assert printed == banner(RIG) + "\n" and yaml.safe_load(config_yaml.read_text())["tenants"]
    assert f"Authorization: Bearer {DEMO_TOKEN}" in printed
    assert f"/v1/auth/token --data-raw '{{\"api_key\": \"{DEMO_API_KEY}\"}}'" in printed
    readme = read("README.md")
    assert set(re.findall(r"Bearer ([\w-]+)'", readme)) == {DEMO_TOKEN}          # README's curl lines
    assert f'{{"api_key": "{DEMO_API_KEY}"}}' in readme and f"`{DEMO_TOKEN}`" in readme


def plan(*mode):
    done = subprocess.run([os.path.join(REPO, "scripts", "setup"), *mode], capture_output=True, text=True,
                          timeout=60, env={**os.environ, "SETUP_PLAN": "1"})
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_demo_installs_only_what_it_uses_and_the_tests_everything():
    demo, everything = plan("demo"), plan()
    assert "postgresql" not in demo and "chromium" not in demo and "test and lint" not in demo
    assert "venv" in demo and "rig: Asterisk and sipp" in demo
    for needed in ("postgresql", "chromium", "tzdata", "test and lint tools", "rig: Asterisk and sipp"):
        assert needed in everything, needed
    assert plan("all") == everything
    assert re.search(r"^scripts/setup demo$", read("scripts/demo"), re.M)
    assert "c2c_rig.demo" in read("scripts/demo")
    assert re.search(r"^scripts/setup all$", read("scripts/test"), re.M)
    assert "scripts/test" in read(".ci/run")


def test_setup_says_what_it_installs():
    """Each install step announces itself on stderr ("setup: installing ..."); a mode it does
    not know is refused."""
    script = read("scripts/setup")
    assert script.count('step ') >= 5 and 'echo "setup: installing $what" >&2' in script
    done = subprocess.run([os.path.join(REPO, "scripts", "setup"), "everything"], capture_output=True, text=True,
                          timeout=30)
    assert done.returncode == 2 and "usage: scripts/setup [all|demo]" in done.stderr
