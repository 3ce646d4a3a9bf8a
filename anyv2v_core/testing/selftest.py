"""``anyv2v selftest``: a whole edit through the real loading and sampling code on a
tiny random model that the backbone builds on the spot. Offline, CPU, seconds."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from ..errors import PluginError
from ..settings import DEFAULT_BACKBONE


def run_selftest(backbone: str = DEFAULT_BACKBONE, keep: Path | None = None, progress=None) -> str:
    from .. import api, video
    from ..plugins import get_registry
    from .tiny import synthetic_frames

    cls = get_registry().backbone(backbone).load()
    if not hasattr(cls, "build_tiny"):
        raise PluginError(f"backbone {backbone!r} provides no tiny model (no build_tiny classmethod)")
    with tempfile.TemporaryDirectory(prefix="anyv2v-selftest-") as tmp:
        work = Path(keep) if keep else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        model = cls.build_tiny(work / "tiny-model")
        # a backbone may need other tiny settings (e.g. Wan: 4k+1 frames, inversion on the edit grid)
        tiny = {"n_frames": 8, "inversion_steps": 20, **getattr(cls, "selftest_settings", {})}
        n_frames = tiny["n_frames"]
        clip_frames = synthetic_frames(n_frames, 64, 64, seed=1)
        source = video.write_video(clip_frames, work / "source.mp4", fps=8, force=True)
        edited = work / "edited_frame.png"
        synthetic_frames(1, 64, 64, seed=2)[0].save(edited)
        built = time.perf_counter() - t0
        result = api.edit(
            source, prompt="a tiny test", edited_frame=edited, backbone=backbone, model=str(model),
            num_frames=n_frames, size=(64, 64), fps=8, steps=10, inversion_steps=tiny["inversion_steps"],
            out=work / "edited.mp4", force=True, device="cpu", dtype="float32", progress=progress,
            cache_dir=Path(tmp) / "cache",  # never an entry in the user's cache
        )
        back = video.read_frames(result.out)
        ok = len(back) == n_frames and back[0].size == (64, 64)
        t = result.timings
        return (
            f"selftest {'passed' if ok else 'FAILED'}: {backbone} tiny model built in {built:.1f}s; "
            f"inversion {t['invert']:.1f}s, sampling {t['edit']:.1f}s; {len(back)} frames "
            f"{back[0].size[0]}x{back[0].size[1]}" + (f"; files in {work}" if keep else "")
        )
