"""Vision Transformers for the small-image benchmarks, assembled from timm's ``VisionTransformer``.

Tokenizers: square patches, or QDSFormer's horizontal stripes (a 28x28 image cut into 7 stripes of 4x28
pixels + CLS = 8 tokens), which is just timm's PatchEmbed with a (H / n_stripes, W) patch.
"""

from __future__ import annotations

from typing import Any

from timm.models.vision_transformer import VisionTransformer, init_weights_vit_timm
from torch import nn

from qdsbench.models.backend_attention import BackendAttention, set_backend
from qdsbench.models.registry import register

TOKENIZERS = ("patch", "stripes")
INITS = ("timm", "sinkformer")


def sinkformer_init(model: VisionTransformer) -> None:
    """The michaelsdr/sinkformers ViT's initialisation (lucidrains' vit-pytorch): PyTorch's default init for every
    Linear / Conv / LayerNorm and N(0, 1) position and CLS embeddings. timm's trunc-normal(0.02) init gives scores
    near 0, which drives a static QontOT circuit to P ~ I (results/qds/README.md)."""
    for module in model.modules():
        if module is not model and hasattr(module, "reset_parameters"):
            module.reset_parameters()
    nn.init.normal_(model.pos_embed, 0.0, 1.0)
    if model.cls_token is not None:
        nn.init.normal_(model.cls_token, 0.0, 1.0)


def patch_shape(tokenizer: str, image_size: int, patch_size, num_stripes: int) -> tuple[int, int]:
    if tokenizer == "patch":
        height, width = (patch_size, patch_size) if isinstance(patch_size, int) else tuple(patch_size)
        if image_size % height or image_size % width:
            raise ValueError(f"patch_size={patch_size} does not divide image_size={image_size}")
        return (height, width)
    if tokenizer == "stripes":
        if image_size % num_stripes:
            raise ValueError(f"num_stripes={num_stripes} does not divide image_size={image_size}")
        return (image_size // num_stripes, image_size)
    raise ValueError(f"unknown tokenizer '{tokenizer}'; valid choices: {', '.join(TOKENIZERS)}")


@register("vit")
def create_vit(
    *,
    attention: dict[str, Any],
    image_size: int,
    in_chans: int,
    num_classes: int,
    tokenizer: str = "patch",
    patch_size: int | list[int] = 4,
    num_stripes: int = 7,
    embed_dim: int = 128,
    depth: int = 2,
    num_heads: int = 1,
    head_dim: int | None = None,
    mlp_ratio: float = 1.0,
    qkv_bias: bool = True,
    global_pool: str = "token",
    class_token: bool = True,
    drop_rate: float = 0.0,
    drop_path_rate: float = 0.0,
    init: str = "timm",
) -> VisionTransformer:
    if init not in INITS:
        raise ValueError(f"unknown model.init '{init}'; valid choices: {', '.join(INITS)}")
    model = VisionTransformer(
        img_size=image_size,
        patch_size=patch_shape(tokenizer, image_size, patch_size, num_stripes),
        in_chans=in_chans,
        num_classes=num_classes,
        embed_dim=embed_dim,
        depth=depth,
        num_heads=num_heads,
        mlp_ratio=mlp_ratio,
        qkv_bias=qkv_bias,
        global_pool=global_pool,
        class_token=class_token,
        drop_rate=drop_rate,
        drop_path_rate=drop_path_rate,
        attn_layer=BackendAttention,
    )
    if head_dim is not None and head_dim * num_heads != embed_dim:
        # Sinkformer/QDSFormer ViTs use dim_head=64 with dim=128: inner width != embed_dim (timm's Block can't say so).
        for block in model.blocks:
            block.attn = BackendAttention(embed_dim, num_heads=num_heads, attn_head_dim=head_dim, qkv_bias=qkv_bias)
            block.attn.apply(init_weights_vit_timm)
    if init == "sinkformer":
        sinkformer_init(model)
    set_backend(model, attention)
    return model
