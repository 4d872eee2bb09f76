"""The README's promises hold: its set-up commands exist in the Makefile and CI runs the test command."""

import re

from conftest import REPO_ROOT

REQUIRED_TARGETS = ("help", "install", "run", "test", "test-full", "lint", "clean")


def makefile_targets() -> set[str]:
    text = (REPO_ROOT / "Makefile").read_text()
    return set(re.findall(r"^([a-zA-Z][\w-]*):", text, flags=re.M))


def test_readme_make_commands_are_makefile_targets():
    readme = (REPO_ROOT / "README.md").read_text()
    commands = set(re.findall(r"\bmake ([a-z][\w-]*)", readme))
    assert {"run", "test"} <= commands
    missing = commands - makefile_targets()
    assert not missing, f"README mentions make targets that do not exist: {missing}"


def test_makefile_has_required_targets():
    assert set(REQUIRED_TARGETS) <= makefile_targets()


def test_ci_calls_make_test():
    ci = (REPO_ROOT / ".ci" / "run").read_text()
    assert re.search(r"^\s*make test\b", ci, flags=re.M)


def test_ci_enforces_the_style_that_pre_commit_applies():
    """One formatter, checked in CI: `.ci/run` calls `make lint`, which runs ruff check and ruff format --check on the
    same paths the pre-commit hooks cover."""
    ci = (REPO_ROOT / ".ci" / "run").read_text()
    assert re.search(r"^\s*make lint\b", ci, flags=re.M)
    makefile = (REPO_ROOT / "Makefile").read_text()
    lint_recipe = re.search(r"^lint:.*\n((?:\t.*\n)+)", makefile, flags=re.M).group(1)
    assert "ruff check" in lint_recipe and "ruff format --check" in lint_recipe
    hooks = (REPO_ROOT / ".pre-commit-config.yaml").read_text()
    assert "ruff check" in hooks and "ruff format" in hooks
    paths = re.search(r"^LINT_PATHS := (.+)$", makefile, flags=re.M).group(1).split()
    assert f"files: ^({'|'.join(paths)})/" in hooks


def test_required_layout_exists():
    for name in ("conf", "qdsbench", "scripts", "results", "tests", "pyproject.toml", "Makefile", "README.md"):
        assert (REPO_ROOT / name).exists(), name


def test_only_lightning_pytorch_namespace_is_imported():
    offenders = [
        str(p.relative_to(REPO_ROOT))
        for p in list((REPO_ROOT / "qdsbench").rglob("*.py")) + list((REPO_ROOT / "conf").rglob("*.yaml"))
        if re.search(r"^\s*(import|from) pytorch_lightning|_target_: pytorch_lightning", p.read_text(), flags=re.M)
    ]
    assert not offenders
