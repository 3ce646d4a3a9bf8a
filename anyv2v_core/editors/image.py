"""The ``image`` editor: the user edited the first frame by hand."""

from __future__ import annotations

from typing import ClassVar

from ..errors import InputError
from ..protocols import EditRequest
from ..video import load_image


class ImageEditor:
    """Returns the image given as ``request.edited_frame`` (``--edited-frame PATH``)."""

    name: ClassVar[str] = "image"

    def __init__(self, device: str = "cpu", dtype: str = "float32", model: str | None = None) -> None:
        pass

    def edit(self, first_frame, request: EditRequest):
        if request.edited_frame is None:
            raise InputError("the image editor needs --edited-frame PATH (the first frame, edited by you)")
        return load_image(request.edited_frame)
