"""The verbs that read a finished run refuse a directory that is not one before Hydra creates anything there.

Their outputs live inside the run (<run_dir>/eval/, analysis/, convert/, longctx_eval/): without the check, a typo
in run_dir= left a new directory tree at the mistyped path before the error came.
"""

from __future__ import annotations

import importlib

import pytest

VERBS = {
    "eval": "qdsbench.cli.eval",
    "analyze": "qdsbench.cli.analyze",
    "convert": "qdsbench.cli.convert",
    "eval-longctx": "qdsbench.cli.eval_longctx",
}


def _run(verb: str, argv: list[str], capsys, monkeypatch) -> tuple[int, str]:
    from hydra.core.global_hydra import GlobalHydra

    main = importlib.import_module(VERBS[verb]).main
    GlobalHydra.instance().clear()
    monkeypatch.setattr("sys.argv", [f"qdsbench {verb}", *argv])
    capsys.readouterr()
    try:
        main()
        code = 0
    except SystemExit as err:
        code = err.code if isinstance(err.code, int) else 1
    finally:
        GlobalHydra.instance().clear()
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def _extra(verb: str) -> list[str]:
    return ["attention=monarch"] if verb == "convert" else []


@pytest.mark.parametrize("verb", VERBS)
def test_a_mistyped_run_dir_is_one_line_and_creates_nothing(verb, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    missing = tmp_path / "logs" / "train" / "runs" / "typo"
    code, text = _run(verb, [f"run_dir={missing}", *_extra(verb)], capsys, monkeypatch)
    assert code == 2, text
    hint = "pass a qdsbench run directory (e.g. logs/train/runs/<time>)"
    assert text.strip() == f"qdsbench: error: run_dir={missing} does not exist; {hint}"
    assert not (tmp_path / "logs").exists()  # nothing at the mistyped path, no log tree either


@pytest.mark.parametrize("verb", VERBS)
def test_a_directory_that_is_not_a_run_is_refused_untouched_also_given_bare(verb, tmp_path, capsys, monkeypatch):
    other = tmp_path / "not_a_run"
    other.mkdir()
    (other / "notes.txt").write_text("mine\n")
    code, text = _run(verb, [str(other), *_extra(verb)], capsys, monkeypatch)  # bare: taken as run_dir=
    assert code == 2 and f"run_dir={other} has no .hydra/config.yaml" in text, text
    assert sorted(p.name for p in other.iterdir()) == ["notes.txt"]


@pytest.mark.parametrize("verb", VERBS)
def test_no_run_dir_names_the_missing_key_and_help_needs_none(verb, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, text = _run(verb, _extra(verb), capsys, monkeypatch)
    assert code == 2 and f"qdsbench: error: qdsbench {verb} needs run_dir=<run directory>" in text, text
    code, text = _run(verb, ["--help"], capsys, monkeypatch)
    assert code == 0 and text.startswith(f"usage: qdsbench {verb} "), text
    assert list(tmp_path.iterdir()) == []


def test_a_sweep_over_run_dirs_checks_every_value(tmp_path, capsys, monkeypatch):
    """One bad value among several fails before the first job, naming that value."""
    good = tmp_path / "good"
    (good / ".hydra").mkdir(parents=True)
    (good / ".hydra" / "config.yaml").write_text("seed: 0\n")
    code, text = _run("eval", ["-m", f"run_dir={good},{tmp_path / 'bad'}"], capsys, monkeypatch)
    assert code == 2 and f"run_dir={tmp_path / 'bad'} does not exist" in text, text
    assert sorted(p.name for p in good.iterdir()) == [".hydra"]


def test_a_used_run_dir_is_refused_unless_resume_names_it_by_any_path(tmp_path, monkeypatch):
    """`hydra.run.dir=D resume=D` continues D however D is spelt (relative or absolute); a run dir that holds a
    record is otherwise refused before Hydra writes its config snapshot there."""
    from qdsbench.cli.train import refuse_used_run_dir
    from qdsbench.errors import PreflightError

    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs" / "a").mkdir(parents=True)
    (tmp_path / "runs" / "a" / "run.json").write_text("{}")
    for resume in ("runs/a", str(tmp_path / "runs" / "a"), "./runs/a/"):
        refuse_used_run_dir(["hydra.run.dir=runs/a", f"resume={resume}"])
    for extra in ([], ["resume=auto"], ["resume=runs/b"]):
        with pytest.raises(PreflightError, match="runs/a already holds a run record"):
            refuse_used_run_dir(["hydra.run.dir=runs/a", *extra])
    assert not (tmp_path / "runs" / "a" / ".hydra").exists()
