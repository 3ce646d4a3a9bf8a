"""Conformance kit: tests any editor or backbone plugin runs against itself.

Subclass in the plugin's own tests and provide the fixtures::

    from anyv2v_core.testing.conformance import BackboneConformance

    class TestMyBackbone(BackboneConformance):
        @pytest.fixture(scope="class")
        def backbone(self, tmp_path_factory):
            path = MyBackbone.build_tiny(tmp_path_factory.mktemp("tiny"))
            return MyBackbone(model=str(path), device="cpu", dtype=torch.float32)

For editors, subclass :class:`EditorConformance` and provide ``editor`` and
``edit_request`` fixtures. The backbone checks exercise the real sampling code on the
backbone: SPEC §7's invariants hold for any weights, tiny random ones included.

Both kits also check the component the way the CLI meets it: registered under an
``anyv2v`` entry point of an installed distribution (so run them with the plugin
installed, e.g. ``pip install -e .``), its class's options equal to the registered ones,
and built by ``anyv2v_core.api.load_editor`` / ``load_backbone`` from its name.
"""

from __future__ import annotations

import copy

import pytest

from ..injection import KIND_TARGETS, InjectionController, active_timesteps, match_sites, resolve_sites
from ..protocols import BackboneDefaults, ClipSpec, EditOptions, EditRequest, InversionOptions
from ..settings import DEFAULT_SEED
from .tiny import synthetic_frames

#: Small, fast settings used by the checks.
CLIP = ClipSpec(n_frames=4, width=64, height=64, fps=8)
STEPS, INV_STEPS = 10, 20


def _registered(kind: str, cls: type):
    """The registry's component of ``cls`` (found by ``cls.name``), checked to come from an
    ``anyv2v`` entry point and to load as ``cls`` -- a failed assertion says what is wrong."""
    import importlib.metadata as md

    from ..errors import PluginError
    from ..plugins import ENTRY_POINT_GROUP, get_registry

    name = getattr(cls, "name", None)
    registry = get_registry()
    try:
        component = registry.editor(name) if kind == "editor" else registry.backbone(name)
    except PluginError as exc:
        failures = "; ".join(f"{f.plugin}: {f.error}" for f in registry.failures)
        pytest.fail(f"{kind} {name!r} is not registered: {exc}. Is the package installed (`pip install -e .`) with "
                    f"an entry point in group {ENTRY_POINT_GROUP!r} whose module registers {name!r}?"
                    + (f" Plugins that failed: {failures}" if failures else ""))
    if component.plugin.package != "anyv2v":  # the core's built-ins need no entry point
        names = {ep.name for ep in md.entry_points(group=ENTRY_POINT_GROUP)}
        assert component.plugin.name in names, f"{kind} {name!r} is not registered under an {ENTRY_POINT_GROUP!r} entry point"
    loaded = component.load()  # a PluginError here: the class's options differ from the registered ones
    assert loaded is cls, f"{kind} {name!r} is registered as {component.ref!r}, which is not {cls.__module__}.{cls.__qualname__}"
    return component


def _built(what: str, build):
    """``build()``, with a constructor that does not take the CLI's keywords reported as such."""
    try:
        return build()
    except TypeError as exc:
        pytest.fail(f"the CLI builds {what}; that failed: TypeError: {exc}")


def _model_snapshot(model):
    """Everything the controller could leave behind: hooks, processors, parameters."""
    hooks = {
        name: (len(m._forward_hooks), len(m._forward_pre_hooks), type(getattr(m, "processor", None)).__name__)
        for name, m in model.named_modules()
    }
    params = {k: v.detach().clone() for k, v in model.state_dict().items()}
    forwards = {name: m.__dict__.get("forward") for name, m in model.named_modules()}
    return hooks, params, forwards


def _finish(backbone, latents, cond):
    """A backbone's optional final latent fix-up (e.g. Wan2.2-TI2V's conditioning frame)."""
    finish = getattr(backbone, "finish_latents", None)
    return latents if finish is None else finish(latents, cond)


def cond_branch(cond: dict, index: int, n: int) -> dict:
    """Branch ``index`` of a conditioning batched over ``n`` branches."""
    return {k: v.chunk(n)[index] for k, v in cond.items()}


class BackboneConformance:
    """Checks every :class:`~anyv2v_core.protocols.I2VBackbone` must pass."""

    clip = CLIP
    #: Latent frames of ``clip`` (a VAE with temporal compression has fewer, e.g. Wan's (F-1)/4+1).
    latent_frames = CLIP.n_frames
    #: Inversion steps of the checks' inversion; its grid must contain the STEPS-step edit
    #: grid (a flow-matching grid is nested only in itself: set it to STEPS).
    inversion_steps = INV_STEPS

    @pytest.fixture(scope="class")
    @classmethod
    def backbone(cls):  # pragma: no cover - to be overridden
        raise NotImplementedError("provide a `backbone` fixture returning a loaded tiny backbone")

    @pytest.fixture(scope="class")
    @classmethod
    def frames(cls):
        return synthetic_frames(cls.clip.n_frames, cls.clip.width, cls.clip.height, seed=1)

    @pytest.fixture(scope="class")
    @classmethod
    def edited(cls):
        return synthetic_frames(1, cls.clip.width, cls.clip.height, seed=5)[0]

    @pytest.fixture(scope="class")
    @classmethod
    def inversion(cls, backbone, frames):
        from ..sampling import invert

        return invert(backbone, frames, cls.clip,
                      InversionOptions(steps=cls.inversion_steps).resolve(backbone.defaults))

    def options(self, backbone, **kw) -> EditOptions:
        base = dict(steps=STEPS, t_idx=1)
        base.update(kw)
        return EditOptions(**base).resolve(backbone.defaults)

    def sample(self, backbone, inversion, frames, edited, prompt="an edit", seed=DEFAULT_SEED, **kw):
        from ..sampling import pnp_sample

        return pnp_sample(backbone, inversion, frames[0], edited, prompt, self.clip, self.options(backbone, **kw),
                          seed=seed)

    #: Declared options passed when :meth:`test_registered_and_built_like_the_cli` builds the
    #: backbone again by name (as ``--name value`` arguments of the CLI would be).
    cli_options: dict = {}

    # -- declarations -------------------------------------------------------------------
    def test_registered_and_built_like_the_cli(self, backbone):
        """Registered under an entry point, and built by ``api.load_backbone`` (what the CLI
        calls) from its name, ``model_id`` and the keywords ``model``/``device``/``dtype``."""
        from .. import api

        component = _registered("backbone", type(backbone))
        dtype = str(backbone.dtype).removeprefix("torch.")
        built = _built("backbones as Cls(model=..., device=..., dtype=..., **options)",
                       lambda: api.load_backbone(component.name, model=backbone.model_id, device=str(backbone.device),
                                                 dtype=dtype, options=dict(self.cli_options)))
        assert type(built) is type(backbone) and built.model_id == backbone.model_id

    def test_declares_protocol(self, backbone):
        for attr in ("name", "default_model", "defaults", "denoiser", "device", "dtype", "model_id"):
            assert hasattr(backbone, attr), f"backbone lacks {attr}"
        assert isinstance(backbone.defaults, BackboneDefaults)
        d = backbone.defaults
        assert d.n_frames >= 2 and d.width % 8 == 0 and d.height % 8 == 0
        assert 0 <= d.t_idx < d.steps

    def test_default_inversion_grid_contains_edit_schedule(self, backbone):
        from ..sampling import schedule

        inv = backbone.make_inverse_scheduler()
        inv.set_timesteps(backbone.defaults.inversion_steps)
        grid = {int(t) for t in inv.timesteps}
        missing = set(schedule(backbone, backbone.defaults.steps)) - grid
        assert not missing, f"default inversion grid lacks edit timesteps {sorted(missing)}"

    def test_injection_sites_match_modules(self, backbone):
        sites = resolve_sites(backbone.injection_patterns, self.options(backbone, tau_ca=0.5))
        assert sites, "a backbone must declare injection patterns"
        assert {s.kind for s in sites} <= set(KIND_TARGETS)
        matches = match_sites(backbone.denoiser, sites)
        assert len(matches) >= len(sites)

    # -- coding and shapes --------------------------------------------------------------
    def test_encode_decode_shapes(self, backbone, frames):
        latents = backbone.encode_video(frames)
        assert latents.ndim == 5 and latents.shape[0] == 1 and latents.shape[2] == self.latent_frames
        video = backbone.decode_video(latents)
        assert tuple(video.shape) == (self.clip.n_frames, self.clip.height, self.clip.width, 3)
        assert float(video.min()) >= 0.0 and float(video.max()) <= 1.0

    def test_condition_and_predict(self, backbone, frames):
        import torch

        cond = backbone.condition(frames[0], "a prompt", self.clip)
        assert all(v.shape[0] == 1 for v in cond.values()), "conditioning tensors need a batch dim of 1"
        latents = backbone.encode_video(frames)
        with torch.inference_mode():
            out = backbone.predict(latents, torch.tensor(501), cond)
        assert out.shape == latents.shape

    # -- SPEC §7 invariants -------------------------------------------------------------
    def test_thresholds_on_full_schedule(self, backbone):
        from ..sampling import edit_timesteps, schedule

        full = schedule(backbone, 50)
        for t_idx, want in ((1, (9, 24)), (4, (6, 21))):
            visit = set(edit_timesteps(backbone, 50, t_idx))
            got = (len(visit & active_timesteps(full, 0.2)), len(visit & active_timesteps(full, 0.5)))
            assert got == want, f"t_idx={t_idx}: {got} active steps, expected {want}"

    def test_deterministic(self, backbone, inversion, frames, edited):
        import torch

        a = self.sample(backbone, inversion, frames, edited, random_ratio=0.3, seed=3)
        b = self.sample(backbone, inversion, frames, edited, random_ratio=0.3, seed=3)
        c = self.sample(backbone, inversion, frames, edited, random_ratio=0.3, seed=4)
        assert torch.equal(a, b)
        assert not torch.equal(a, c)

    def test_injection_changes_output(self, backbone, inversion, frames, edited):
        on = self.sample(backbone, inversion, frames, edited)
        off = self.sample(backbone, inversion, frames, edited, tau_conv=0.0, tau_sa=0.0, tau_ta=0.0)
        assert float((on - off).abs().max()) > 1e-3

    def test_tau_zero_equals_no_controller(self, backbone, inversion, frames, edited):
        """τ = 0 everywhere is bit-identical to a loop with no controller installed."""
        import torch

        from ..sampling import _cat_conditioning, edit_timesteps, model_timestep, pnp_sample

        opts = self.options(backbone, tau_conv=0.0, tau_sa=0.0, tau_ta=0.0)
        # keep the source branch in the batch so the comparison is batch-for-batch
        got = pnp_sample(backbone, inversion, frames[0], edited, "an edit", self.clip, opts, drop_source=False)
        sched = backbone.make_scheduler()
        sched.set_timesteps(opts.steps)
        visit = edit_timesteps(backbone, opts.steps, opts.t_idx)
        cond = _cat_conditioning([
            backbone.condition(frames[0], inversion.prompt, self.clip),
            backbone.condition(edited, opts.negative_prompt, self.clip, negative=True),
            backbone.condition(edited, "an edit", self.clip),
        ])
        x = inversion.latent(visit[0]).clone()
        with torch.inference_mode():
            for t in visit:
                out = backbone.predict(torch.cat([inversion.latent(t), x, x]), model_timestep(sched, t, "cpu"),
                                       cond).chunk(3)
                x = sched.step(out[1] + opts.cfg * (out[2] - out[1]), t, x, eta=0.0).prev_sample
            x = _finish(backbone, x, cond_branch(cond, 2, 3))
        assert torch.equal(got, x)

    def test_unguided_tau_zero_is_plain_ddim(self, backbone, inversion, frames):
        """Edit with the unedited first frame, cfg 1, τ 0: plain DDIM sampling from
        z_{t_idx} with the source conditioning, written independently with batch 1."""
        import torch

        from ..sampling import edit_timesteps, model_timestep

        got = self.sample(backbone, inversion, frames, frames[0], prompt=inversion.prompt, cfg=1.0,
                          tau_conv=0.0, tau_sa=0.0, tau_ta=0.0)
        sched = backbone.make_scheduler()
        sched.set_timesteps(STEPS)
        cond = backbone.condition(frames[0], inversion.prompt, self.clip)
        visit = edit_timesteps(backbone, STEPS, 1)
        x = inversion.latent(visit[0]).clone()
        with torch.inference_mode():
            for t in visit:
                x = sched.step(backbone.predict(x, model_timestep(sched, t, "cpu"), cond), t, x, eta=0.0).prev_sample
            x = _finish(backbone, x, cond)
        scale = float(x.abs().max())
        assert float((got - x).abs().max()) <= 1e-4 * max(scale, 1.0)

    def test_one_denoiser_call_per_step(self, backbone, inversion, frames, edited):
        from ..sampling import edit_timesteps

        calls = []
        handle = backbone.denoiser.register_forward_hook(lambda m, a, o: calls.append(1))
        try:
            self.sample(backbone, inversion, frames, edited)
        finally:
            handle.remove()
        assert len(calls) == len(edit_timesteps(backbone, STEPS, 1))

    def test_dropping_source_after_injection_changes_nothing(self, backbone, inversion, frames, edited):
        """The source branch leaves the batch after the last injecting step (3 -> 2 units);
        the result equals keeping it (bit-exact on CPU here; the bound allows for other
        kernels that pick algorithms by batch size)."""
        from ..sampling import SamplingStats, pnp_sample

        opts = self.options(backbone)
        kept, dropped = SamplingStats(), SamplingStats()
        a = pnp_sample(backbone, inversion, frames[0], edited, "x", self.clip, opts, drop_source=False, stats=kept)
        b = pnp_sample(backbone, inversion, frames[0], edited, "x", self.clip, opts, drop_source=True, stats=dropped)
        assert dropped.batch_units < kept.batch_units
        assert float((a - b).abs().max()) <= 1e-5 * max(float(a.abs().max()), 1.0)

    def test_many_edits_equal_single_runs(self, backbone, inversion, frames, edited):
        """K edits sharing one source branch equal the same edits run alone."""
        from ..sampling import EditTarget, SamplingStats, pnp_sample, pnp_sample_many

        opts = self.options(backbone, random_ratio=0.2)
        targets = [EditTarget(edited, "first", 1), EditTarget(frames[1], "second", 2), EditTarget(edited, "third", 3)]
        stats = SamplingStats()
        many = pnp_sample_many(backbone, inversion, frames[0], targets, self.clip, opts, stats=stats)
        for target, got in zip(targets, many):
            alone = pnp_sample(backbone, inversion, frames[0], target.edited_frame, target.prompt, self.clip,
                               opts, seed=target.seed)
            assert float((got - alone).abs().max()) <= 1e-4 * max(float(alone.abs().max()), 1.0)
        assert stats.denoiser_calls == stats.steps

    def test_controller_restores_model(self, backbone, inversion, frames, edited):
        before = _model_snapshot(backbone.denoiser)
        self.sample(backbone, inversion, frames, edited)
        after = _model_snapshot(backbone.denoiser)
        assert before[0] == after[0] and before[2] == after[2]
        assert all(v.equal(after[1][k]) for k, v in before[1].items())

    def test_controller_restores_model_on_error(self, backbone, inversion, frames, edited):
        from ..sampling import pnp_sample

        class Boom(RuntimeError):
            pass

        def explode(stage, done, total):
            if done == 2:
                raise Boom()

        before = _model_snapshot(backbone.denoiser)
        with pytest.raises(Boom):
            pnp_sample(backbone, inversion, frames[0], edited, "x", self.clip, self.options(backbone), progress=explode)
        after = _model_snapshot(backbone.denoiser)
        assert before[0] == after[0] and before[2] == after[2]

    def test_injection_replaces_edit_branches(self, backbone, inversion, frames, edited):
        """At an active step, every hooked tensor's edit chunks equal the source chunk."""
        import torch

        from ..sampling import _cat_conditioning, model_timestep, schedule

        opts = self.options(backbone)
        sites = resolve_sites(backbone.injection_patterns, opts)
        full = schedule(backbone, opts.steps)
        t = full[opts.t_idx]
        sched = backbone.make_scheduler()
        sched.set_timesteps(opts.steps)
        seen = []

        def record(_m, _a, output):
            seen.append(output)

        controller = InjectionController(backbone.denoiser, sites, full)
        handles = []
        with controller:
            for site, name in match_sites(backbone.denoiser, sites):
                module = backbone.denoiser.get_submodule(name)
                for target in [module] if KIND_TARGETS[site.kind] is None else [
                        getattr(module, p) for p in KIND_TARGETS[site.kind]]:
                    handles.append(target.register_forward_hook(record))  # runs after the controller's hook
            controller.set_timestep(t)
            cond = _cat_conditioning([backbone.condition(frames[0], "", self.clip)] * 3)
            x = inversion.latent(t)
            with torch.inference_mode():
                backbone.predict(torch.cat([x, x + 0.1, x - 0.1]), model_timestep(sched, t, "cpu"), cond)
        for h in handles:
            h.remove()
        assert seen and controller.calls == len(seen)
        for tensor in seen:
            src, a, b = tensor.chunk(3)
            assert torch.equal(src, a) and torch.equal(src, b)

    def test_memory_options_keep_the_result(self, backbone, inversion, frames, edited):
        """Every MemoryOptions field applies (offload, chunked VAE, channels-last) and
        changes the result by float rounding at most; MemoryOptions() restores it exactly."""
        import torch

        from ..protocols import MemoryOptions

        base = self.sample(backbone, inversion, frames, edited)
        decoded = backbone.decode_video(base)
        try:
            backbone.configure_memory(MemoryOptions(vae_chunk=2, offload=True, channels_last=True))
            low = self.sample(backbone, inversion, frames, edited)
            assert float((low - base).abs().max()) <= 1e-4 * max(float(base.abs().max()), 1.0)
            assert float((backbone.decode_video(base) - decoded).abs().max()) <= 1e-4
        finally:
            backbone.configure_memory(MemoryOptions())
        assert torch.equal(self.sample(backbone, inversion, frames, edited), base)
        assert torch.equal(backbone.decode_video(base), decoded)


class EditorConformance:
    """Checks every editor must pass. Provide ``editor`` and ``edit_request`` fixtures."""

    @pytest.fixture
    def first_frame(self):
        return synthetic_frames(1, 64, 64, seed=3)[0]

    def test_has_name(self, editor):
        assert isinstance(type(editor).name, str) and type(editor).name

    def test_registered_and_built_like_the_cli(self, editor):
        """Registered under an entry point, and built by ``api.load_editor`` (what the CLI
        calls) from its name with the keywords ``device``/``dtype``/``model``."""
        from .. import api

        component = _registered("editor", type(editor))
        built = _built("editors as Cls(model=None, device='cpu', dtype=torch.float32)",
                       lambda: api.load_editor(component.name, device="cpu", dtype="float32"))
        assert type(built) is type(editor)

    def test_returns_rgb_image(self, editor, edit_request, first_frame):
        from PIL import Image

        out = editor.edit(first_frame, edit_request)
        assert isinstance(out, Image.Image)
        assert out.mode == "RGB" and out.width > 0 and out.height > 0

    def test_declared_options(self, editor, edit_request):
        """The registered declarations (the ones the CLI parses) are well formed and accept
        the test's request, as the CLI's validation does before every edit."""
        from ..editor_options import check_declarations, validate_options
        from ..plugins import get_registry

        name = type(editor).name
        declared = get_registry().editor(name).options
        check_declarations(name, declared)
        validate_options(name, declared, dict(edit_request.options))

    def test_deterministic_with_seed(self, editor, edit_request, first_frame):
        a = editor.edit(first_frame, copy.deepcopy(edit_request))
        b = editor.edit(first_frame, copy.deepcopy(edit_request))
        assert a.tobytes() == b.tobytes(), "same request and seed must give the same image"

    def test_does_not_modify_input(self, editor, edit_request, first_frame):
        before = first_frame.tobytes()
        editor.edit(first_frame, copy.deepcopy(edit_request))
        assert first_frame.tobytes() == before


__all__ = ["BackboneConformance", "EditorConformance", "EditRequest"]
