"""``anyv2v batch`` (resumable manifest runs, optionally on Ray) and ``anyv2v eval`` (CLIP metrics)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer

from ..console import STAGE_LABELS, err, out
from ..errors import InputError
from .app import app, with_settings


def _ray_command_class() -> type:
    """A Typer command class whose ``--ray`` takes an optional value: ``--ray`` alone (or
    followed by something that is not a Ray address, e.g. the manifest) means ``--ray local``.
    Typer has no optional-value options, so the arguments are rewritten before parsing."""
    from typer.core import TyperCommand

    class RayCommand(TyperCommand):
        def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
            from ..batch_ray import is_address

            fixed: list[str] = []
            for i, arg in enumerate(args):
                if arg == "--":
                    fixed.extend(args[i:])
                    break
                fixed.append(arg)
                if arg == "--ray" and (i + 1 == len(args) or not is_address(args[i + 1])):
                    fixed.append("local")
            return super().parse_args(ctx, fixed)

    return RayCommand


class _RichReporter:
    """One rich display: the batch bar (done/failed/left, ETA) and the current item's
    stage bars (DDIM inversion, PnP sampling)."""

    def __init__(self, console: Any) -> None:
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                   TimeRemainingColumn)

        self.console = console
        self.progress = Progress(TextColumn("{task.description:<40}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), TimeRemainingColumn(), console=console, transient=False)
        self.batch: Any = None
        self.stages: dict[str, Any] = {}
        self.counts = {"ok": 0, "failed": 0}
        self.total = 0

    def __enter__(self) -> "_RichReporter":
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.__exit__(*exc)

    def _describe(self) -> str:
        left = self.total - self.counts["ok"] - self.counts["failed"]
        return f"batch: {self.counts['ok']} ok, {self.counts['failed']} failed, {left} left"

    def start(self, pending: int, skipped: int) -> None:
        self.total = pending
        if skipped:
            self.console.print(f"skipping {skipped} item(s) already done (see results.jsonl)", soft_wrap=True)
        self.batch = self.progress.add_task(self._describe(), total=pending)

    def log(self, message: str) -> None:
        self.progress.console.print(message, highlight=False, soft_wrap=True)

    def item_started(self, item: Any) -> None:
        for task in self.stages.values():
            self.progress.remove_task(task)
        self.stages.clear()
        self.progress.update(self.batch, description=f"{self._describe()} [{item.id}]")

    def stage(self, stage: str, done: int, total: int) -> None:
        if stage not in self.stages:
            self.stages[stage] = self.progress.add_task("  " + STAGE_LABELS.get(stage, stage), total=total)
        self.progress.update(self.stages[stage], completed=done, total=total)

    def item_finished(self, item: Any, record: dict[str, Any]) -> None:
        self.counts["ok" if record["status"] == "ok" else "failed"] += 1
        self.progress.update(self.batch, advance=1, description=self._describe())
        if record["status"] == "ok":
            metrics = record.get("metrics")
            names = {"clip_text": "CLIP-Text", "clip_image": "CLIP-Image", "flicker": "flicker"}
            extra = ",".join(f" {n} {metrics[k]:.4f}" for k, n in names.items() if k in (metrics or {}))
            self.log(f"[green]ok[/] {item.id} -> {record['out']} ({record['timings']['total']:.1f}s){extra}")
        else:
            self.log(f"[red]failed[/] {item.id} (line {item.line}): {record['error']}")


def _metric_options() -> dict[str, Any]:
    from ..metrics import DEFAULT_CLIP
    from ..video_metrics import DEFAULT_DINO, DEFAULT_FLOW, DEFAULT_METRICS, METRICS

    return {
        "metrics": typer.Option(",".join(DEFAULT_METRICS), "--metrics", help=f"Metrics to compute, comma-separated: "
                                f"{', '.join(METRICS)} or all (definitions in docs/batch-and-eval.md)."),
        "clip_model": typer.Option(DEFAULT_CLIP, "--clip-model", help="CLIP model for the metrics: a hub id or a "
                                   "local folder (safetensors)."),
        "dino_model": typer.Option(DEFAULT_DINO, "--dino-model", help="DINOv2 model of the dino metric: a hub id or "
                                   "a local folder (safetensors)."),
        "flow_model": typer.Option(DEFAULT_FLOW, "--flow-model", help="RAFT of the warp metric: raft_large or "
                                   "raft_small (torchvision's weights) or a local .safetensors/.pth file."),
    }


_M = _metric_options()


@app.command("eval")
@with_settings("eval")
def eval_(
    edited: Path = typer.Argument(..., help="Edited video or folder of frames (all its frames are scored)."),
    prompt: str = typer.Option(..., "--prompt", "-p", help="The prompt the clip should match (CLIP-Text)."),
    source: Optional[Path] = typer.Option(None, "--source", "-s", help="Source video or frames: also report "
                                          "source fidelity (mean per-frame CLIP image cosine)."),
    edited_frame: Optional[Path] = typer.Option(None, "--edited-frame", "-e", help="The edited first frame: "
                                                "also report first-frame fidelity (SSIM, PSNR)."),
    metrics: str = _M["metrics"],
    clip_model: str = _M["clip_model"],
    dino_model: str = _M["dino_model"],
    flow_model: str = _M["flow_model"],
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    **settings: Any,
) -> None:
    """Metrics of an edited clip (CLIP-Text/CLIP-Image of the paper's §5.3, VBench subject
    consistency and flickering, warp error, first-frame fidelity), naming every model used."""
    from ..video_metrics import MetricSpec, evaluate_files, format_report, parse_metrics

    spec = MetricSpec(parse_metrics(metrics), clip_model, dino_model, flow_model)
    result = evaluate_files(edited, prompt, source, edited_frame, spec, device=settings["device"])
    if as_json:
        print(json.dumps(result, indent=2))
    else:
        out.print(format_report(result), highlight=False)


@app.command("batch", cls=_ray_command_class())
@with_settings("batch")
def batch(
    manifest: Path = typer.Argument(..., help="JSONL manifest (one edit per line) or YAML (.yaml/.yml: a "
                                    "list of edits); schema in docs/batch-and-eval.md."),
    out_dir: Optional[Path] = typer.Option(None, "--out-dir", "-o", help="Outputs and results.jsonl "
                                           "(default: <manifest folder>/<manifest name>-out)."),
    evaluate: bool = typer.Option(False, "--eval", help="Score every output (--metrics; into results.jsonl)."),
    metrics: str = _M["metrics"],
    clip_model: str = _M["clip_model"],
    dino_model: str = _M["dino_model"],
    flow_model: str = _M["flow_model"],
    ray: Optional[str] = typer.Option(None, "--ray", metavar="[ADDRESS]", help="Spread the items over a Ray "
                                      "cluster: --ray alone starts a local Ray instance; ADDRESS is local, auto "
                                      "(the cluster of `ray start` on this machine), ray://HOST:PORT or "
                                      "HOST:PORT. Same outputs, results.jsonl and resume."),
    workers: Optional[int] = typer.Option(None, "--workers", min=1, help="With --ray: worker actors, each "
                                          "with its own loaded pipeline (default: the cluster's GPUs / "
                                          "--gpus-per-worker, or 2 without GPUs; at most the items to run)."),
    gpus_per_worker: Optional[float] = typer.Option(None, "--gpus-per-worker", min=0, help="With --ray: GPUs "
                                                    "per worker (default 1 if the cluster has GPUs, else 0)."),
    cpus_per_worker: float = typer.Option(1.0, "--cpus-per-worker", min=0, help="With --ray: CPUs per worker."),
    **settings: Any,
) -> None:
    """Run every edit of MANIFEST; re-running resumes (done items are skipped, failed ones
    retried). With --ray the items run on the workers of a Ray cluster. Exit code 0 if all
    items are ok, 1 if some failed, 130 on Ctrl-C."""
    from .. import settings as schema
    from ..batch import check_run_lock, parse_manifest, run_batch
    from ..protocols import MemoryOptions

    if ray is None and (workers is not None or gpus_per_worker is not None or cpus_per_worker != 1.0):
        raise InputError("--workers, --gpus-per-worker and --cpus-per-worker need --ray")
    run = schema.collect(settings, "batch")
    target = out_dir or manifest.parent / f"{manifest.stem}-out"
    items = parse_manifest(manifest, target)
    check_run_lock(target)  # a second run on this folder stops here, before any model is loaded
    device, dtype, force, cache = run["device"], run["dtype"], run["force"], run.cache()
    memory = MemoryOptions(**run.group("memory"))
    scorer = spec = None
    if evaluate:
        from ..video_metrics import MetricSpec, load_suite, parse_metrics

        spec = MetricSpec(parse_metrics(metrics), clip_model, dino_model, flow_model)
        if ray is None:
            scorer = load_suite(spec, device)
    reporter = _RichReporter(err)
    try:
        with reporter:
            if ray is not None:
                from ..batch_ray import run_batch_ray

                summary = run_batch_ray(items, target, address=ray, workers=workers,
                                        gpus_per_worker=gpus_per_worker, cpus_per_worker=cpus_per_worker,
                                        device=device, dtype=dtype, cache=cache, force=force,
                                        clip_model=spec, memory=memory,
                                        reporter=reporter)
            else:
                summary = run_batch(items, target, device=device, dtype=dtype, cache=cache, force=force,
                                    scorer=scorer, memory=memory, reporter=reporter)
    except KeyboardInterrupt:
        c = reporter.counts
        err.print(f"[red]Interrupted[/] after {c['ok']} ok and {c['failed']} failed item(s); no partial output "
                  f"was written. Run the same command again to resume.")
        raise typer.Exit(130) from None
    fresh = len(summary.ok) - len(summary.skipped)
    out.print(f"{len(items)} items: {fresh} ok, {len(summary.skipped)} skipped (done before), "
              f"{len(summary.failed)} failed; results in {summary.results}", highlight=False, soft_wrap=True)
    if evaluate:
        out.print(f"metrics: {spec.describe()}", highlight=False, soft_wrap=True)
    for item_id, error in summary.failed:
        out.print(f"  failed {item_id}: {error}", highlight=False, soft_wrap=True)
    raise typer.Exit(summary.exit_code)
