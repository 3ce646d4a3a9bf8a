"""The model-agnostic half of a backbone built from diffusers/transformers parts.

:class:`DiffusersBackbone` holds what every such backbone needs and nothing model-specific:

* identity: ``model_id``, ``device``, ``dtype``, the backbone's options, and
  ``model_fingerprint`` — the weights' fingerprint (:func:`anyv2v_core.hub.fingerprint` of
  every folder the weights came from) plus the options, so a cached inversion is only
  reused for the same weights AND options (e.g. ConsistI2V's ``frame_stride``);
* the per-prompt text-embedding cache (:meth:`encode_text`);
* VAE coding (:meth:`vae_encode`, :meth:`encode_video`, :meth:`decode_video`),
  ``MemoryOptions.vae_chunk`` frames per call (1, the references', by default);
* :meth:`configure_memory` for every :class:`~anyv2v_core.protocols.MemoryOptions` field:
  VAE chunking and tiling, channels-last convolutions in the denoiser and model CPU
  offload through accelerate's hooks (``cpu_offload_with_hook``).

A subclass implements :meth:`load` (find its files with :meth:`resolve`, build its modules,
set ``denoiser``/``vae``/``tokenizer``/``text_encoder`` and the other attributes named in
``components``, return the weights' folders), plus its schedulers, conditioning, denoiser
call and ``injection_patterns``. Heavy libraries are imported when a backbone is built.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Iterator, Sequence

from .protocols import BackboneDefaults, InjectionPattern, MemoryOptions

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from PIL import Image


def weights_fingerprint(roots: Sequence[str | Path], options: dict[str, Any] | None = None) -> str:
    """Identity of a backbone's weights (every folder in ``roots``, duplicates once) and of
    its ``options`` (``+name=value``, sorted by name)."""
    from .hub import fingerprint

    seen = dict.fromkeys(str(Path(r).resolve()) for r in roots)
    ident = "+".join(fingerprint(r) for r in seen)
    return ident + "".join(f"+{k}={v}" for k, v in sorted((options or {}).items()))


class DiffusersBackbone:
    """Base class of diffusers-style backbones; see the module doc.

    Constructed as the protocol says (``Backbone(model=..., device=..., dtype=...,
    **options)``); a subclass with options takes them as keywords, validates them and
    passes them on to ``super().__init__`` so they enter the fingerprint.
    """

    name: ClassVar[str]
    default_model: ClassVar[str]
    defaults: ClassVar[BackboneDefaults]
    injection_patterns: ClassVar[Sequence[InjectionPattern]] = ()
    #: Attributes holding the models besides ``denoiser`` that ``offload`` manages.
    components: ClassVar[tuple[str, ...]] = ("text_encoder", "vae")

    def __init__(self, model: str | None = None, device: "str | torch.device" = "cpu",
                 dtype: "torch.dtype | None" = None, **options: Any) -> None:
        import torch

        self.model_id = model or self.default_model
        self.device = torch.device(device)
        self.dtype = torch.float32 if dtype is None else dtype
        #: The backbone's own options (already validated), part of the fingerprint.
        self.options = dict(options)
        self.memory = MemoryOptions()
        self._text_cache: dict[str, torch.Tensor] = {}
        self._offload_hooks: dict[int, Any] = {}
        roots = self.load()
        self.model_fingerprint = weights_fingerprint(roots, self.options)

    # -- loading ------------------------------------------------------------------------
    def load(self) -> Sequence[Path]:
        """Build the modules from ``self.model_id``; return the folders the weights came from."""
        raise NotImplementedError

    def resolve(self, required: Sequence[str], allow_patterns: Sequence[str] | None = None,
                model: str | None = None) -> Path:
        """The local folder of ``model`` (default ``self.model_id``) holding ``required``
        (a folder, or a hub id fetched offline-aware); a one-line error names what is missing."""
        from .hub import resolve_model

        return resolve_model(model or self.model_id, required, allow_patterns=allow_patterns)

    def place(self, module: "torch.nn.Module", cast: bool = True) -> "torch.nn.Module":
        """Move ``module`` to the device (and with ``cast`` to the dtype), frozen, in eval mode."""
        import torch

        args = (self.device, self.dtype) if cast else (self.device,)
        torch.nn.Module.to(module, *args)  # not ModelMixin.to: it warns on every dtype cast
        return module.eval().requires_grad_(False)

    @classmethod
    def build_tiny(cls, path: str | Path, seed: int = 0) -> Path:
        """A tiny random model for tests and ``anyv2v selftest``: ``build_tiny_model`` of the
        ``tiny`` module beside the backbone's module."""
        import importlib

        package = cls.__module__.rpartition(".")[0]
        return importlib.import_module(f"{package}.tiny").build_tiny_model(path, seed=seed)

    # -- memory options ---------------------------------------------------------------
    def configure_memory(self, options: MemoryOptions) -> None:
        """Apply :class:`MemoryOptions` (all off by default: the references' numbers).

        ``offload`` is model CPU offload with accelerate's ``cpu_offload_with_hook``: every
        model (``components`` and the denoiser) stays on the CPU and its hook moves it to
        the device when it runs; using another model offloads the previous one, so one
        model at a time occupies the device."""
        import torch

        self.memory = options
        if options.vae_tiling:
            self.vae.enable_tiling()
        else:
            self.vae.disable_tiling()
        fmt = torch.channels_last if options.channels_last else torch.contiguous_format
        for module in self.denoiser.modules():  # the 2D convolutions only (a 3D UNet also has 3D ones)
            if isinstance(module, torch.nn.Conv2d):
                module.to(memory_format=fmt)
        self._remove_offload_hooks()
        if options.offload:
            from accelerate import cpu_offload_with_hook

            for module in self._models():
                _, hook = cpu_offload_with_hook(module, execution_device=self.device)
                self._offload_hooks[id(module)] = hook

    def _models(self) -> list["torch.nn.Module"]:
        models = [getattr(self, name) for name in self.components if getattr(self, name, None) is not None]
        return models + [self.denoiser]

    def _remove_offload_hooks(self) -> None:
        if not self._offload_hooks:
            return
        for hook in self._offload_hooks.values():
            hook.remove()
            hook.model.to(self.device)
        self._offload_hooks.clear()

    @contextmanager
    def on_device(self, module: "torch.nn.Module") -> Iterator["torch.nn.Module"]:
        """Use ``module`` (a model of ``components``); with ``offload``, the other models are
        offloaded first, ``module`` is moved to the device (explicitly: a VAE runs through
        ``encode``/``decode``, which its hook on ``forward`` never sees) and offloaded after."""
        hook = self._offload_hooks.get(id(module))
        if hook is None:
            yield module
            return
        for other in self._offload_hooks.values():
            if other is not hook:
                other.offload()
        module.to(self.device)
        try:
            yield module
        finally:
            hook.offload()

    # -- text -------------------------------------------------------------------------
    def encode_text(self, prompt: str) -> "torch.Tensor":
        """The prompt's text embedding (:meth:`text_hidden_states`), cached per prompt."""
        import torch

        from .modeling import tokenize_prompt

        if prompt not in self._text_cache:
            with torch.inference_mode():
                ids = tokenize_prompt(self.tokenizer, prompt, self.device)
                with self.on_device(self.text_encoder) as encoder:
                    hidden = self.text_hidden_states(encoder, ids)
                self._text_cache[prompt] = hidden.to(self.device, self.dtype)
        return self._text_cache[prompt]

    def text_hidden_states(self, encoder: Any, ids: "torch.Tensor") -> "torch.Tensor":
        """The text encoder's output used as the embedding: its last hidden state."""
        return encoder(ids).last_hidden_state

    # -- VAE --------------------------------------------------------------------------
    def vae_encode(self, pixels: Sequence["torch.Tensor"], generator: "torch.Generator | None" = None) -> "torch.Tensor":
        """Scaled VAE latents ``(N, C, h, w)`` of ``N`` frames ``(1, 3, H, W)`` in [-1, 1]:
        the posterior mean, or a sample drawn with ``generator``; ``memory.vae_chunk``
        frames per VAE call."""
        import torch

        from .modeling import encode_latents

        chunk = self.memory.vae_chunk
        with torch.inference_mode(), self.on_device(self.vae) as vae:
            return torch.cat([encode_latents(vae, torch.cat(list(pixels[i : i + chunk])).to(self.device, self.dtype),
                                             generator) for i in range(0, len(pixels), chunk)])

    def encode_frame(self, image: "Image.Image", generator: "torch.Generator | None" = None) -> "torch.Tensor":
        """``(1, C, h, w)``: the latent of one image (at its own size)."""
        from .modeling import image_to_tensor

        return self.vae_encode([image_to_tensor(image) * 2 - 1], generator)

    def encode_video(self, frames: Sequence["Image.Image"], generator: "torch.Generator | None" = None) -> "torch.Tensor":
        """Clean latents ``(1, C, F, h, w)`` of frames already at the clip size."""
        from .modeling import image_to_tensor

        latents = self.vae_encode([image_to_tensor(f) * 2 - 1 for f in frames], generator)
        return latents.permute(1, 0, 2, 3)[None]

    def decode_video(self, latents: "torch.Tensor") -> "torch.Tensor":
        """Frames ``(F, H, W, 3)`` in [0, 1] on the CPU, ``memory.vae_chunk`` frames per VAE
        call (1 = the references' ``decode_chunk_size``)."""
        import torch

        from .modeling import decode_latent_video

        with torch.inference_mode(), self.on_device(self.vae) as vae:
            return decode_latent_video(vae, latents, self.memory.vae_chunk)
