"""Entry point of the ``anyv2v`` plugin group: the ``consisti2v`` backbone and the
``anyv2v consisti2v-convert`` command. No torch import here (discovery stays fast)."""

from anyv2v_core import hookimpl
from anyv2v_core.protocols import EditorOption

OPTIONS = (
    EditorOption("frame-stride", "int", default=3,
                 help="frame-stride micro-condition: the source's frame sampling stride (the reference's 3)"),
)


@hookimpl
def anyv2v_register_backbones(register):
    register(
        "consisti2v",
        "anyv2v_backbone_consisti2v.backbone:ConsistI2VBackbone",
        description="ConsistI2V (TIGER-Lab/ConsistI2V), 16 frames at 256x256, first-frame-conditioned video UNet.",
        options=OPTIONS,
    )


@hookimpl
def anyv2v_register_commands(app):
    from .commands import add_commands

    add_commands(app)
