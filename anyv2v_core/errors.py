"""Error hierarchy.

Every error a user can cause (bad path, wrong size, unknown plugin, missing weights) is an
:class:`AnyV2VError`. The CLI prints its message as one line and exits with code 2; any
other exception is a bug and exits with code 1 (``--debug`` shows the traceback).
"""

from __future__ import annotations


class AnyV2VError(Exception):
    """Base class of the errors caused by input, configuration or environment."""

    exit_code = 2


class InputError(AnyV2VError):
    """A file, folder, size, frame count or option given by the user is not usable."""


class PluginError(AnyV2VError):
    """An unknown plugin name, or a plugin that failed to load or register."""


class ModelNotFoundError(AnyV2VError):
    """Model weights are not available (not local, not in the cache, hub offline)."""


class InversionMismatchError(AnyV2VError):
    """A stored inversion does not fit the requested edit (grid, size, source, backbone)."""


class OutputExistsError(AnyV2VError):
    """The output exists and ``force`` was not given."""


class WriteError(AnyV2VError):
    """An output could not be written or did not read back whole (full disk, ffmpeg failed);
    nothing is left in its place."""


class BatchLockedError(AnyV2VError):
    """Another ``anyv2v batch`` run holds the output folder."""


class InjectionError(AnyV2VError):
    """An injection pattern matches no module, or a tensor does not fit the branch layout."""


def one_line(exc: BaseException) -> str:
    """``exc`` as the one line shown to a user: an :class:`AnyV2VError`'s message as it is,
    anything else (a bug, or a library's error) prefixed ``unexpected <Type>:``."""
    text = " ".join(str(exc).split())
    return text if isinstance(exc, AnyV2VError) else f"unexpected {type(exc).__name__}: {text}"
