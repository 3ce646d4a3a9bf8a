"""Run one of the official AnyV2V I2VGen-XL scripts on a CPU against a local model folder.

    /work/venv-official/bin/python benchmarks/official_shim.py \\
        --official ./AnyV2V --model ./models/tiny --script inversion|edit \\
        --configs entries.json --counts counts.json [--set key=value ...]

Runs ``i2vgen-xl/run_group_ddim_inversion.py`` or ``i2vgen-xl/run_group_pnp_edit.py`` of an
unmodified checkout of the official code (GitHub TIGER-AI-Lab/AnyV2V) as its own process,
with only these run-time changes (nothing in the checkout is edited):

- the hub id ``ali-vilab/i2vgen-xl`` its scripts hard-code resolves to ``--model``, float32
  instead of float16, no ``fp16`` variant (``from_pretrained`` of pipelines and schedulers);
- its template config (``configs/group_*/template.yaml``) gets ``device: cpu`` plus every
  ``--set`` (OmegaConf dot-list, e.g. ``image_size=[64,64]``), written to a temporary copy;
  ``--configs`` is its ``--configs_json`` (the list of entries to process);
- one torch thread (``torch.set_num_threads(1)``);
- the VAE encodes with its posterior mean (the official code samples it with the global RNG;
  anyv2v takes the mean by default), so both sides compute the same thing;
- ``torchvision.io.read_video``/``write_video``, which torchvision >= 0.26 no longer has and
  the official modules import, are supplied (small OpenCV implementations);
- the UNet calls are counted (``unet_counter.py``) and written to ``--counts``.

Needs the official I2VGen-XL environment's pins (SPEC §6): torch (any recent CPU build),
diffusers 0.26.3, transformers 4.36.2, huggingface_hub 0.20.3, accelerate 0.27.2, numpy<2,
opencv-python-headless, omegaconf. See bench_edit.py for the set-up commands.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

HUB_ID = "ali-vilab/i2vgen-xl"
SCRIPTS = {
    "inversion": ("run_group_ddim_inversion.py", "configs/group_ddim_inversion/template.yaml"),
    "edit": ("run_group_pnp_edit.py", "configs/group_pnp_edit/template.yaml"),
}


def _supply_video_io() -> None:
    """Give torchvision.io the read_video/write_video the official modules import."""
    import torchvision.io as tvio

    if hasattr(tvio, "read_video") and hasattr(tvio, "write_video"):
        return

    def read_video(filename, start_pts=0, end_pts=None, pts_unit="pts", output_format="THWC"):
        import cv2
        import numpy as np
        import torch

        cap = cv2.VideoCapture(str(filename))
        frames = []
        while True:
            ok, bgr = cap.read()
            if not ok:
                break
            frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
        fps = cap.get(cv2.CAP_PROP_FPS)
        cap.release()
        if not frames:
            raise RuntimeError(f"read_video: no frames read from {filename}")
        video = torch.from_numpy(np.stack(frames))  # T H W C uint8
        if output_format == "TCHW":
            video = video.permute(0, 3, 1, 2)
        return video, torch.empty(1, 0), {"video_fps": fps}

    def write_video(filename, video_array, fps, video_codec="libx264", options=None, **_):
        import cv2
        import numpy as np

        frames = np.asarray(video_array)  # T H W C uint8
        h, w = frames.shape[1:3]
        out = cv2.VideoWriter(str(filename), cv2.VideoWriter_fourcc(*"mp4v"), float(fps), (w, h))
        for rgb in frames:
            out.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        out.release()

    tvio.read_video = read_video
    tvio.write_video = write_video


def _redirect_loading(model: str) -> None:
    """The official hub id -> ``model``, float32, no fp16 variant; posterior mean."""
    import torch
    from diffusers import DiffusionPipeline
    from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution
    from diffusers.schedulers.scheduling_utils import SchedulerMixin

    def redirect(owner, force_fp32: bool) -> None:
        original = owner.from_pretrained.__func__

        def from_pretrained(cls, name, *args, **kwargs):
            if str(name) == HUB_ID:
                name = model
                kwargs.pop("variant", None)
                if force_fp32:
                    kwargs["torch_dtype"] = torch.float32
            return original(cls, name, *args, **kwargs)

        owner.from_pretrained = classmethod(from_pretrained)

    redirect(DiffusionPipeline, force_fp32=True)
    redirect(SchedulerMixin, force_fp32=False)
    DiagonalGaussianDistribution.sample = lambda self, generator=None: self.mean


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--official", required=True, type=Path, help="checkout of the official AnyV2V repository")
    p.add_argument("--model", required=True, help="local I2VGen-XL folder (diffusers layout)")
    p.add_argument("--script", required=True, choices=sorted(SCRIPTS))
    p.add_argument("--configs", required=True, type=Path, help="the script's --configs_json")
    p.add_argument("--counts", required=True, help="write the UNet call counts here (JSON)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override in the template config (OmegaConf dot-list)")
    args = p.parse_args()

    here = Path(__file__).resolve().parent
    sys.path.insert(0, str(here))
    import unet_counter

    unet_counter.install(args.counts)
    import torch

    torch.set_num_threads(1)
    _supply_video_io()
    _redirect_loading(str(Path(args.model).resolve()))

    from omegaconf import OmegaConf

    code = (args.official / "i2vgen-xl").resolve()
    script, template = SCRIPTS[args.script]
    config = OmegaConf.merge(OmegaConf.load(code / template),
                             OmegaConf.from_dotlist(["device=cpu", *args.set]))
    fd, tmp = tempfile.mkstemp(suffix=".yaml", prefix="official-template-")
    os.close(fd)
    try:
        OmegaConf.save(config, tmp)
        sys.argv = [str(code / script), "--template_config", tmp, "--configs_json", str(args.configs.resolve())]
        unet_counter.run_target(sys.argv)
    finally:
        os.unlink(tmp)


if __name__ == "__main__":
    main()
