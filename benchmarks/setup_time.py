"""Process setup time: from process start to the first I2VGen-XL UNet call.

    python benchmarks/setup_time.py [--model DIR] [--rounds 5]
        [--official-python /path/venv-official/bin/python --official ./AnyV2V --shim benchmarks/official_shim.py]

Runs, in interleaved rounds, each side as its own fresh process on the same 16-frame 64x64
clip and model (default: the tiny random I2VGen-XL, built once into a temporary folder):

- ``anyv2v``: ``anyv2v edit`` (``python -m anyv2v_core.cli``, ``--no-cache``, editor ``image``);
- ``floor``: the least work any I2VGen-XL program does before its first UNet call with the
  installed libraries (import torch/diffusers/transformers, ``from_pretrained`` of the four
  models, tokenizer and image processor, VAE-encode the clip, encode a prompt and an image):
  ``anyv2v - floor`` is anyv2v's own overhead, the rest is the libraries';
- ``official`` (with ``--official-python``): the official inversion script through the shim
  that runs it on a CPU against a local folder, in its own environment;
- ``official-floor``: the same floor with the official environment's libraries.

Each run stops at the first UNet forward (a global forward pre-hook registered right after
``import torch``, the same for every side) and reports the wall seconds since the parent
launched it and the process CPU seconds. Prints the medians, and which heavy modules each
side had imported by then (``torch._dynamo``, ``torchvision``, ``peft``, diffusers pipelines).
One thread (``OMP_NUM_THREADS=1``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SELF = Path(__file__).resolve()
WATCH = {"dynamo": "torch._dynamo", "torchvision": "torchvision", "peft": "peft",
         "pipelines": "diffusers.pipelines"}


# -- inside a measured process (stdlib + torch only: also runs in the official environment) --
def _probe(out: str, t0: float, target: list[str]) -> None:
    import runpy

    import torch

    def first_call(module, args):
        if type(module).__name__ != "I2VGenXLUNet":
            return
        mods = sys.modules
        record = {"wall": time.time() - t0, "cpu": time.process_time(), "modules": len(mods),
                  **{k: any(m == v or m.startswith(v + ".") for m in mods) for k, v in WATCH.items()}}
        Path(out).write_text(json.dumps(record))
        os._exit(0)

    torch.nn.modules.module.register_module_forward_pre_hook(first_call)
    if target[0] == "--floor":
        _floor(*target[1:])
    elif target[0] == "-m":
        sys.argv = [target[1], *target[2:]]
        runpy.run_module(target[1], run_name="__main__", alter_sys=True)
    else:
        sys.argv = list(target)
        sys.path.insert(0, str(Path(target[0]).resolve().parent))
        runpy.run_path(target[0], run_name="__main__")
    raise SystemExit(f"no I2VGen-XL UNet call in {target}")


def _floor(model: str, frames_dir: str) -> None:
    import numpy as np
    import torch
    from diffusers import AutoencoderKL, DDIMInverseScheduler, I2VGenXLUNet
    from PIL import Image
    from transformers import CLIPImageProcessor, CLIPTextModel, CLIPTokenizer, CLIPVisionModelWithProjection

    root = Path(model)
    kw = dict(use_safetensors=True)
    unet = I2VGenXLUNet.from_pretrained(root / "unet", torch_dtype=torch.float32, **kw).eval()
    vae = AutoencoderKL.from_pretrained(root / "vae", torch_dtype=torch.float32, **kw).eval()
    text_encoder = CLIPTextModel.from_pretrained(root / "text_encoder", **kw).eval()
    image_encoder = CLIPVisionModelWithProjection.from_pretrained(root / "image_encoder", **kw).eval()
    tokenizer = CLIPTokenizer.from_pretrained(root / "tokenizer")
    processor = CLIPImageProcessor.from_pretrained(root / "feature_extractor")
    DDIMInverseScheduler.from_pretrained(root / "scheduler").set_timesteps(500)
    with torch.inference_mode():
        files = sorted(Path(frames_dir).glob("*.png"))[:16]
        pixels = torch.stack([torch.from_numpy(np.asarray(Image.open(f).convert("RGB"), dtype=np.float32) / 255)
                              for f in files]).permute(0, 3, 1, 2) * 2 - 1
        latents = torch.cat([vae.encode(p[None]).latent_dist.mean for p in pixels]) * vae.config.scaling_factor
        ids = tokenizer("", padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                        return_tensors="pt").input_ids
        text = text_encoder(ids, output_hidden_states=True).hidden_states[-2]
        crop = processor.crop_size
        embeds = image_encoder(torch.zeros(1, 3, crop["height"], crop["width"])).image_embeds[:, None]
        first = latents[:1, :, None]
        image_latents = torch.cat([first] + [torch.full_like(first, (i + 1) / 15) for i in range(15)], dim=2)
        sample = latents.permute(1, 0, 2, 3)[None]
        unet(sample, torch.tensor([1]), fps=torch.tensor([8]), image_latents=image_latents,
             image_embeddings=embeds, encoder_hidden_states=text, return_dict=False)


# -- the parent ------------------------------------------------------------------------
def _prepare(work: Path, model: str | None) -> tuple[Path, Path, Path]:
    """The clip as data/demo/clip/00000.png ... (the official layout), an edited first frame,
    and the model folder (built tiny when not given)."""
    from PIL import ImageOps

    from anyv2v_core.testing.tiny import synthetic_frames

    frames = work / "data" / "demo" / "clip"
    frames.mkdir(parents=True)
    clip = synthetic_frames(16, 64, 64)
    for i, frame in enumerate(clip):
        frame.save(frames / f"{i:05d}.png")
    edited = work / "edited.png"
    ImageOps.invert(clip[0]).save(edited)
    if model is None:
        from anyv2v_backbone_i2vgenxl.backbone import I2VGenXLBackbone

        model = str(I2VGenXLBackbone.build_tiny(work / "tiny"))
    return frames, edited, Path(model).resolve()


def _run(python: str, target: list[str], work: Path) -> dict:
    out = work / "probe.json"
    out.unlink(missing_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([python, str(SELF), "--probe", str(out), repr(time.time()), *target], cwd=work, env=env,
                          capture_output=True, text=True)
    if not out.exists():
        raise SystemExit(f"{' '.join(target[:3])}: no UNet call (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(out.read_text())


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--probe":
        _probe(sys.argv[2], float(sys.argv[3]), sys.argv[4:])
        return
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", help="I2VGen-XL folder (diffusers layout; default: the tiny random model)")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--official-python", help="python of the official environment (diffusers 0.26.3, ...)")
    p.add_argument("--official", type=Path, help="checkout of the official AnyV2V repository")
    p.add_argument("--shim", type=Path, default=SELF.parent / "official_shim.py")
    p.add_argument("--json", type=Path, help="also write every run here")
    args = p.parse_args()

    with tempfile.TemporaryDirectory(prefix="anyv2v-setup-") as tmp:
        work = Path(tmp)
        frames, edited, model = _prepare(work, args.model)
        sides = {
            "anyv2v": (sys.executable, ["-m", "anyv2v_core.cli", "edit", str(frames), "-p", "a car", "-e", str(edited),
                                        "--editor", "image", "-m", str(model), "--size", "64x64", "-n", "16",
                                        "--no-cache", "-o", str(work / "out.mp4"), "--force", "--device", "cpu"]),
            "floor": (sys.executable, ["--floor", str(model), str(frames)]),
        }
        if args.official_python:
            if args.official is None:
                p.error("--official-python needs --official (the AnyV2V checkout)")
            configs = work / "entries.json"
            configs.write_text(json.dumps([{"active": True, "force_recompute_latents": True, "video_name": "clip"}]))
            sides["official"] = (args.official_python, [
                str(args.shim.resolve()), "--official", str(args.official.resolve()), "--model", str(model),
                "--script", "inversion", "--configs", str(configs), "--counts", str(work / "counts.json"),
                "--set", f"data_dir={work / 'data'}", "--set", "image_size=[64,64]"])
            sides["official-floor"] = (args.official_python, ["--floor", str(model), str(frames)])
        runs: dict[str, list[dict]] = {name: [] for name in sides}
        for r in range(args.rounds):
            for name, (python, target) in sides.items():
                runs[name].append(_run(python, target, work))
                print(f"round {r + 1} {name}: {runs[name][-1]['wall']:.2f}s wall, {runs[name][-1]['cpu']:.2f}s cpu",
                      file=sys.stderr, flush=True)

    print(f"setup to the first UNet call, median of {args.rounds} (wall s / process CPU s):")
    med = {name: {k: statistics.median(x[k] for x in rs) for k in ("wall", "cpu", "modules")} for name, rs in runs.items()}
    for name, m in med.items():
        flags = ", ".join(k for k in WATCH if runs[name][-1][k]) or "none"
        print(f"  {name:15s} {m['wall']:6.2f} / {m['cpu']:5.2f}   {int(m['modules'])} modules; imported: {flags}")
    print(f"  anyv2v's own overhead (anyv2v - floor): {med['anyv2v']['wall'] - med['floor']['wall']:+.2f} / "
          f"{med['anyv2v']['cpu'] - med['floor']['cpu']:+.2f}")
    if "official" in med:
        print(f"  anyv2v / official: {med['anyv2v']['wall'] / med['official']['wall']:.2f} wall, "
              f"{med['anyv2v']['cpu'] / med['official']['cpu']:.2f} cpu; libraries (floor - official-floor): "
              f"{med['floor']['cpu'] - med['official-floor']['cpu']:+.2f} cpu")
    if args.json:
        args.json.write_text(json.dumps(runs, indent=1))


if __name__ == "__main__":
    main()
