"""Inversion solvers for DDIM-family backbones (backbone-agnostic).

DDIM sampling and inversion are discretisations of one ODE. Writing ``ā`` for the
cumulative alpha of a noise level, ``x̄ = x/√ā`` and ``s = √((1−ā)/ā)``, it reads
``dx̄/ds = ε(x, t)``; one DDIM step from level ``a`` to level ``b`` is the Euler step
``x̄_b = x̄_a + (s_b − s_a)·ε`` (:func:`ddim_move`). The reference's inversion (diffusers'
``DDIMInverseScheduler``, solver ``ddim``) takes that step *upwards* with ε predicted at the
lower latent but the upper timestep: first order, so it needs many small steps (500). The
solvers here reach the same ODE with far fewer model calls:

- ``heun``: the trapezoidal (Heun) step, ε averaged between the lower latent (at its own
  timestep) and an Euler predictor at the upper one: second order, two calls per step. On
  the edit's own 50-step grid it lands near the ODE's solution, which the 500-step DDIM
  inversion approximates to first order (docs/performance.md has the measured distances).
- ``renoise``: the implicit step of ReNoise (Garibi et al. 2024): the upper latent ``x_b``
  is refined towards the fixed point of ``x_b = move(x_a, ε(x_b, t_b))``, starting from the
  DDIM step, with :data:`RENOISE_ITERATIONS` refinements; each re-predicts ε at the current
  estimate and the step takes the mean of the refinements' ε so far (ReNoise averages its
  iterations' predictions too). The fixed point is what a DDIM *sampler* on the same grid
  maps back onto the source, so it reconstructs best; it is not the ODE's solution. It is
  the ``--preset fast`` solver (:data:`FAST_SOLVER`): on the edit's 50-step grid it costs
  3 x 49 = 147 calls instead of 481 and reconstructs far better (docs/performance.md).

The default ``ddim`` is the reference's and is not computed here: :func:`~anyv2v_core.sampling.invert`
keeps calling the backbone's own inverse scheduler for it (bit-identical to the reference).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Mapping

from .errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    import torch

#: Inversion solvers of DDIM-family backbones; the first is the reference's.
SOLVERS = ("ddim", "heun", "renoise")
#: Refinements per ReNoise step (one model call each, after the DDIM predictor's).
RENOISE_ITERATIONS = 2
#: Model calls of each solver for ``n`` steps.
SOLVER_CALLS: Mapping[str, Callable[[int], int]] = {
    "ddim": lambda n: n, "heun": lambda n: 2 * n, "renoise": lambda n: (1 + RENOISE_ITERATIONS) * n,
}
#: The solver of ``--preset fast``, chosen by measurement (docs/performance.md).
FAST_SOLVER = "renoise"

#: ``predict(latent, model_timestep) -> model output`` (the backbone's denoiser, conditioned).
PredictFn = Callable[["torch.Tensor", int], "torch.Tensor"]


def to_epsilon(output: "torch.Tensor", x: "torch.Tensor", alpha_bar: "torch.Tensor", prediction_type: str):
    """The noise ε of a model ``output`` at latent ``x`` of level ``alpha_bar``, as diffusers'
    DDIM schedulers derive it for each prediction type."""
    if prediction_type == "epsilon":
        return output
    if prediction_type == "v_prediction":
        return alpha_bar.sqrt() * output + (1 - alpha_bar).sqrt() * x
    if prediction_type == "sample":
        return (x - alpha_bar.sqrt() * output) / (1 - alpha_bar).sqrt()
    raise InputError(f"unsupported prediction type {prediction_type!r} for inversion")


def ddim_move(x: "torch.Tensor", eps: "torch.Tensor", alpha_from, alpha_to) -> "torch.Tensor":
    """The DDIM step (η = 0) of latent ``x`` at level ``alpha_from`` to level ``alpha_to``
    with noise ``eps``: ``√ā_to·x̂₀ + √(1−ā_to)·ε`` with ``x̂₀ = (x − √(1−ā_from)·ε)/√ā_from``."""
    x0 = (x - (1 - alpha_from).sqrt() * eps) / alpha_from.sqrt()
    return alpha_to.sqrt() * x0 + (1 - alpha_to).sqrt() * eps


class _Levels:
    """Cumulative alphas of a configured diffusers ``DDIMInverseScheduler``: level ``t`` is
    ``alphas_cumprod[t]``; below the first timestep is the clean latent."""

    def __init__(self, sched) -> None:
        import torch

        self.alphas = sched.alphas_cumprod.to(torch.float32)
        self.clean = torch.as_tensor(float(getattr(sched, "initial_alpha_cumprod", 1.0)))
        self.prediction_type = sched.config.prediction_type
        self.stride = sched.config.num_train_timesteps // sched.num_inference_steps

    def alpha(self, t: int | None):
        return self.clean if t is None or t < 0 else self.alphas[t]


def invert_ddim(
    predict: PredictFn,
    latents: "torch.Tensor",
    sched,
    timesteps: list[int],
    solver: str,
    on_level: Callable[[int, "torch.Tensor"], None],
    on_step: Callable[[int, int], None] | None = None,
) -> "torch.Tensor":
    """Invert clean ``latents`` up the inverse scheduler's ``timesteps`` (its configured
    grid, possibly cut short) with ``solver`` (:data:`SOLVERS`, not ``ddim``).

    ``on_level(t, z_t)`` receives the latent at every level reached, ``on_step(done, total)``
    the progress. Arithmetic is in the latents' dtype, with the scheduler's alphas."""
    import torch

    if solver not in SOLVERS[1:]:
        raise InputError(f"unknown DDIM inversion solver {solver!r}; choose one of {', '.join(SOLVERS)}")
    lv = _Levels(sched)
    x = latents
    previous: int | None = None  # level of x (None: clean)
    for i, t in enumerate(timesteps):
        t = int(t)
        a_from = lv.alpha(previous).to(x.device, x.dtype)
        a_to = lv.alpha(t).to(x.device, x.dtype)

        def eps_at(latent, level_alpha, model_t):
            out = predict(latent, model_t)
            return to_epsilon(out, latent, level_alpha, lv.prediction_type)

        if solver == "heun":
            # the lower end at its own timestep (the clean latent: the lowest model timestep)
            eps_lo = eps_at(x, a_from, 0 if previous is None else previous)
            guess = ddim_move(x, eps_lo, a_from, a_to)
            eps_hi = eps_at(guess, a_to, t)
            x = ddim_move(x, (eps_lo + eps_hi) / 2, a_from, a_to)
        else:  # renoise: the DDIM predictor, then fixed-point refinements of the implicit step
            eps = eps_at(x, a_from, t)  # the reference's evaluation: lower latent, upper timestep
            guess = ddim_move(x, eps, a_from, a_to)
            refined = []
            for _ in range(RENOISE_ITERATIONS):
                refined.append(eps_at(guess, a_to, t))
                guess = ddim_move(x, torch.stack(refined).mean(0), a_from, a_to)
            x = guess
        previous = t
        on_level(t, x)
        if on_step is not None:
            on_step(i + 1, len(timesteps))
    return x
