"""The layers of weight handling: ppdet.checkpoint (low) <- zoo core <- engine <- publishing.

Checked on the source (every import statement, also those inside functions) and by importing
``ppdet.checkpoint`` in a fresh interpreter.
"""

import ast
import os
import subprocess
import sys

from tests.conftest import ROOT

PPDET = os.path.join(ROOT, "ppdet")
ABOVE_ENGINE = ("ppdet.zoo.publish", "ppdet.zoo.fingerprint", "ppdet.zoo.__main__")


def imports(path: str) -> set[str]:
    """Every ``ppdet...`` module a file imports (absolute names; ``from a import b`` gives a.b too)."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
    return {m for m in found if m == "ppdet" or m.startswith("ppdet.")}


def modules(folder: str):
    for base, _, files in os.walk(os.path.join(PPDET, folder)):
        for name in sorted(files):
            if name.endswith(".py"):
                path = os.path.join(base, name)
                yield os.path.relpath(path, ROOT), imports(path)


def test_checkpoint_package_imports_only_itself_and_atomic_io():
    for path, found in modules("checkpoint"):
        bad = {
            m
            for m in found
            if not m.startswith(("ppdet.checkpoint", "ppdet.atomic_io", "ppdet.errors"))
        }
        assert not bad, f"{path} imports {sorted(bad)}"


def test_zoo_core_and_engine_never_import_publishing():
    checked = 0
    for folder in ("zoo", "engine"):
        for path, found in modules(folder):
            if path.replace(os.sep, "/").endswith(
                ("zoo/publish.py", "zoo/fingerprint.py", "zoo/__main__.py")
            ):
                continue
            bad = {m for m in found if m.startswith(ABOVE_ENGINE)}
            if folder == "zoo":  # the zoo's download/index/fetch/weights layer is below the engine
                bad |= {m for m in found if m.startswith("ppdet.engine")}
            assert not bad, f"{path} imports {sorted(bad)}"
            checked += 1
    assert checked >= 10


def test_importing_ppdet_checkpoint_loads_no_zoo_engine_or_paddle():
    code = (
        "import sys, ppdet.checkpoint\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'paddle' "
        "or m.startswith(('ppdet.zoo', 'ppdet.engine', 'ppdet.modeling'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=ROOT),
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    assert out.strip() == "[]"
