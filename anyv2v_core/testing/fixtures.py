"""Pytest fixtures for plugin test suites; import the ones you want into your
``conftest.py`` (``from anyv2v_core.testing.fixtures import one_torch_thread  # noqa: F401``).

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
