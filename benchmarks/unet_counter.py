"""Count the I2VGen-XL UNet calls of a whole process, without importing anything early.

    python benchmarks/unet_counter.py COUNTS.json -m anyv2v_core.cli edit ...   # a module's main
    python benchmarks/unet_counter.py COUNTS.json path/to/script.py ARGS ...    # a script

Installs an import hook that wraps ``I2VGenXLUNet.forward`` when diffusers' module defining
it is first imported (diffusers 0.26 and >= 0.27 both define it in
``diffusers.models.unets.unet_i2vgen_xl``), then runs the target as ``python -m``/``python
script`` would. At exit it writes ``{"calls", "units", "seconds", "threads", "first_call"}``
to COUNTS.json: UNet forward calls, the sum of their batch sizes (branch units), the seconds
spent inside the UNet, torch's intra-op thread count and the wall-clock time (``time.time()``)
when the first call started (the caller knows when it launched the process: setup time).
The wrapper costs one Python call and two clock reads per UNet call; the hook does not
import diffusers or torch itself, so the process's own import and setup time is unchanged.
"""

from __future__ import annotations

import atexit
import importlib.abc
import importlib.util
import json
import os
import runpy
import sys
import time

UNET_MODULE = "diffusers.models.unets.unet_i2vgen_xl"
COUNTS = {"calls": 0, "units": 0, "seconds": 0.0, "threads": None, "first_call": None}


def wrap_unet_class(cls) -> None:
    """Make ``cls.forward`` count calls, batch units and time (idempotent)."""
    if getattr(cls.forward, "_counted", False):
        return
    inner = cls.forward

    def forward(self, sample, *args, **kwargs):
        if COUNTS["first_call"] is None:
            COUNTS["first_call"] = time.time()
        t0 = time.perf_counter()
        try:
            return inner(self, sample, *args, **kwargs)
        finally:
            COUNTS["seconds"] += time.perf_counter() - t0
            COUNTS["calls"] += 1
            COUNTS["units"] += int(sample.shape[0])

    forward._counted = True
    cls.forward = forward


class _Hook(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name, path=None, target=None):
        if name != UNET_MODULE:
            return None
        sys.meta_path.remove(self)
        try:
            spec = importlib.util.find_spec(name)
        finally:
            sys.meta_path.insert(0, self)
        if spec is None or spec.loader is None:
            return None
        self._loader = spec.loader
        spec.loader = self
        return spec

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        self._loader.exec_module(module)
        wrap_unet_class(module.I2VGenXLUNet)


def install(out_path: str) -> None:
    """Start counting; write the counts to ``out_path`` when the process exits."""
    if UNET_MODULE in sys.modules:
        wrap_unet_class(sys.modules[UNET_MODULE].I2VGenXLUNet)
    else:
        sys.meta_path.insert(0, _Hook())

    def write() -> None:
        if "torch" in sys.modules:
            COUNTS["threads"] = sys.modules["torch"].get_num_threads()
        tmp = out_path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(COUNTS, f)
        os.replace(tmp, out_path)

    atexit.register(write)


def run_target(argv: list[str]) -> None:
    """Run ``-m module args...`` or ``script args...`` as the main program, with the
    ``sys.path`` entry python would give it in place of this folder's."""
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]
    if argv[0] == "-m":
        sys.argv = [argv[1], *argv[2:]]
        sys.path.insert(0, os.getcwd())
        runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
    else:
        sys.argv = list(argv)
        sys.path.insert(0, os.path.dirname(os.path.abspath(argv[0])))
        runpy.run_path(argv[0], run_name="__main__")


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    install(sys.argv[1])
    run_target(sys.argv[2:])
