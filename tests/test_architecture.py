"""The import rules docs/architecture.md states ("Which way the imports point"), read from the
code: a new import that breaks one fails here, naming the file and what it imported."""
import ast
import pathlib

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "c2c_ami"

# part -> the parts it must never import (a part is a folder of c2c_ami, or a top-level module)
NEVER = {
    "calls": {"pbx", "notify", "api", "app", "app_keys", "http_server", "metrics"},
    "pbx": {"notify", "api", "app", "app_keys", "http_server", "metrics"},
    "notify": {"pbx", "api", "app", "app_keys", "http_server", "metrics"},
    "store": {"calls", "pbx", "notify", "api", "app", "app_keys", "auth", "scroll"},
    "api": {"pbx", "app", "http_server"},
    "errors": {"calls", "pbx", "notify", "api", "store", "config"},
}


def part_of(path: pathlib.Path) -> str:
    rel = path.relative_to(PACKAGE).parts
    return rel[0] if len(rel) > 1 else rel[0].removesuffix(".py")


def imported_parts(path: pathlib.Path) -> set[str]:
    """The parts of c2c_ami that ``path`` imports (relative and absolute imports)."""
    package = path.relative_to(PACKAGE.parent).with_suffix("").parts
    package = package[:-1] if package[-1] != "__init__" else package[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = []
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(package[:len(package) - (node.level - 1)])
                target = base + (node.module.split(".") if node.module else [])
                names = [target + [alias.name] for alias in node.names] if not node.module else [target]
            elif node.module and node.module.startswith("c2c_ami"):
                names = [node.module.split(".")]
        elif isinstance(node, ast.Import):
            names = [alias.name.split(".") for alias in node.names if alias.name.startswith("c2c_ami")]
        for name in names:
            if len(name) > 1 and name[0] == "c2c_ami":
                found.add(name[1])
    return found


def test_imports_point_one_way():
    broken = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if "testing" in path.relative_to(PACKAGE).parts:
            continue
        part = part_of(path)
        for target in imported_parts(path) & NEVER.get(part, set()):
            broken.append(f"{path.relative_to(PACKAGE.parent)} imports c2c_ami.{target}")
    assert not broken, "imports against docs/architecture.md:\n" + "\n".join(broken)


def test_the_running_gateway_never_imports_the_fake_ami():
    users = [str(p.relative_to(PACKAGE.parent)) for p in PACKAGE.rglob("*.py")
             if "testing" not in p.relative_to(PACKAGE).parts and "testing" in imported_parts(p)]
    assert users == []


def test_the_rule_reader_sees_imports():
    """The reader itself: pbx/events.py imports calls, and api/common.py imports app_keys."""
    assert "calls" in imported_parts(PACKAGE / "pbx" / "events.py")
    assert "app_keys" in imported_parts(PACKAGE / "api" / "common.py")
    assert "patterns" in imported_parts(PACKAGE / "api" / "common.py")      # from .. import patterns
