"""Flow-matching sampling and inversion, stateless and backbone-agnostic (SPEC §8).

A flow-matching model predicts a velocity ``v ≈ ε − x₀`` along ``x_σ = (1−σ)·x₀ + σ·ε``.
Sampling integrates ``dx/dσ = v`` from σ = 1 to 0 on the scheduler's σ grid; inversion
integrates the same ODE from 0 to 1 on the same grid. diffusers' flow scheduler is
stateful (``step_index``) and has no inverse, while the AnyV2V sampler steps K edits per
timestep and needs the inverted latent at every level it visits. So the scheduler here is
stateless: its grid (σ values and model timesteps) is computed by diffusers'
``FlowMatchEulerDiscreteScheduler`` from the model's own config (``shift`` and friends), so
it is exactly the pipeline's; the steps are written here.

**Keys.** The core keys inverted latents and injection thresholds on integer timesteps.
Flow timesteps are floats (``σ·1000``) that can be closer than 1 apart on fine grids, so a
flow level is keyed by :func:`sigma_key` (σ in millionths); :meth:`FlowMatchScheduler.model_timestep`
turns a key back into the model's timestep.

**Inversion solvers** (:data:`SOLVERS`): ``euler`` (one model call per step; first-order,
drifts), ``midpoint`` (two calls per step, second order) and ``fireflow`` (FireFlow's
midpoint step that reuses the previous step's midpoint velocity as this step's start
velocity: second order at one call per step, plus one at the start).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Mapping

from .errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    import torch

#: Integer keys per unit of σ.
KEY_SCALE = 1_000_000
#: Inversion solvers of flow-matching backbones; the first is the plain one.
SOLVERS = ("euler", "midpoint", "fireflow")
#: Model calls of each solver for ``n`` steps.
SOLVER_CALLS: Mapping[str, Callable[[int], int]] = {
    "euler": lambda n: n, "midpoint": lambda n: 2 * n, "fireflow": lambda n: n + 1,
}


def sigma_key(sigma: "float | torch.Tensor") -> int:
    """The integer key of flow level ``sigma`` (σ in millionths)."""
    return int(round(float(sigma) * KEY_SCALE))


@dataclass
class FlowStepOutput:
    prev_sample: "torch.Tensor"


class FlowMatchScheduler:
    """Stateless Euler flow-matching scheduler with a diffusers-like surface.

    ``set_timesteps(n)`` computes the grid of diffusers' ``FlowMatchEulerDiscreteScheduler``
    built from ``config`` (a scheduler config; a UniPC config's ``flow_shift`` is read as
    ``shift``). ``timesteps`` are integer keys (:func:`sigma_key`): for sampling, the levels
    the ``n`` steps start from (σ₀ = 1 first); for ``inverse=True``, the levels the ``n``
    inverse steps reach, lowest first (the last is σ₀). :meth:`step` is one Euler step from
    a level to the next lower one, as diffusers computes it (in float32).
    """

    order = 1
    init_noise_sigma = 1.0

    def __init__(self, config: Mapping[str, Any] | None = None, inverse: bool = False, solver: str = "euler") -> None:
        if solver not in SOLVERS:
            raise InputError(f"unknown flow solver {solver!r}; choose one of {', '.join(SOLVERS)}")
        self.config = _flow_config(dict(config or {}))
        self.inverse = inverse
        #: The sampling solver (the core sampler reads it): first-order Euler steps, or a
        #: second-order step evaluated at each interval's midpoint.
        self.solver = solver
        self.sigmas = None
        self.timesteps: list[int] = []

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None = None, inverse: bool = False,
                    solver: str = "euler") -> "FlowMatchScheduler":
        return cls(config, inverse=inverse, solver=solver)

    @property
    def num_train_timesteps(self) -> int:
        return int(self.config.get("num_train_timesteps", 1000))

    def set_timesteps(self, num_inference_steps: int, device: Any = None) -> None:
        from diffusers import FlowMatchEulerDiscreteScheduler

        if num_inference_steps < 1:
            raise InputError(f"the number of flow steps must be positive, got {num_inference_steps}")
        import inspect

        known = inspect.signature(FlowMatchEulerDiscreteScheduler.__init__).parameters
        grid = FlowMatchEulerDiscreteScheduler(**{k: v for k, v in self.config.items() if k in known})
        grid.set_timesteps(num_inference_steps)
        self.sigmas = grid.sigmas  # n + 1 values, float32, 1 ... 0
        self._model_timesteps = grid.timesteps  # n values, float32: sigma * num_train_timesteps
        keys = [sigma_key(s) for s in self.sigmas[:-1]]
        if len(set(keys)) != len(keys):
            raise InputError(f"{num_inference_steps} flow steps put two levels closer than 1e-6 in sigma")
        self._index = {k: i for i, k in enumerate(keys)}
        self.timesteps = list(reversed(keys)) if self.inverse else keys
        self.num_inference_steps = num_inference_steps

    # -- grid ---------------------------------------------------------------------------
    def index(self, key: "int | torch.Tensor") -> int:
        try:
            return self._index[int(key)]
        except KeyError:
            raise InputError(f"flow level {int(key)} (sigma {int(key) / KEY_SCALE:g}) is not on the grid") from None

    def midpoint_keys(self, keys) -> list[int]:
        """Keys of the midpoints of the sampling steps that start at ``keys``."""
        return [sigma_key(midpoint(self.sigmas[self.index(k) + 1], self.sigma(k))) for k in keys]

    def sigma(self, key: "int | torch.Tensor") -> "torch.Tensor":
        return self.sigmas[self.index(key)]

    def model_timestep(self, key: "int | torch.Tensor") -> "torch.Tensor":
        """The model's (float) timestep at the level keyed ``key``."""
        return self._model_timesteps[self.index(key)]

    def timestep_of_sigma(self, sigma: "torch.Tensor") -> "torch.Tensor":
        """The model timestep of any σ, off the grid too (as diffusers computes it on it)."""
        return sigma * self.num_train_timesteps

    # -- steps --------------------------------------------------------------------------
    def step(self, model_output: "torch.Tensor", timestep: "int | torch.Tensor", sample: "torch.Tensor",
             **_: Any) -> FlowStepOutput:
        """One Euler step from the level keyed ``timestep`` to the next lower level."""
        i = self.index(timestep)
        return FlowStepOutput(euler(sample, model_output, self.sigmas[i], self.sigmas[i + 1]))


def euler(sample: "torch.Tensor", velocity: "torch.Tensor", sigma: "torch.Tensor",
          sigma_to: "torch.Tensor") -> "torch.Tensor":
    """``x + (σ_to − σ)·v`` in float32, cast back to the wider of the sample's and the
    velocity's dtypes (diffusers' step casts to the velocity's; the same for float32, and
    float32 latents of a bfloat16 model stay float32)."""
    import torch

    dt = sigma_to - sigma
    return (sample.to(torch.float32) + dt * velocity).to(torch.promote_types(sample.dtype, velocity.dtype))


def midpoint(lo: "torch.Tensor", hi: "torch.Tensor") -> "torch.Tensor":
    """The σ halfway between two levels (one formula for inversion and sampling, so both
    meet at the same σ)."""
    return lo + (hi - lo) / 2


def _flow_config(config: dict) -> dict:
    """A ``FlowMatchEulerDiscreteScheduler`` config from a flow scheduler's config (a UniPC
    ``use_flow_sigmas`` config names the shift ``flow_shift``)."""
    out = {k: v for k, v in config.items() if not k.startswith("_")}
    if "shift" not in out and "flow_shift" in out:
        out["shift"] = out["flow_shift"]
    return out


Velocity = Callable[["torch.Tensor", "torch.Tensor"], "torch.Tensor"]


def invert_ode(velocity: Velocity, latents: "torch.Tensor", sched: FlowMatchScheduler, solver: str = "euler",
               on_level: Callable[[int, "torch.Tensor", int], None] | None = None,
               on_step: Callable[[int, int], None] | None = None, steps: int | None = None) -> "torch.Tensor":
    """Integrate ``dx/dσ = velocity(x, σ)`` from the clean ``latents`` (σ = 0) up the grid of
    ``sched`` (``set_timesteps`` done) to σ₀, with ``solver``. After each step
    ``on_level(key, x, level_key)`` gets the latent at the level reached (and, for the second-order
    solvers, ``on_level(mid_key, x_mid, level_key)`` first gets the step's midpoint latent,
    which a second-order sampler's source branch needs) and ``on_step(done, total)`` the
    progress. ``velocity(x, σ)`` gets σ as a 0-dim float32 tensor. ``steps``: stop after this
    many steps (no level above the highest one kept). Returns the last latent reached."""
    if solver not in SOLVERS:
        raise InputError(f"unknown flow inversion solver {solver!r}; choose one of {', '.join(SOLVERS)}")
    sigmas = sched.sigmas
    n = len(sigmas) - 1
    total = n if steps is None else min(steps, n)
    x = latents
    carried = None  # fireflow: the previous step's midpoint velocity
    for done, j in enumerate(range(n - 1, n - 1 - total, -1), start=1):
        lo, hi = sigmas[j + 1], sigmas[j]
        if solver == "euler":
            x = euler(x, velocity(x, lo), lo, hi)
        else:
            mid = midpoint(lo, hi)
            start = velocity(x, lo) if (solver == "midpoint" or carried is None) else carried
            x_mid = euler(x, start, lo, mid)
            if on_level is not None:
                on_level(sigma_key(mid), x_mid, sigma_key(hi))
            v_mid = velocity(x_mid, mid)
            x = euler(x, v_mid, lo, hi)
            carried = v_mid
        if on_level is not None:
            on_level(sigma_key(hi), x, sigma_key(hi))
        if on_step is not None:
            on_step(done, total)
    return x
