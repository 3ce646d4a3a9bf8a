import pytest

from anyv2v_core.testing.fixtures import toy_model, toy_site  # noqa: F401


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
def clip_files(tmp_path_factory):
    """The same 8-frame 64x64 clip as an mp4 and as a folder of PNGs, plus an edited frame."""
    from anyv2v_core.testing.tiny import write_clip_files

    return write_clip_files(tmp_path_factory.mktemp("clip"), 8, 64, 64)
