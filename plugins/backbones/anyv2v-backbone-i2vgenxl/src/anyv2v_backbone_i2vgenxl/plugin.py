"""Entry point of the ``anyv2v`` plugin group (no torch import here)."""

from anyv2v_core import hookimpl


@hookimpl
def anyv2v_register_backbones(register):
    register(
        "i2vgenxl",
        "anyv2v_backbone_i2vgenxl.backbone:I2VGenXLBackbone",
        description="I2VGen-XL (ali-vilab/i2vgen-xl), 16 frames at 512x512, the AnyV2V reference backbone.",
    )
