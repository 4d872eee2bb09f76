"""The console script itself (a fresh interpreter, Hydra's real start-up) prints the catalogue's line and exits 2.

Every bad input and fault is a case of tests/test_fault_catalogue.py, run in-process; this checks, for one case
caught before Hydra starts and one caught after, that the installed command says the same.
"""

import pytest
from conftest import CONF_DIR, compose_config, run_cli

from qdsbench.cli.preflight import preflight
from qdsbench.errors import USER_ERRORS
from qdsbench.train import train

QUICK = ["experiment=digits_vit", "logger=none", "callbacks=minimal", "trainer.enable_progress_bar=false"]


def in_process_error(argv: list[str], tmp_path) -> str:
    overrides = [*QUICK, *argv, f"paths.log_dir={tmp_path}", f"paths.output_dir={tmp_path / 'run'}"]
    try:
        preflight(CONF_DIR, "train", overrides)
        train(compose_config(overrides))
    except USER_ERRORS as err:
        return str(err)
    raise AssertionError(f"no error for {argv}")


@pytest.mark.parametrize("overrides", [["attention=softmaxx"], ["trainer.max_epochs=-2"]], ids=" ".join)
def test_cli_prints_exactly_that_line(tmp_path, overrides):
    result = run_cli("qdsbench-train", *QUICK, *overrides, f"hydra.run.dir={tmp_path / 'run'}")
    assert result.returncode == 2, result.stderr[-2000:]
    lines = [line for line in result.stderr.splitlines() if line.startswith("qdsbench: error:")]
    assert lines == [f"qdsbench: error: {in_process_error(overrides, tmp_path / 'x')}"], result.stderr[-2000:]
