"""Entry point of the ``anyv2v`` plugin group: the ``wan`` backbone (no torch import here)."""

from anyv2v_core import hookimpl
from anyv2v_core.protocols import EditorOption

OPTIONS = (
    EditorOption("wan-attn-blocks", "str", default="late",
                 help="transformer blocks whose self-attention (attn1) is injected for the first tau_ta of the "
                      "steps: late (the second half, default), early, all, none, or indices like 0,3,20-39"),
    EditorOption("wan-attn-kinds", "str", default="qk",
                 help="what of attn1 is injected there: any of q, k, v (qk: queries and keys, the paper's; "
                      "qkv adds the values, as RF-Solver-Edit does)"),
    EditorOption("wan-feature-blocks", "str", default="mid",
                 help="blocks whose features are injected for the first tau_conv of the steps: mid (the first "
                      "block of the second half, default), late, early, all, none, or indices"),
    EditorOption("wan-feature", "str", default="ffn",
                 help="the feature injected in --wan-feature-blocks: ffn (the feed-forward output before the "
                      "residual add, default) or block (the block's whole output)"),
    EditorOption("wan-group-offload", "bool", default=False,
                 help="block-level group offloading of the transformer(s) to the CPU (CUDA only; for the 14B "
                      "models on GPUs with less than ~40 GB)"),
)


@hookimpl
def anyv2v_register_backbones(register):
    register(
        "wan",
        "anyv2v_backbone_wan.backbone:WanBackbone",
        description="Wan image-to-video (flow-matching DiT: Wan2.1-I2V 480P/720P, Wan2.2-TI2V-5B, "
                    "Wan2.2-I2V-A14B), 81 frames at 832x480 by default.",
        options=OPTIONS,
    )
