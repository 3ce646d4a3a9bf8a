"""Whole-process benchmark: anyv2v against the official AnyV2V I2VGen-XL workflows.

    python benchmarks/bench_edit.py --official ./AnyV2V --official-python ./venv-official/bin/python
    python benchmarks/bench_edit.py                      # anyv2v side only (no official checkout)

Both sides run as separate processes, as their users run them, side by side: per pair the
official run (A) then anyv2v's (B), A B A B ..., one ratio B/A per pair, the median printed.
Same random I2VGen-XL weights (``models.py``: scales ``tiny`` and ``compute``), same 16
source frames and edited first frames (PNG files), same settings (500-step DDIM inversion,
50-step edit, t_idx 1, CFG 9, tau 0.2/0.2/0.5, the default negative prompt), CPU, float32,
one thread per process (OMP_NUM_THREADS=1; the official side also torch.set_num_threads(1)).

Workloads (``--workloads``):

- ``first``: a first edit of a video. Official: its inversion script
  (``run_group_ddim_inversion.py``), then its edit script (``run_group_pnp_edit.py``), two
  processes. anyv2v: one ``anyv2v edit`` with an empty inversion cache.
- ``repeat``: another edit of the same video. Official: its edit script on the saved
  inversion. anyv2v: ``anyv2v edit`` with another edited frame, the inversion cache warm.
- ``four``: 4 edits of one video. Official: its edit script with 4 entries in its configs
  list (one process, one model load, each entry a whole edit). anyv2v: one ``anyv2v edit``
  with four ``--edited-frame`` (warm cache; the 4 edits share the source branch).
- ``fast``: ``anyv2v edit --preset fast`` with an empty cache, against the official first
  edit of the same pair (no target).

Every process's exit status and outputs are checked (the official inversion's per-step
latent files, each edit's mp4 and PNG frames; anyv2v's mp4s): a failed run stops the
benchmark with its log, it is never a time. Per side and workload the UNet calls and batch
units are counted inside the processes (``unet_counter.py``; the official side through
``official_shim.py``), with the time spent in the UNet and each process's setup time (from
launch to its first UNet call), so the reader sees both sides do the same work.

Set-up of the official side (scratch, outside the project; pins of its ``i2vgen-xl``
environment, SPEC §6):

    # ./AnyV2V: a checkout of the official code (GitHub TIGER-AI-Lab/AnyV2V; only i2vgen-xl/ is used)
    python3 -m venv ./venv-official
    ./venv-official/bin/pip install torch==2.14.1 torchvision==0.29.1
    ./venv-official/bin/pip install diffusers==0.26.3 transformers==4.36.2 huggingface_hub==0.20.3 \\
        accelerate==0.27.2 "numpy<2" opencv-python-headless omegaconf

(any torch with a CPU works; install it first so the pins do not pull another.) The
checkout is used unmodified: ``official_shim.py`` redirects its hard-coded hub id, CUDA and
float16 to the local folder, CPU and float32 at run time.

Run this script with the Python that has anyv2v installed. ``--inversion-steps`` and
``--steps`` shrink the work for a smoke run (the inversion grid must contain the edit's
timesteps: e.g. 20 and 10). The estimated total time is printed before anything runs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from models import SCALES, Scale, build_model  # noqa: E402

WORKLOADS = ("first", "repeat", "four", "fast")
LABELS = {
    "first": "first edit (official: inversion + edit process)",
    "repeat": "repeat edit (official: edit script on the saved inversion; anyv2v: cache hit)",
    "four": "4 edits (official: 4 entries in one process)",
    "fast": "`--preset fast` vs the official first edit",
}
#: Targets of issue 20 (anyv2v / official wall time, median of the pairs).
TARGETS = {"compute": {"first": 0.93, "repeat": 0.85, "four": 0.6}, "tiny": {"repeat": 1.00}}
FOUR = 4
PROMPT = "an edited video"
TAU_TA = 0.5  # the backbone's default temporal-injection fraction (for the estimate only)
SETUP_GUESS_S = 5.0  # per process, for the estimate only


class BenchError(RuntimeError):
    pass


@dataclass
class Proc:
    """One measured process."""

    name: str
    seconds: float
    calls: int
    units: int
    unet_seconds: float
    setup_seconds: float | None
    threads: int | None


@dataclass
class Run:
    """One side of one workload in one pair (one or more processes)."""

    side: str
    workload: str
    pair: int
    procs: list[Proc] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return sum(p.seconds for p in self.procs)

    @property
    def calls(self) -> int:
        return sum(p.calls for p in self.procs)

    @property
    def units(self) -> int:
        return sum(p.units for p in self.procs)

    @property
    def unet_seconds(self) -> float:
        return sum(p.unet_seconds for p in self.procs)


# --------------------------------------------------------------------------- summary (pure)

def summarize(runs: list[Run], targets: dict[str, float]) -> list[dict]:
    """One row per workload: median seconds per side, the median of the per-pair ratios
    anyv2v/official, the target and whether it is met. A side that did not run is None."""
    rows = []
    for w in [w for w in WORKLOADS if any(r.workload == w for r in runs)]:
        by_pair: dict[int, dict[str, Run]] = {}
        for r in runs:
            if r.workload == w:
                by_pair.setdefault(r.pair, {})[r.side] = r
        off = [p["official"].seconds for p in by_pair.values() if "official" in p]
        new = [p["anyv2v"].seconds for p in by_pair.values() if "anyv2v" in p]
        ratios = [p["anyv2v"].seconds / p["official"].seconds for p in by_pair.values()
                  if "official" in p and "anyv2v" in p]
        ratio = statistics.median(ratios) if ratios else None
        target = targets.get(w)
        rows.append({
            "workload": w, "pairs": len(by_pair),
            "official_s": statistics.median(off) if off else None,
            "anyv2v_s": statistics.median(new) if new else None,
            "ratios": ratios, "ratio": ratio, "target": target,
            "met": None if ratio is None or target is None else ratio <= target,
        })
    return rows


def markdown_table(rows: list[dict]) -> str:
    def num(x, fmt):
        return "—" if x is None else format(x, fmt)

    lines = ["| workload | official s | anyv2v s | ratio (median of pairs) | target |",
             "|---|---|---|---|---|"]
    for r in rows:
        if r["target"] is None:
            target = ""
        elif r["met"] is None:
            target = f"≤ {r['target']:.2f}"
        elif r["met"]:
            target = f"≤ {r['target']:.2f} (met)"
        else:
            target = f"≤ {r['target']:.2f} (missed by {r['ratio'] - r['target']:.2f})"
        ratio = num(r["ratio"], ".2f")
        if len(r["ratios"]) > 1:
            ratio += " (" + ", ".join(f"{x:.2f}" for x in r["ratios"]) + ")"
        lines.append(f"| {LABELS[r['workload']]} | {num(r['official_s'], '.1f')} | {num(r['anyv2v_s'], '.1f')} "
                     f"| {ratio} | {target} |")
    return "\n".join(lines)


def work_table(runs: list[Run]) -> str:
    """Per side and workload (first pair): processes, UNet calls / batch units, seconds in
    the UNet, setup seconds of each process (launch to first UNet call). The official side
    of ``fast`` is the same pair's official first edit."""
    lines = ["| workload | side | processes | UNet calls | batch units | UNet s / wall s | setup s per process |",
             "|---|---|---|---|---|---|---|"]
    first_pair = min((r.pair for r in runs), default=0)
    for r in runs:
        if r.pair != first_pair:
            continue
        setups = ", ".join("—" if p.setup_seconds is None else f"{p.setup_seconds:.1f}" for p in r.procs)
        lines.append(f"| {r.workload} | {r.side} | {len(r.procs)} | {r.calls} | {r.units} "
                     f"| {r.unet_seconds:.1f} / {r.seconds:.1f} | {setups} |")
    return "\n".join(lines)


def estimate_seconds(c1: float, c3: float, workloads: list[str], official: bool, pairs: int,
                     inversion_steps: int, steps: int, t_idx: int = 1) -> float:
    """Rough wall time of the whole comparison from one UNet call's cost at batch 1 and 3
    (linear in the batch) and a guessed per-process setup."""
    def call(b: float) -> float:
        return c1 + (b - 1) * (c3 - c1) / 2

    visited = steps - t_idx
    with_source = max(0, min(visited, int(steps * TAU_TA) - t_idx))

    def anyv2v_sampling(k: int) -> float:
        return with_source * call(1 + 2 * k) + (visited - with_source) * call(2 * k)

    off_first = inversion_steps * c1 + visited * c3 + 2 * SETUP_GUESS_S
    total = 0.0
    for w in workloads:
        if w == "first":
            total += (off_first if official else 0) + inversion_steps * c1 + anyv2v_sampling(1) + SETUP_GUESS_S
        elif w == "repeat":
            total += (visited * c3 + SETUP_GUESS_S if official else 0) + anyv2v_sampling(1) + SETUP_GUESS_S
        elif w == "four":
            total += (FOUR * visited * c3 + SETUP_GUESS_S if official else 0) + anyv2v_sampling(FOUR) + SETUP_GUESS_S
        elif w == "fast":
            total += (off_first if official and "first" not in workloads else 0)
            total += steps * c1 + anyv2v_sampling(1) + SETUP_GUESS_S
    prep = 0.0
    if "first" not in workloads and {"repeat", "four"} & set(workloads):
        prep = (inversion_steps * c1 + 2 * SETUP_GUESS_S) * (2 if official else 1)
    return prep + pairs * total


# --------------------------------------------------------------------------- processes

def measure(name: str, cmd: list[str], run_dir: Path, env: dict, check) -> Proc:
    """Run ``cmd`` (its UNet counts go to run_dir/counts.json), check its exit status and,
    with ``check()``, its outputs; return its wall time and counts."""
    run_dir.mkdir(parents=True, exist_ok=True)
    counts_file = run_dir / "counts.json"
    log = run_dir / "log.txt"
    launched = time.time()
    t0 = time.perf_counter()
    with open(log, "w") as out:
        rc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=run_dir).returncode
    seconds = time.perf_counter() - t0
    tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
    if rc != 0:
        raise BenchError(f"{name} failed (exit {rc}); {log}:\n{tail}\ncommand: {' '.join(cmd)}")
    problem = check()
    if problem:
        raise BenchError(f"{name}: {problem}; {log}:\n{tail}")
    if not counts_file.is_file():
        raise BenchError(f"{name}: no UNet counts written ({counts_file})")
    c = json.loads(counts_file.read_text())
    if c["threads"] not in (None, 1):
        raise BenchError(f"{name} ran with {c['threads']} torch threads, not 1")
    setup = None if c["first_call"] is None else c["first_call"] - launched
    return Proc(name, seconds, c["calls"], c["units"], c["seconds"], setup, c["threads"])


def _files(pattern_dir: Path, glob: str) -> list[Path]:
    return sorted(p for p in pattern_dir.glob(glob) if p.is_file() and p.stat().st_size > 0)


class Official:
    """The official scripts, each run through official_shim.py by the official venv's python."""

    def __init__(self, checkout: Path, python: str, model: Path, scale: Scale, data: Path,
                 inversion_steps: int, steps: int, env: dict):
        self.checkout, self.python, self.model, self.scale = checkout, python, model, scale
        self.data, self.inversion_steps, self.steps, self.env = data, inversion_steps, steps, env

    def _cmd(self, script: str, run_dir: Path, entries: list[dict], sets: list[str]) -> list[str]:
        configs = run_dir / "entries.json"
        run_dir.mkdir(parents=True, exist_ok=True)
        configs.write_text(json.dumps(entries, indent=1))
        s = self.scale
        common = [f"image_size=[{s.size},{s.size}]", f"n_frames={s.frames}", f"data_dir={run_dir}",
                  f"video_dir={self.data / 'video'}"]
        cmd = [self.python, str(HERE / "official_shim.py"), "--official", str(self.checkout), "--model",
               str(self.model), "--script", script, "--configs", str(configs), "--counts",
               str(run_dir / "counts.json")]
        for kv in common + sets:
            cmd += ["--set", kv]
        return cmd

    def invert(self, run_dir: Path) -> tuple[Proc, Path]:
        latents = run_dir / "inversions" / "i2vgen-xl" / "clip" / "ddim_latents"
        entries = [{"active": True, "force_recompute_latents": True, "video_name": "clip"}]
        cmd = self._cmd("inversion", run_dir, entries, [f"inverse_config.n_steps={self.inversion_steps}",
                                                        "recon_config.enable_recon=false"])

        def check():
            n = len(_files(latents, "ddim_latents_*.pt"))
            return None if n == self.inversion_steps else f"{n} inverted latent files, expected {self.inversion_steps}"

        return measure("official inversion", cmd, run_dir, self.env, check), latents

    def edit(self, run_dir: Path, latents: Path, frames: list[Path]) -> Proc:
        entries = [{"active": True, "video_name": "clip", "edited_first_frame_path": str(f),
                    "editing_prompt": PROMPT, "edited_video_name": f"edit{i}"} for i, f in enumerate(frames)]
        cmd = self._cmd("edit", run_dir, entries, [f"n_steps={self.steps}", f"ddim_latents_path={latents}"])

        def check():
            for i in range(len(frames)):
                videos = _files(run_dir / "Results", f"*/i2vgen-xl/clip/edit{i}/*/video.mp4")
                pngs = _files(run_dir / "Results", f"*/i2vgen-xl/clip/edit{i}/*/video_*.png")
                if len(videos) != 1 or len(pngs) != self.scale.frames:
                    return f"edit {i}: {len(videos)} video.mp4 and {len(pngs)} PNG frames written"
            return None

        return measure(f"official edit x{len(frames)}", cmd, run_dir, self.env, check)


class Anyv2v:
    """``anyv2v edit`` processes (this interpreter's anyv2v), through unet_counter.py."""

    def __init__(self, model: Path, scale: Scale, data: Path, inversion_steps: int, steps: int, env: dict):
        self.model, self.scale, self.data = model, scale, data
        self.inversion_steps, self.steps, self.env = inversion_steps, steps, env

    def edit(self, run_dir: Path, cache: Path | None, frames: list[Path], preset: str | None = None,
             name: str = "anyv2v edit", steps: int | None = None, inversion_steps: int | None = None) -> Proc:
        run_dir.mkdir(parents=True, exist_ok=True)
        s = self.scale
        cmd = [sys.executable, str(HERE / "unet_counter.py"), str(run_dir / "counts.json"),
               "-m", "anyv2v_core.cli", "edit", str(self.data / "video" / "clip"), "-p", PROMPT]
        for f in frames:
            cmd += ["-e", str(f)]
        cmd += ["--model", str(self.model), "--size", s.size_arg, "-n", str(s.frames), "--device", "cpu",
                "--dtype", "float32", "--steps", str(steps or self.steps), "-o", str(run_dir / "edited.mp4")]
        cmd += ["--cache-dir", str(cache)] if cache else ["--no-cache"]
        cmd += ["--preset", preset] if preset else ["--inversion-steps", str(inversion_steps or self.inversion_steps)]
        outs = ([run_dir / "edited.mp4"] if len(frames) == 1
                else [run_dir / f"edited-{i}.mp4" for i in range(len(frames))])

        def check():
            missing = [o.name for o in outs if not (o.is_file() and o.stat().st_size > 0)]
            return f"missing output {', '.join(missing)}" if missing else None

        return measure(name, cmd, run_dir, self.env, check)


# --------------------------------------------------------------------------- the benchmark

def make_data(folder: Path, scale: Scale) -> list[Path]:
    """The source frames (folder/video/clip/00000.png ...) and 8 edited first frames."""
    from anyv2v_core.testing.tiny import synthetic_frames

    clip = folder / "video" / "clip"
    clip.mkdir(parents=True, exist_ok=True)
    for i, frame in enumerate(synthetic_frames(scale.frames, scale.size, scale.size, seed=1)):
        frame.save(clip / f"{i:05d}.png")
    edits = []
    for i in range(8):
        path = folder / "edited" / f"e{i}.png"
        path.parent.mkdir(exist_ok=True)
        synthetic_frames(1, scale.size, scale.size, seed=10 + i)[0].save(path)
        edits.append(path)
    return edits


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def bench_scale(scale: Scale, args, env: dict, root: Path) -> dict:
    import torch

    from models import time_unet_call

    print(f"\n## scale {scale.name}: {scale.frames} frames {scale.size}x{scale.size}, {scale.channels} channels",
          flush=True)
    model = build_model(scale, root / "models")
    data = root / scale.name
    if data.exists():
        shutil.rmtree(data)
    edits = make_data(data, scale)
    torch.set_num_threads(1)
    c1 = time_unet_call(model, scale, 1, repeats=1)
    c3 = time_unet_call(model, scale, 3, repeats=1)
    official_on = args.official is not None
    est = estimate_seconds(c1, c3, args.workloads, official_on, args.pairs, args.inversion_steps, args.steps)
    print(f"one UNet call, this process, 1 thread: batch 1 {c1:.3f} s, batch 3 {c3:.3f} s", flush=True)
    print(f"estimated total for this scale ({args.pairs} pair(s) of {', '.join(args.workloads)}): "
          f"{est / 60:.0f} min at these per-call costs (a busy machine is slower)", flush=True)

    off = (Official(args.official, args.official_python, model, scale, data, args.inversion_steps, args.steps, env)
           if official_on else None)
    new = Anyv2v(model, scale, data, args.inversion_steps, args.steps, env)
    runs_dir = data / "runs"
    warm_cache = data / "cache-warm"
    state: dict = {"saved_latents": None, "warm": False}
    runs: list[Run] = []
    extra: dict = {"unet_call_batch1_s": c1, "unet_call_batch3_s": c3, "estimated_s": est}

    # Untimed warm-up of each side (imports and the model files into the page cache).
    if off:
        warm = Official(args.official, args.official_python, model, scale, data, 1, args.steps, env)
        warm.invert(runs_dir / "warmup-official")
    new.edit(runs_dir / "warmup-anyv2v", None, edits[7:], name="anyv2v warm-up", steps=2, inversion_steps=2)

    def ensure_saved():
        """The saved official inversion and anyv2v's warm cache for repeat/four (untimed if
        no first edit made them)."""
        if off and state["saved_latents"] is None:
            print("  (untimed) official inversion to edit from", flush=True)
            _, state["saved_latents"] = off.invert(runs_dir / "prep-official-inversion")
        if not state["warm"]:
            print("  (untimed) anyv2v first edit to fill the inversion cache", flush=True)
            new.edit(runs_dir / "prep-anyv2v", warm_cache, edits[6:7])
            state["warm"] = True

    for pair in range(args.pairs):
        official_first: Run | None = None
        for w in args.workloads:
            tag = f"p{pair}-{w}"
            a = Run("official", w, pair) if off else None
            b = Run("anyv2v", w, pair)
            if w == "first":
                if off:
                    inv_proc, latents = off.invert(runs_dir / f"{tag}-official-inversion")
                    a.procs.append(inv_proc)
                    a.procs.append(off.edit(runs_dir / f"{tag}-official-edit", latents, edits[:1]))
                    official_first = a
                    if state["saved_latents"] is None:
                        state["saved_latents"] = latents
                        extra["official_inversion_bytes"] = dir_bytes(latents)
                cache = warm_cache if not state["warm"] else runs_dir / f"{tag}-cache"
                b.procs.append(new.edit(runs_dir / f"{tag}-anyv2v", cache, edits[:1]))
                if not state["warm"]:
                    state["warm"] = True
                    extra["anyv2v_cache_bytes"] = dir_bytes(warm_cache)
            elif w == "fast":
                if off and official_first is None:
                    inv_proc, latents = off.invert(runs_dir / f"{tag}-official-inversion")
                    a.procs.append(inv_proc)
                    a.procs.append(off.edit(runs_dir / f"{tag}-official-edit", latents, edits[:1]))
                    official_first = a
                elif off:
                    a = Run("official", w, pair, list(official_first.procs))
                b.procs.append(new.edit(runs_dir / f"{tag}-anyv2v", runs_dir / f"{tag}-cache", edits[:1],
                                        preset="fast"))
            else:
                ensure_saved()
                frames = edits[1:2] if w == "repeat" else edits[:FOUR]
                if off:
                    a.procs.append(off.edit(runs_dir / f"{tag}-official", state["saved_latents"], frames))
                b.procs.append(new.edit(runs_dir / f"{tag}-anyv2v", warm_cache, frames))
            for r in (a, b):
                if r is not None:
                    runs.append(r)
            line = f"  pair {pair} {w}: "
            line += f"official {a.seconds:.1f} s, " if a else ""
            line += f"anyv2v {b.seconds:.1f} s" + (f", ratio {b.seconds / a.seconds:.2f}" if a else "")
            print(line, flush=True)
            keep = Path(state["saved_latents"]) if state["saved_latents"] else None
            for big in [*runs_dir.glob(f"{tag}-*/inversions"), *runs_dir.glob(f"{tag}-cache")]:
                if not (keep and big in keep.parents):  # drop inversions but the one edited from
                    shutil.rmtree(big, ignore_errors=True)

    rows = summarize(runs, TARGETS.get(scale.name, {}))
    if not off:
        print("\n(anyv2v side only: pass --official and --official-python for the comparison)")
    print(f"\n### {scale.name}: {scale.frames} frames {scale.size}x{scale.size}, {scale.channels} channels; "
          f"{args.inversion_steps}-step inversion, {args.steps}-step edit, {args.pairs} pair(s)\n")
    print(markdown_table(rows))
    print("\nWork per process (first pair; setup = launch to the first UNet call):\n")
    print(work_table(runs))
    if "official_inversion_bytes" in extra or "anyv2v_cache_bytes" in extra:
        mb = {k: extra.get(f"{k}_bytes", 0) / 1e6 for k in ("official_inversion", "anyv2v_cache")}
        print(f"\nstored inversion: official {mb['official_inversion']:.1f} MB ({args.inversion_steps} pickled "
              f"latents), anyv2v cache {mb['anyv2v_cache']:.1f} MB", flush=True)
    return {"scale": asdict(scale), "rows": rows, "runs": [
        {"side": r.side, "workload": r.workload, "pair": r.pair, "seconds": r.seconds,
         "procs": [asdict(p) for p in r.procs]} for r in runs], **extra}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--official", type=Path,
                   help="checkout of the official code, GitHub TIGER-AI-Lab/AnyV2V (unmodified)")
    p.add_argument("--official-python", help="python of a venv with the official i2vgen-xl pins")
    p.add_argument("--scales", default="tiny,compute", help=f"comma-separated, of {', '.join(SCALES)}")
    p.add_argument("--pairs", type=int, default=1, help="A/B pairs per workload")
    p.add_argument("--workloads", default=",".join(WORKLOADS), help=f"comma-separated, of {', '.join(WORKLOADS)}")
    p.add_argument("--inversion-steps", type=int, default=500)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--work", type=Path, help="working folder (default: a temporary one, removed at the end)")
    p.add_argument("--json", type=Path, help="also write every figure and run here")
    args = p.parse_args()

    if (args.official is None) != (args.official_python is None):
        p.error("--official and --official-python go together")
    if args.official and not (args.official / "i2vgen-xl" / "run_group_pnp_edit.py").is_file():
        p.error(f"{args.official} is not a checkout of the official AnyV2V code (no i2vgen-xl/run_group_pnp_edit.py)")
    args.workloads = [w.strip() for w in args.workloads.split(",") if w.strip()]
    bad = [w for w in args.workloads if w not in WORKLOADS] + [
        s for s in args.scales.split(",") if s not in SCALES]
    if bad:
        p.error(f"unknown workload or scale: {', '.join(bad)}")
    if args.pairs < 1:
        p.error("--pairs must be >= 1")
    if args.official:
        args.official = args.official.resolve()

    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false"}
    root = args.work.resolve() if args.work else Path(tempfile.mkdtemp(prefix="anyv2v-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    if not args.official:
        print("Running the anyv2v side only (no --official/--official-python given).")
    results = {"inversion_steps": args.inversion_steps, "steps": args.steps, "pairs": args.pairs,
               "official": str(args.official) if args.official else None, "scales": []}
    try:
        for name in args.scales.split(","):
            results["scales"].append(bench_scale(SCALES[name], args, env, root))
            if args.json:
                args.json.write_text(json.dumps(results, indent=2))
    except BenchError as e:
        sys.exit(f"benchmark failed: {e}")
    finally:
        if not args.work:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
