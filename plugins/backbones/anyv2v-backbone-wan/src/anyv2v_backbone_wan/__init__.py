"""Wan (flow-matching diffusion transformer) backbone for anyv2v. Importing this package
stays light; the model code lives in :mod:`anyv2v_backbone_wan.backbone`."""

__version__ = "0.1.0"
