"""AnyDoor subject-driven editor for anyv2v. Importing this package stays light; the model
code lives in :mod:`anyv2v_editor_anydoor.model`, the checkpoint layout in
:mod:`anyv2v_editor_anydoor.mapping`."""

__version__ = "0.1.0"
