"""Neural style transfer editor for anyv2v. Importing this package stays light; the
optimisation lives in :mod:`anyv2v_editor_nst.editor`, the VGG19 loading in
:mod:`anyv2v_editor_nst.vgg`."""

__version__ = "0.1.0"
