"""Shared by every test under this repository (core and plugins)."""

import pytest


@pytest.fixture(autouse=True)
def _isolated_inversion_cache(tmp_path_factory, monkeypatch):
    """Tests never read or write the user's inversion cache."""
    monkeypatch.setenv("ANYV2V_CACHE", str(tmp_path_factory.mktemp("inversion-cache")))
