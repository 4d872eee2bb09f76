"""The package's layers, read from the source: cli/ imports the library, never the reverse; errors live in one module.

A library module that imported qdsbench.cli would pull the command-line layer (Hydra apps, argv handling) into
scripts, studies and tests, and could loop back on itself; an error class defined outside qdsbench/errors.py is one a
caller has to hunt for. Both are checked on the syntax tree, so no module is imported (and nothing heavy runs).
"""

from __future__ import annotations

import ast
import builtins
from pathlib import Path

import pytest
from conftest import REPO_ROOT

PACKAGE = REPO_ROOT / "qdsbench"
CLI = PACKAGE / "cli"
LIBRARY = sorted(p for p in PACKAGE.rglob("*.py") if CLI not in p.parents)
EXCEPTIONS = {n for n, v in vars(builtins).items() if isinstance(v, type) and issubclass(v, Exception)}


def module_name(path: Path, root: Path = REPO_ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, root: Path = REPO_ROOT) -> list[str]:
    """Every module an import statement (absolute or relative) or an ``import_module("...")`` names in ``path``."""
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    names = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            names += [base] + [f"{base}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module":
            if node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
                names.append(node.args[0].value)
    return names


def test_the_checker_sees_every_kind_of_import(tmp_path):
    path = tmp_path / "qdsbench" / "tasks" / "probe.py"
    path.parent.mkdir(parents=True)
    forms = [
        "import qdsbench.cli.a",
        "from qdsbench.cli import b",
        "from ..cli import c",
        "from .. import cli",
        "x = importlib.import_module('qdsbench.cli.d')",
    ]
    path.write_text("\n".join(forms) + "\n")
    names = set(imported_modules(path, tmp_path))
    assert {"qdsbench.cli.a", "qdsbench.cli.b", "qdsbench.cli.c", "qdsbench.cli", "qdsbench.cli.d"} <= names


@pytest.mark.parametrize("path", LIBRARY, ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_no_library_module_imports_the_cli(path):
    upward = [n for n in imported_modules(path) if n == "qdsbench.cli" or n.startswith("qdsbench.cli.")]
    assert not upward, f"{path.relative_to(REPO_ROOT)} imports {upward}: cli/ may import the library, not the reverse"


def test_errors_module_imports_nothing_of_the_package():
    """Every layer imports qdsbench.errors, so it must stand on the ground floor."""
    assert not [n for n in imported_modules(PACKAGE / "errors.py") if n.startswith("qdsbench")]


def exception_classes(path: Path) -> list[str]:
    """Classes of ``path`` whose bases are (transitively, by name) Exception subclasses."""
    known = set(EXCEPTIONS) | set(errors_defined())
    tree = ast.parse(path.read_text())
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and any(ast.unparse(b).split(".")[-1] in known for b in node.bases):
            found.append(node.name)
            known.add(node.name)
    return found


def errors_defined() -> list[str]:
    tree = ast.parse((PACKAGE / "errors.py").read_text())
    return [n.name for n in tree.body if isinstance(n, ast.ClassDef)]


def test_every_error_class_is_defined_in_qdsbench_errors():
    """A BaseException used as a signal inside one module (train.RunInterrupted) is no error and may stay."""
    elsewhere = {
        str(p.relative_to(REPO_ROOT)): names
        for p in PACKAGE.rglob("*.py")
        if p != PACKAGE / "errors.py" and (names := exception_classes(p))
    }
    assert not elsewhere, f"define these in qdsbench/errors.py: {elsewhere}"
    assert {"UserError", "UnknownNameError", "DatasetMissingError", "PreflightError"} <= set(errors_defined())
