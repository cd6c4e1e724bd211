"""What can be checked of the Docker setup without a Docker engine: the compose file parses,
each build's Dockerfile exists, every file a Dockerfile COPYs exists in the build context and
is not excluded by its .dockerignore, and every bind-mounted host path exists."""

import fnmatch
import glob
import os
import shlex
import shutil
import subprocess

import pytest
import yaml

import c2c_rig

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
COMPOSE = os.path.join(REPO, "docker-compose.yml")


def services():
    with open(COMPOSE) as f:
        return yaml.safe_load(f)["services"]


def builds():
    for name, svc in services().items():
        if "build" in svc:
            build = svc["build"]
            context = os.path.normpath(os.path.join(REPO, build["context"]))
            yield name, context, os.path.join(context, build.get("dockerfile", "Dockerfile"))


def instructions(dockerfile):
    """(INSTRUCTION, args) with line continuations joined and comments dropped."""
    with open(dockerfile) as f:
        text = f.read().replace("\\\n", " ")
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            yield word.upper(), rest.strip()


def ignored(context, dockerfile, path):
    """Docker's rule, simplified: the last matching pattern wins; '!' re-includes."""
    ignore = dockerfile + ".dockerignore"
    if not os.path.exists(ignore):
        ignore = os.path.join(context, ".dockerignore")
    if not os.path.exists(ignore):
        return False
    with open(ignore) as f:
        patterns = f.read().splitlines()
    result = False
    for pat in patterns:
        pat = pat.strip()
        if not pat or pat.startswith("#"):
            continue
        neg = pat.startswith("!")
        pat = pat.lstrip("!").rstrip("/")
        if pat == "*" or fnmatch.fnmatch(path, pat) or path.startswith(pat + "/"):
            result = not neg
    return result


def test_compose_parses_and_names_the_services():
    svcs = services()
    assert {"asterisk", "gateway"} <= set(svcs)
    assert svcs["gateway"]["depends_on"]["asterisk"]["condition"] == "service_healthy"


@pytest.mark.parametrize("name, context, dockerfile", list(builds()))
def test_every_copied_file_exists(name, context, dockerfile):
    assert os.path.exists(dockerfile), dockerfile
    copies = 0
    for word, args in instructions(dockerfile):
        if word not in ("COPY", "ADD"):
            continue
        parts = [p for p in shlex.split(args) if not p.startswith("--")]
        assert not args.startswith("--from"), "multi-stage COPY not expected"
        for src in parts[:-1]:
            copies += 1
            if glob.has_magic(src):               # a glob may match nothing (optional file)
                found = [os.path.relpath(p, context) for p in glob.glob(os.path.join(context, src))]
            else:
                assert os.path.exists(os.path.join(context, src)), f"{name}: COPY {src}: missing"
                found = [src.rstrip("/")]
            for path in found:
                assert not ignored(context, dockerfile, path), f"{name}: {path} is .dockerignored"
    assert copies


def test_bind_mounts_exist():
    for name, svc in services().items():
        for vol in svc.get("volumes", []):
            host = vol.split(":")[0]
            if host.startswith((".", "/")):
                assert os.path.exists(os.path.join(REPO, host)), f"{name}: {host}"


def test_rig_image_runs_a_real_rig_command():
    dockerfile = os.path.join(REPO, "docker", "asterisk.Dockerfile")
    cmd = dict(instructions(dockerfile))["CMD"]
    assert "rig.py" in cmd and '"up"' in cmd and "--foreground" in cmd


def test_docker_compose_config_when_the_cli_can():
    """`docker compose config` needs only the CLI plugin, not the engine; skipped here if absent."""
    docker = shutil.which("docker")
    if not docker or subprocess.run([docker, "compose", "version"], capture_output=True).returncode:
        pytest.skip("no `docker compose` CLI on this machine")
    r = subprocess.run([docker, "compose", "-f", COMPOSE, "config", "-q"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_gateway_config_for_compose_loads_and_points_at_the_rig():
    """docker/c2c-ami.rig.yaml must stay valid for the gateway's own loader."""
    from c2c_ami.config import load_config

    config = load_config(os.path.join(REPO, "docker", "c2c-ami.rig.yaml"))
    assert (config.ami.host, config.ami.port) == ("127.0.0.1", c2c_rig.Ports(0).ami)
    assert config.ami.username == c2c_rig.AMI_USER
