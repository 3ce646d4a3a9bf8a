"""SEINE image-to-video backbone for anyv2v."""

__version__ = "0.1.0"
