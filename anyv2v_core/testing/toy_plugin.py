"""The ``anyv2v`` entry-point module of the toy backbone (registration only, no torch).

Not registered by the core's own metadata: a test installs an entry point pointing here
with :func:`anyv2v_core.testing.tiny.install_toy_plugin`, so the toy is found through the
same discovery, registry and loading code as a real plugin."""

from anyv2v_core import hookimpl


@hookimpl
def anyv2v_register_backbones(register):
    register("toy", "anyv2v_core.testing.toy:ToyBackbone", description="A toy backbone for tests (random weights).")
