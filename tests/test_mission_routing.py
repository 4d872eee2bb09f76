"""Every model routes every attention layer through the backend it was given (``attention=<name>``).

Built from the composed Hydra config, as ``qdsbench-train`` builds it. For each model and backend: every attention
module in the model is an instance of the class registered under that name, configured with the config's options, a
separate object per layer; a forward pass calls each of them exactly once (forward hooks); and where the backend
forms an explicit matrix, the matrix it captured is the one the layer used (out = P v) with the defining marginals:
row sums 1 for the row-stochastic ones, row AND column sums 1 for the doubly stochastic ones. A factory that forgets
to install the backend (every layer keeps BackendAttention's default softmax) fails all of these.
"""

import pytest
import torch
from conftest import compose_config

from qdsbench import attention
from qdsbench.attention.base import AttentionBackend
from qdsbench.builders import build_net

DOUBLY_STOCHASTIC = {"qr", "qontot", "sinkhorn"}
ROW_STOCHASTIC = {"softmax", "normsoftmax_std", "normsoftmax_var", "monarch", "sink_window"}


def vit_images(cfg, batch=2):
    return torch.randn(batch, cfg.model.in_chans, cfg.model.image_size, cfg.model.image_size)


def tokens(cfg, batch=2):
    return torch.randint(0, cfg.model.vocab_size, (batch, cfg.model.seq_len))


MODELS = {
    # QDSFormer's MNIST-family ViT: 7 stripes + CLS = 8 tokens, 3 layers
    "vit_stripes": (["experiment=qds/vit_mnist_family", "model.depth=3"], vit_images),
    # 4x4 patches of an 8x8 digit + CLS = 5 tokens: N is not a multiple of Monarch's block, b != sqrt(N)
    "vit_patch": (["experiment=digits_vit", "model.tokenizer=patch", "model.patch_size=4"], vit_images),
    "itransformer": (
        ["experiment=itransformer/etth1", "model.d_model=16", "model.num_heads=2", "model.depth=2"],
        lambda cfg: torch.randn(2, cfg.data.seq_len, 8),
    ),
    "tagger": (["experiment=analysis/switch_tagging", "model.depth=2"], tokens),
    "decoder_lm": (
        ["experiment=delta/train", "model.depth=2", "model.embed_dim=32", "model.num_heads=2"],
        lambda cfg: torch.randint(0, cfg.model.vocab_size, (2, 40)),
    ),
    "yang_shallow": (["experiment=analysis/cooccurrence", "model.m=8", "model.m1=8"], tokens),
}
NON_CAUSAL = [
    "softmax",
    "sdpa",
    "normsoftmax_std",
    "normsoftmax_var",
    "sinkhorn",
    "qr",
    "monarch",
    "sigmoid",
    "performer",
    "nystrom",
    "cosformer",
    "linear",
]
CASES = (
    [("vit_stripes", name, []) for name in [*NON_CAUSAL, "qontot", "qontot_cpu"]]
    + [
        ("vit_patch", name, ["attention.block_size=2"] if name == "monarch" else [])
        for name in ["sinkhorn", "qr", "normsoftmax_var", "monarch"]
    ]
    + [
        ("itransformer", name, ["attention.n_data_qubits=3", "attention.n_aux_qubits=1"] if "qontot" in name else [])
        for name in ["sinkhorn", "qr", "normsoftmax_std", "monarch", "qontot"]
    ]
    + [("tagger", name, []) for name in ["sinkhorn", "qr", "sdpa", "normsoftmax_var"]]
    + [
        (
            "decoder_lm",
            name,
            ["attention.window=8", "attention.sinks=2", "attention.gamma=4", "attention.tail_min=4"]
            if name == "delta"
            else ["attention.window=8", "attention.sinks=2"]
            if name == "sink_window"
            else [],
        )
        for name in ["softmax", "sink_window", "delta"]
    ]
    + [("yang_shallow", name, []) for name in ["sinkhorn", "qr", "normsoftmax_var"]]
)


def backend_modules(net) -> list[AttentionBackend]:
    return [m for m in net.modules() if isinstance(m, AttentionBackend)]


@pytest.mark.parametrize("model,option,extra", CASES, ids=[f"{m}-{o}" for m, o, _ in CASES])
def test_every_layer_runs_the_configured_backend(model, option, extra):
    overrides, make_input = MODELS[model]
    if option == "sinkhorn":
        extra = [*extra, "attention.n_iter=61"]  # enough iterations for the column sums to be 1 as well
    cfg = compose_config([*overrides, f"attention={option}", *extra, "logger=none"])
    options = {k: v for k, v in dict(cfg.attention).items() if k != "name"}
    torch.manual_seed(0)
    net = build_net(cfg).eval()
    modules = backend_modules(net)
    expected_layers = 1 if model == "yang_shallow" else cfg.model.depth
    assert len(modules) == expected_layers
    assert len({id(m) for m in modules}) == len(modules)  # one backend object per layer
    cls = attention.BACKENDS.get(cfg.attention.name)
    for module in modules:
        assert type(module) is cls, f"{type(module).__name__} instead of {cls.__name__}"
        for key, value in options.items():
            actual = vars(module).get(key, torch.empty(0))  # options stored under their own name
            if not isinstance(actual, torch.Tensor):
                actual = str(actual).removeprefix("torch.") if isinstance(actual, torch.dtype) else actual
                assert actual == value, key
        module.capture = True

    calls = {id(m): [] for m in modules}

    def record(module, args, kwargs, out):
        calls[id(module)].append((args, kwargs, out))

    hooks = [m.register_forward_hook(record, with_kwargs=True) for m in modules]
    with torch.no_grad():
        net(make_input(cfg))
    for h in hooks:
        h.remove()

    for module in modules:
        assert len(calls[id(module)]) == 1, "a layer did not call its backend exactly once"
        (q, k, v, *_), kwargs, out = calls[id(module)][0]
        p = module.last_attention
        if cfg.attention.name in DOUBLY_STOCHASTIC | ROW_STOCHASTIC:
            assert p is not None and p.shape[-2:] == (q.shape[-2], k.shape[-2])
        if p is None:
            continue
        torch.testing.assert_close(out, p.to(v.dtype) @ v, rtol=1e-4, atol=1e-5)  # the captured P is the one used
        assert (p >= 0).all()
        if cfg.attention.name in DOUBLY_STOCHASTIC | ROW_STOCHASTIC:
            assert (p.sum(-1) - 1).abs().max() < 1e-4
        if cfg.attention.name in DOUBLY_STOCHASTIC:
            assert (p.sum(-2) - 1).abs().max() < 1e-4
