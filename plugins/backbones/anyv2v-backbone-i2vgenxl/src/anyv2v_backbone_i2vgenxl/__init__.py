"""I2VGen-XL backbone for anyv2v. Importing this package stays light; the model code
lives in :mod:`anyv2v_backbone_i2vgenxl.backbone`."""

__version__ = "0.1.0"
