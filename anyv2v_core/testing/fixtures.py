"""Pytest fixtures for plugin test suites; import the ones you want into your
``conftest.py`` (``from anyv2v_core.testing.fixtures import one_torch_thread  # noqa: F401``):
``one_torch_thread`` (autouse), ``toy_site`` and ``toy_model`` (the toy backbone of
:mod:`anyv2v_core.testing.toy` as ``--backbone toy``).

Needs pytest (a test dependency, not one of anyv2v's).
"""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Run every test module of the importing folder on one torch thread, restored after.

    Tiny models are dominated by per-op overhead: intra-op threads gain nothing, and on a
    busy 2-core machine OpenMP threads spin-waiting for each other make them many times
    slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def toy_site(tmp_path_factory):
    """The toy backbone (``anyv2v_core.testing.toy``) installed as plugin ``toy`` through a
    real entry point, for this process (sys.path) and its children and Ray workers
    (PYTHONPATH), for the rest of the session."""
    import importlib
    import os
    import sys

    from anyv2v_core.plugins import get_registry
    from anyv2v_core.testing.tiny import install_toy_plugin

    site = install_toy_plugin(tmp_path_factory.mktemp("toy-site"))
    sys.path.insert(0, str(site))
    importlib.invalidate_caches()
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join([str(site), old or ""]).rstrip(os.pathsep)
    get_registry(refresh=True)
    yield site
    if str(site) in sys.path:
        sys.path.remove(str(site))
    if old is None:
        del os.environ["PYTHONPATH"]
    else:
        os.environ["PYTHONPATH"] = old
    get_registry(refresh=True)


@pytest.fixture(scope="session")
def toy_model(toy_site, tmp_path_factory):
    """A toy model folder (safetensors), loadable as ``--backbone toy --model <folder>``."""
    from anyv2v_core.testing.toy import ToyBackbone

    return ToyBackbone.build_tiny(tmp_path_factory.mktemp("toy-model"))


def chromium_path() -> str:
    """The Chromium a browser test drives (``$ANYV2V_CHROMIUM`` or Debian's ``chromium``): a
    failure under CI (``.ci/run`` installs it), a skip on a developer machine without one."""
    import os
    import shutil

    path = os.environ.get("ANYV2V_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("Chromium not found: .ci/run installs Debian's `chromium` package")
        pytest.skip("no Chromium here (apt-get install chromium); CI runs this test")
    return path
