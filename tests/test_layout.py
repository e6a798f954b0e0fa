"""Architecture rules of DESIGN.md that a test can check."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "kexue_jax"

# Only nn/, train/ and assembled models (files named *_model.py) may import Flax.
FLAX_ALLOWED_DIRS = {"nn", "train"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _pure_files() -> list[Path]:
    out = []
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(PKG)
        if rel.parts[0] in FLAX_ALLOWED_DIRS or path.name.endswith("_model.py") or rel.name == "cli.py":
            continue
        out.append(path)
    return out


@pytest.mark.parametrize("path", _pure_files(), ids=lambda p: str(p.relative_to(PKG)))
def test_pure_core_does_not_import_flax(path):
    flax = sorted(n for n in _imports(path) if n == "flax" or n.startswith("flax."))
    assert not flax, f"{path.relative_to(PKG)} imports {flax}: move the module into nn/ or an *_model.py"


def test_no_catch_all_utils_module():
    assert not list(PKG.rglob("utils.py")), "DESIGN.md: one idea per file, no utils.py"


def test_no_pmap():
    offenders = [p for p in PKG.rglob("*.py") if "jax.pmap" in p.read_text() or "pmap(" in p.read_text()]
    assert not offenders, f"DESIGN.md forbids pmap: {offenders}"


_PACKAGES = sorted(p.parent.relative_to(PKG.parent).as_posix().replace("/", ".") for p in PKG.glob("*/__init__.py"))


@pytest.mark.parametrize("package", _PACKAGES)
def test_every_public_name_resolves(package):
    """``__all__`` is the public surface: each name, eager or lazily imported, must exist."""
    import importlib

    module = importlib.import_module(package)
    missing = [name for name in getattr(module, "__all__", ()) if not hasattr(module, name)]
    assert not missing, f"{package}.__all__ names {missing}, which do not resolve"
