"""The long-context decoder: cached decoding equals the full pass, backends plug in, the LM task learns, and a
trained run evaluates end to end with every Delta mode."""

import csv

import pytest
import torch
from conftest import REPO_ROOT, compose_config
from omegaconf import OmegaConf

from qdsbench.longctx.evaluate import Evaluator, evaluate_methods, spearman_rows
from qdsbench.models.backend_attention import set_backend
from qdsbench.models.decoder import create_decoder_lm


def tiny(attention=None, depth=2):
    torch.manual_seed(0)
    return create_decoder_lm(
        attention=attention or {"name": "sdpa"}, vocab_size=50, embed_dim=32, depth=depth, num_heads=2
    ).eval()


def test_kv_cache_decode_equals_the_full_pass():
    model, x = tiny(), torch.randint(0, 50, (2, 30))
    full = model(x)
    logits, cache = model(x[:, :20], return_cache=True)
    steps = [logits]
    for t in range(20, 30):
        step, cache = model(x[:, t : t + 1], past=cache, return_cache=True)
        steps.append(step)
    torch.testing.assert_close(torch.cat(steps, 1), full, atol=1e-5, rtol=1e-5)
    block = model(x[:, 20:], past=model(x[:, :20], return_cache=True)[1])  # several new tokens at once
    torch.testing.assert_close(block, full[:, 20:], atol=1e-5, rtol=1e-5)


def test_sparse_prefill_with_a_covering_window_is_full_attention():
    model, x = tiny(), torch.randint(0, 50, (2, 40))
    full = model(x)
    for method in (
        {"name": "sink_window", "window": 40, "sinks": 0},
        {"name": "delta", "window": 8, "sinks": 2, "gamma": 1, "tail_min": 4},
    ):
        set_backend(model, {**method, "causal": True})
        torch.testing.assert_close(model(x), full, atol=1e-5, rtol=1e-5)
    set_backend(model, {"name": "sink_window", "window": 4, "sinks": 1, "causal": True})
    assert not torch.allclose(model(x), full, atol=1e-3)


def test_decoder_has_the_notes_size():
    model = create_decoder_lm(attention={"name": "sdpa"}, vocab_size=384)
    assert 0.8e6 < sum(p.numel() for p in model.parameters()) < 1.0e6
    with pytest.raises(ValueError, match="even head size"):
        create_decoder_lm(attention={"name": "sdpa"}, vocab_size=10, embed_dim=18, num_heads=2)


def test_spearman_of_rows():
    a = torch.tensor([[0.1, 0.5, 0.2, 0.9]])
    assert spearman_rows(a, a * 3).item() == pytest.approx(1.0)
    assert spearman_rows(a, -a).item() == pytest.approx(-1.0)


def lm_cfg(tmp_path, steps=60):
    return compose_config(
        [
            "experiment=delta/train",
            "logger=none",
            "trainer.enable_progress_bar=false",
            "trainer.accelerator=cpu",
            f"paths.output_dir={tmp_path / 'run'}",
            f"paths.log_dir={tmp_path}",
            f"data.cache_dir={tmp_path / 'cache'}",
            "data.tasks=[niah_single_1,vt]",
            f"data.curriculum=[{{length:64,steps:{steps},batch_size:8}}]",
            f"task.total_steps={steps}",
            "task.warmup_steps=5",
            f"trainer.val_check_interval={steps}",
            "trainer.log_every_n_steps=5",
            "data.eval_lengths=[64]",
            "data.val_samples=4",
            "data.test_samples=8",
            "model.embed_dim=32",
            "model.depth=2",
            "model.num_heads=2",
        ]
    )


def test_lm_training_lowers_the_loss_and_the_run_evaluates(tmp_path, monkeypatch):
    monkeypatch.setenv("QDSBENCH_CACHE", str(tmp_path / "cache"))
    from qdsbench.longctx.run_eval import load_decoder, run_eval
    from qdsbench.train import train

    train(lm_cfg(tmp_path))
    rows = [r for r in csv.DictReader(open(tmp_path / "run" / "metrics.csv")) if r["metric"] == "train/loss"]
    losses = [float(r["value"]) for r in rows]
    assert losses[-1] < 0.75 * losses[0]

    _, model, datamodule, _ = load_decoder(tmp_path / "run", samples=8)
    evaluator = Evaluator(model, datamodule.generator.vocab.eos, last_k=8)
    methods = [{"name": "sink_window", "window": 8, "sinks": 2}] + [
        {"name": "delta", "window": 8, "sinks": 2, "gamma": 4, "tail_min": 4, "mode": m}
        for m in ("sparse", "recompute", "delta", "tail_only")
    ]
    rows = evaluate_methods(evaluator, datamodule, methods, [64], log=lambda *_: None)
    by = {(r["method"], r["task"]): r for r in rows}
    assert len(rows) == 2 * 6 and {r["samples"] for r in rows} == {8}
    for task in ("niah_single_1", "vt"):
        full = by[("full", task)]
        assert full["cos_L0"] == pytest.approx(1.0) and full["spearman_L1"] == pytest.approx(1.0)
        sparse = by[("sparse_W8_S2_g4", task)]
        assert by[("sparse_W8_S2", task)]["answer_nll"] == pytest.approx(sparse["answer_nll"], rel=1e-5)
        assert sparse["cos_L1"] < 0.999  # the sparse prefill changed the layer-1 outputs
        assert sparse["spearman_L0"] == pytest.approx(1.0)  # layer 0 q, k come from the embeddings alone
        assert 0 <= sparse["score"] <= 100

    cfg = compose_config(
        [
            f"run_dir={tmp_path / 'run'}",
            "attention=delta",
            "attention.window=8",
            "attention.tail_min=4",
            "attention.gamma=4",
            "lengths=[64]",
            "samples=4",
        ],
        config_name="eval_longctx",
    )
    OmegaConf.set_struct(cfg, False)
    out = run_eval(cfg)
    assert {r["task"] for r in out} == {"niah_single_1", "vt"} and all(r["method"] == "delta_W8_S4_g4" for r in out)
    assert len(list((tmp_path / "run" / "longctx_eval").glob("delta_W8_S4_g4_*.csv"))) == 1


def test_eval_refuses_a_non_decoder_run(tmp_path):
    from qdsbench.longctx.run_eval import run_eval

    cfg = compose_config([f"run_dir={tmp_path}", "attention=monarch"], config_name="eval_longctx")
    with pytest.raises(ValueError, match="valid choices: sdpa, sink_window, delta"):
        run_eval(cfg)


@pytest.mark.slow
def test_reproduce_delta_end_to_end(tmp_path, monkeypatch):
    """The Delta study on a tiny trained run: the measurements write their records, every table and the plot are
    written, and the thin script scripts/reproduce_delta.py re-renders the same tables from the records alone
    (--stage tables), still quoting the measurement's argv."""
    import json
    import os
    import subprocess
    import sys

    from qdsbench.studies import delta
    from qdsbench.train import train

    monkeypatch.setenv("QDSBENCH_CACHE", str(tmp_path / "cache"))
    train(lm_cfg(tmp_path, steps=20))
    out = tmp_path / "results"
    argv = [
        "--run-dir",
        str(tmp_path / "run"),
        "--samples",
        "2",
        "--lengths",
        "64,128",
        "--windows",
        "8,16",
        "--gammas",
        "8,16",
        "--out",
        str(out),
    ]
    threads = torch.get_num_threads()
    try:
        delta.main(argv)
    finally:
        torch.set_num_threads(threads)
    tables = (
        "accuracy.md",
        "accuracy.csv",
        "tasks.md",
        "intrinsic.md",
        "nll.md",
        "gamma.md",
        "notail.md",
        "locality.md",
        "query_locality.md",
        "run.json",
    )
    for name in (
        *tables,
        "grid_N64.csv",
        "grid_N128.csv",
        "grid.meta.json",
        "locality.csv",
        "locality.meta.json",
        "query_locality.csv",
        "query_locality.meta.json",
        "accuracy_vs_ratio.png",
    ):
        assert (out / name).stat().st_size > 0, name
    rows = list(csv.DictReader(open(out / "accuracy.csv")))
    assert {(r["N"], r["W"]) for r in rows} == {("64", "8"), ("64", "16"), ("128", "8"), ("128", "16")}
    assert f"`.venv/bin/python scripts/reproduce_delta.py {' '.join(argv)}`" in (out / "accuracy.md").read_text()
    assert json.loads((out / "run.json").read_text())["argv"] == argv  # the argv given, not pytest's
    before = {name: (out / name).read_bytes() for name in tables}

    env = {**os.environ, "QDSBENCH_CACHE": str(tmp_path / "cache")}
    subprocess.run(
        [sys.executable, "scripts/reproduce_delta.py", "--stage", "tables", "--out", str(out)],
        check=True,
        cwd=str(REPO_ROOT),
        env=env,
    )
    assert {name: (out / name).read_bytes() for name in tables} == before  # the measurement's argv, not this one


def test_method_labels_keep_ablations_apart():
    from qdsbench.longctx.evaluate import method_label

    base = {"name": "delta", "window": 32, "sinks": 4, "gamma": 16, "mode": "delta"}
    assert method_label(base) == "delta_W32_S4_g16"
    assert method_label({**base, "tail": False}) == "delta_W32_S4_g16_notail"
    matched = {"name": "sink_window", "window": 48, "sinks": 4, "matched_to": 32}
    assert method_label(matched) == "sparse_W48_S4_matched32"
    assert method_label({"name": "sdpa"}) == "full"
