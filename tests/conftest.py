import pytest


@pytest.fixture
def plugin_site(tmp_path, monkeypatch):
    """A folder on sys.path where tests install fake plugin distributions (real
    ``*.dist-info`` metadata with ``anyv2v`` entry points, discovered by importlib.metadata).
    The shared registry is rebuilt after each install and again after the test."""
    from anyv2v_core.plugins import get_registry
    from anyv2v_core.testing.tiny import install_fake_plugin

    monkeypatch.syspath_prepend(str(tmp_path))

    def install(dist, module, source, entry_name=None, version="0.1"):
        site = install_fake_plugin(tmp_path, dist, module, source, entry_name, version)
        get_registry(refresh=True)
        return site

    yield install
    monkeypatch.undo()  # off sys.path before the registry forgets the fake plugins
    get_registry(refresh=True)


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


@pytest.fixture(scope="session")
def clip_files(tmp_path_factory):
    """The same 8-frame 64x64 clip as an mp4 and as a folder of PNGs, plus an edited frame."""
    from anyv2v_core.testing.tiny import write_clip_files

    return write_clip_files(tmp_path_factory.mktemp("clip"), 8, 64, 64)
