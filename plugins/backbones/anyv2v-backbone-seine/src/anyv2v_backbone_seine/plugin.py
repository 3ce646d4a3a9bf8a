"""Entry point of the ``anyv2v`` plugin group: the ``seine`` backbone and the
``anyv2v seine-convert`` command. No torch import here (discovery stays fast)."""

from anyv2v_core import hookimpl
from anyv2v_core.protocols import EditorOption

OPTIONS = (
    EditorOption("sd-model", "str", default=None,
                 help="Stable Diffusion 1.4 folder (diffusers layout) or hub id for SEINE's VAE, text encoder and "
                      "tokenizer (default: the model folder, else its sibling stable-diffusion-v1-4, else "
                      "CompVis/stable-diffusion-v1-4)"),
)


@hookimpl
def anyv2v_register_backbones(register):
    register(
        "seine",
        "anyv2v_backbone_seine.backbone:SEINEBackbone",
        description="SEINE (xinyuanc91/SEINE on SD-1.4), 16 frames at 512x512; convert seine.pt once with `anyv2v seine-convert`.",
        options=OPTIONS,
    )


@hookimpl
def anyv2v_register_commands(app):
    from .commands import add_commands

    add_commands(app)
