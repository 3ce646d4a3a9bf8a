"""InstantID first-frame editor for anyv2v (identity replacement, AnyV2V paper §5.4)."""

__version__ = "0.1.0"
