"""A 2 x 2 sweep through ``launcher=submitit_slurm`` on a real Slurm cluster (``scripts/slurm_cluster.sh up``).

One job is requeued mid-run (``scontrol requeue``, what submitit itself does on a time limit): Slurm sends it SIGTERM,
the run is marked ``interrupted``, and the same Slurm job, started again, continues it with ``resume=auto`` (set by the
launcher config) from its last checkpoint. Every job must end with the metrics of a local run of the same config.

Without a cluster the test skips with the reason; with ``QDSBENCH_REQUIRE_SLURM=1`` (set by ``.ci/run``) it fails.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO_ROOT
from omegaconf import OmegaConf

pytestmark = pytest.mark.slurm

REQUIRED = os.environ.get("QDSBENCH_REQUIRE_SLURM") == "1"
SWEEP_TIMEOUT_S = 600

# The same 2 x 2 sweep on Slurm and locally; batches of 16 (100 steps an epoch) and 5 epochs leave seconds (on an
# idle fast machine too) between the first epoch's checkpoint and the end of fit, in which the requeue lands.
EPOCHS = 5
COMMON = [
    "experiment=digits_vit",
    "seed=0,1",
    "attention=softmax,sdpa",
    "trainer=cpu",
    f"trainer.max_epochs={EPOCHS}",
    "data.batch_size=16",
    "logger=none",
    "callbacks=minimal",
    "trainer.enable_progress_bar=false",
    "num_threads=1",
    "extras.print_config=false",
]


def _unavailable(reason: str) -> None:
    if REQUIRED:
        pytest.fail(f"QDSBENCH_REQUIRE_SLURM=1 but {reason} (start it with scripts/slurm_cluster.sh up)", pytrace=False)
    pytest.skip(f"no Slurm cluster: {reason} (scripts/slurm_cluster.sh up starts one)")


def _run(*cmd: str, timeout: int = 30) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def default_partition() -> str:
    """The default partition of a cluster whose nodes take jobs, or skip / fail with the reason."""
    if shutil.which("sinfo") is None or shutil.which("scontrol") is None:
        _unavailable("sinfo / scontrol not found (slurm-wlm is not installed)")
    info = _run("sinfo", "-h", "-o", "%P|%a|%T")
    if info.returncode != 0:
        _unavailable(f"sinfo failed: {(info.stderr or info.stdout).strip()}")
    ready = {"idle", "mixed", "allocated", "completing"}
    rows = [line.split("|") for line in info.stdout.split() if line.count("|") == 2]
    usable = [
        (name, state.rstrip("*~#!%$@^"))
        for name, avail, state in rows
        if avail == "up" and state.rstrip("*~#!%$@^") in ready
    ]
    if not usable:
        _unavailable(f"no partition is up with a node that takes jobs (sinfo: {info.stdout.strip() or 'nothing'})")
    default = [name for name, _ in usable if name.endswith("*")]
    return (default or [usable[0][0]])[0].rstrip("*")


def _sweep(log_dir: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "qdsbench.cli.train", "-m", *COMMON, f"paths.log_dir={log_dir}", *extra]


def _start(cmd: list[str], out: Path) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    with open(out, "w") as handle:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT)


def _wait(proc: subprocess.Popen, deadline: float) -> int:
    return proc.wait(timeout=max(1.0, deadline - time.time()))


def _records(log_dir: Path) -> dict[str, dict]:
    """run.json of every run under log_dir, by config hash (same config on Slurm and locally: same hash)."""
    found = [json.loads(p.read_text()) for p in sorted(log_dir.rglob("run.json"))]
    by_hash = {r["config_hash"]: r for r in found}
    assert len(by_hash) == len(found), f"two runs with one config hash under {log_dir}"
    return by_hash


def _summary(record: dict) -> dict:
    return json.loads((Path(record["run_dir"]) / "summary.json").read_text())


def _tail(path: Path, lines: int = 40) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.is_file() else f"({path} missing)"


def _job_logs(sweep_dir: Path, job_id: str) -> str:
    folder = sweep_dir / ".submitit" / job_id
    return "\n".join(f"--- {p.name}:\n{_tail(p)}" for p in sorted(folder.glob("*_log.*")))


def _poll(what: str, check, deadline: float, proc: subprocess.Popen, out: Path, interval: float = 0.2):
    """Poll check() until it returns something truthy; fail with the sweep's output past the deadline or if the
    sweep ends first."""
    while time.time() < deadline:
        value = check()
        if value:
            return value
        if proc.poll() is not None:
            pytest.fail(f"the Slurm sweep ended (exit {proc.returncode}) while waiting for {what}:\n{_tail(out)}")
        time.sleep(interval)
    pytest.fail(f"timed out waiting for {what}:\n{_tail(out)}")


def _first_checkpointed_run(log_dir: Path) -> Path | None:
    for ckpt in sorted(log_dir.glob("train/multiruns/*/*/checkpoints/last.ckpt")):
        return ckpt.parents[1]  # last.ckpt is renamed into place complete (AtomicCheckpointIO)
    return None


def _job_state(job_id: str) -> str:
    return _run("squeue", "-h", "-j", job_id, "-o", "%T").stdout.strip()


def test_slurm_sweep_with_a_requeued_job_matches_local_runs(tmp_path):
    partition = default_partition()  # in the test, not a fixture: with QDSBENCH_REQUIRE_SLURM=1 it FAILS, not errors
    slurm_logs, local_logs = tmp_path / "slurm", tmp_path / "local"
    slurm_out, local_out = tmp_path / "slurm_sweep.out", tmp_path / "local_sweep.out"
    on_slurm = [
        "launcher=submitit_slurm",
        f"hydra.launcher.partition={partition}",
        "hydra.launcher.cpus_per_task=1",
        "hydra.launcher.gpus_per_node=null",
        "hydra.launcher.mem_gb=null",
        "hydra.launcher.timeout_min=15",
    ]
    started = time.time()
    deadline = started + SWEEP_TIMEOUT_S
    sweep = _start(_sweep(slurm_logs, *on_slurm), slurm_out)
    local = _start(_sweep(local_logs), local_out)  # the reference: the same configs, one after another, no Slurm
    try:
        # 1. The first job to write its first epoch's checkpoint is requeued while it trains on.
        run_dir = _poll(
            "a first-epoch checkpoint", lambda: _first_checkpointed_run(slurm_logs), deadline, sweep, slurm_out
        )
        sweep_dir = run_dir.parent
        job_id = str(OmegaConf.load(run_dir / ".hydra" / "hydra.yaml").hydra.job.id)  # submitit's <array>_<task>
        requeue = _run("scontrol", "requeue", job_id)
        assert requeue.returncode == 0, f"scontrol requeue {job_id}: {requeue.stderr.strip()}"
        requeued_at = time.time()

        # 2. SIGTERM: the run says interrupted (and exits 143); Slurm holds the requeued job (BeginTime, ~2 min).
        def interrupted():
            try:
                record = json.loads((run_dir / "run.json").read_text())
            except ValueError:  # caught mid-write
                return False
            assert record["status"] != "finished", (
                f"job {job_id} finished before the requeue reached it; the requeue must land mid-run:\n"
                + _job_logs(sweep_dir, job_id)
            )
            return record["status"] == "interrupted"

        _poll(f"job {job_id}'s run to be marked interrupted after the requeue", interrupted, deadline, sweep, slurm_out)
        _poll(f"job {job_id} to be pending again", lambda: _job_state(job_id) == "PENDING", deadline, sweep, slurm_out)
        release = _run("scontrol", "update", f"JobId={job_id}", "StartTime=now")  # start it now, not in 2 minutes
        assert release.returncode == 0, f"scontrol update JobId={job_id} StartTime=now: {release.stderr.strip()}"

        # 3. Every job ends; the requeued one restarted once, as the same Slurm job.
        assert _wait(sweep, deadline) == 0, (
            f"the Slurm sweep failed:\n{_tail(slurm_out)}\n{_job_logs(sweep_dir, job_id)}"
        )
        slurm_done = time.time()
        assert _wait(local, deadline) == 0, f"the local sweep failed:\n{_tail(local_out)}"
        shown = _run("scontrol", "show", "job", job_id).stdout
        assert "Restarts=1" in shown, f"job {job_id} was not restarted by Slurm:\n{shown}"
        # srun's line for the first attempt: it left on SIGTERM with 143 (not killed after KillWait)
        errors = "".join(p.read_text(errors="replace") for p in (sweep_dir / ".submitit" / job_id).glob("*_log.err"))
        assert "task 0: Exited with exit code 143" in errors, errors[-3000:]
    finally:
        for proc in (sweep, local):
            if proc.poll() is None:
                proc.kill()
                _wait(proc, time.time() + 10)
        if sweep.returncode != 0:  # leave no job of a failed test on the cluster
            arrays = {p.name.split("_")[0] for p in slurm_logs.glob("train/multiruns/*/.submitit/*") if p.is_dir()}
            if arrays:
                _run("scancel", *sorted(arrays))

    # 4. Four finished run records on each side, one per config.
    on_cluster, reference = _records(slurm_logs), _records(local_logs)
    assert len(on_cluster) == 4 and set(on_cluster) == set(reference), (sorted(on_cluster), sorted(reference))
    assert all(r["status"] == "finished" for r in [*on_cluster.values(), *reference.values()])

    # 5. The requeued run resumed once from its own last checkpoint, in its own directory; the others never did.
    requeued = [r for r in on_cluster.values() if r.get("resumed")]
    assert [Path(r["run_dir"]).resolve() for r in requeued] == [run_dir.resolve()], [r["run_dir"] for r in requeued]
    (resumed,) = requeued[0]["resumed"]
    # "from" is relative to the run's directory (a run may be moved), so it names this run's own checkpoint
    assert (run_dir / resumed["from"]).resolve() == (run_dir / "checkpoints" / "last.ckpt").resolve(), resumed
    val_rows = [line for line in (run_dir / "metrics.csv").read_text().splitlines() if ",val/acc," in line]
    assert len(val_rows) == EPOCHS, val_rows  # one per epoch, none duplicated by the resume

    # 6. Metrics identical to the local runs of the same configs.
    for config_hash, record in on_cluster.items():
        got, want = _summary(record), _summary(reference[config_hash])
        for key in ("val/acc", "val/loss"):
            assert got["final"][key] == want["final"][key], (record["run_dir"], key, got["final"], want["final"])
        assert got["test"] == want["test"], (record["run_dir"], got["test"], want["test"])
        assert got["epochs"] == want["epochs"] == EPOCHS and got["global_step"] == want["global_step"]
    print(
        f"slurm sweep {slurm_done - started:.0f}s (requeue of {job_id} at {requeued_at - started:.0f}s), "
        f"test {time.time() - started:.0f}s"
    )
