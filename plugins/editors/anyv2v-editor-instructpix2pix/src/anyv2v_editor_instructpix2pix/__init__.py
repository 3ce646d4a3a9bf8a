"""InstructPix2Pix editor for anyv2v. Importing this package stays light; the model code
lives in :mod:`anyv2v_editor_instructpix2pix.editor`."""

__version__ = "0.1.0"
