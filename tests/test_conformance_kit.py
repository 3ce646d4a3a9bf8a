"""The conformance kit catches what a new plugin author gets wrong before the CLI does:
options declared on the class but not registered, a constructor without the CLI's
keywords, a plugin that is not installed under an entry point (pytest in a subprocess, on
fake plugins installed as distributions)."""

import os
import subprocess
import sys
import textwrap

from anyv2v_core.testing.tiny import install_fake_plugin

PLUGIN = """
from anyv2v_core import hookimpl
from anyv2v_core.protocols import EditorOption

OPTIONS = (EditorOption("axis", "choice", "x", choices=("x", "y")),)


class Mirror:
    name = "NAME"
    options = OPTIONS

    def __init__(INIT):
        pass

    def edit(self, first_frame, request):
        return first_frame.transpose(0 if request.options.get("axis", "x") == "x" else 1)


@hookimpl
def anyv2v_register_editors(register):
    register("NAME", "MODULE:Mirror"REGISTERED)
"""

TESTS = """
import pytest

from anyv2v_core.protocols import EditRequest
from anyv2v_core.testing.conformance import EditorConformance


def kit_for(cls):
    class Kit(EditorConformance):
        @pytest.fixture
        def editor(self):
            return cls()

        @pytest.fixture
        def edit_request(self):
            return EditRequest(options={"axis": "y"})
    return Kit


from anyv2v_kit_good import Mirror as Good
from anyv2v_kit_unregistered_options import Mirror as UnregisteredOptions
from anyv2v_kit_bad_init import Mirror as BadInit


class Loose(Good):
    name = "loose"


TestGood = kit_for(Good)
TestUnregisteredOptions = kit_for(UnregisteredOptions)
TestBadInit = kit_for(BadInit)
TestLoose = kit_for(Loose)
"""


def _plugin(site, module, name, init="self, device='cpu', dtype=None, model=None", registered=", options=OPTIONS"):
    source = PLUGIN.replace("NAME", name).replace("MODULE", module).replace("INIT", init)
    install_fake_plugin(site, f"anyv2v-{name}", module, source.replace("REGISTERED", registered), entry_name=name)


def test_the_kit_fails_where_the_cli_would(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    _plugin(site, "anyv2v_kit_good", "kitgood")
    _plugin(site, "anyv2v_kit_unregistered_options", "kitopts", registered="")
    _plugin(site, "anyv2v_kit_bad_init", "kitinit", init="self")
    (tmp_path / "test_kit.py").write_text(textwrap.dedent(TESTS))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rf",
                           "-k", "registered_and_built or declared_options", str(tmp_path / "test_kit.py")],
                          capture_output=True, text=True, env=env, cwd=tmp_path)
    out = proc.stdout
    assert proc.returncode == 1, out + proc.stderr
    assert "5 failed, 3 passed" in out, out  # 2 checks x 4 editors: the good one passes both, BadInit its options
    failed = {line.split("::")[1] for line in out.splitlines() if line.startswith("FAILED")}
    assert failed == {"TestUnregisteredOptions", "TestBadInit", "TestLoose"}, out
    assert "its class declares options (--axis) that differ from those registered (none)" in out
    assert "the CLI builds editors as Cls(model=None, device='cpu', dtype=torch.float32); that failed: TypeError" in out
    assert "editor 'loose' is not registered" in out and "with an entry point in group 'anyv2v'" in out
