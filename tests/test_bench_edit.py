"""The benchmark's own logic: its summary table and ratios, and its in-process UNet counter
(the official code is not needed)."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture
def bench():
    """benchmarks/bench_edit.py as a module; sys.path and sys.modules as they were after."""
    path, modules = list(sys.path), set(sys.modules)
    spec = importlib.util.spec_from_file_location("bench_edit_under_test", BENCH / "bench_edit.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it executes
    spec.loader.exec_module(module)
    yield module
    sys.path[:] = path
    for name in set(sys.modules) - modules:
        del sys.modules[name]


def runs(bench, workload, pairs):
    """Runs of one workload: pairs of (official seconds or None, anyv2v seconds)."""
    out = []
    for i, (a, b) in enumerate(pairs):
        if a is not None:
            out.append(bench.Run("official", workload, i, [bench.Proc("o", a, 3, 9, a / 2, 1.0, 1)]))
        out.append(bench.Run("anyv2v", workload, i, [bench.Proc("n", b, 2, 5, b / 2, 2.0, 1)]))
    return out


def test_ratio_is_the_median_of_per_pair_ratios(bench):
    # pair ratios 0.5, 0.9, 1.0 -> median 0.9; the medians of the seconds would give 0.8
    rows = bench.summarize(runs(bench, "repeat", [(10, 5), (20, 18), (30, 30)]), {"repeat": 0.85})
    (row,) = rows
    assert row["ratios"] == pytest.approx([0.5, 0.9, 1.0])
    assert row["ratio"] == pytest.approx(0.9)
    assert (row["official_s"], row["anyv2v_s"]) == (20, 18)
    assert row["met"] is False
    table = bench.markdown_table(rows)
    assert "| 20.0 | 18.0 | 0.90 (0.50, 0.90, 1.00) | ≤ 0.85 (missed by 0.05) |" in table


def test_a_run_of_several_processes_adds_their_times_and_work(bench):
    two = bench.Run("official", "first", 0, [bench.Proc("inv", 40, 500, 500, 30, 3, 1),
                                             bench.Proc("edit", 15, 49, 147, 10, 3, 1)])
    one = bench.Run("anyv2v", "first", 0, [bench.Proc("edit", 44, 530, 603, 38, 4, 1)])
    (row,) = bench.summarize([two, one], {"first": 0.93})
    assert row["ratio"] == pytest.approx(44 / 55) and row["met"] is True
    assert "(met)" in bench.markdown_table([row])
    work = bench.work_table([two, one])
    assert "| first | official | 2 | 549 | 647 | 40.0 / 55.0 | 3.0, 3.0 |" in work


def test_workloads_in_fixed_order_and_without_official_side(bench):
    rows = bench.summarize(runs(bench, "four", [(None, 7)]) + runs(bench, "first", [(None, 9)]), {"four": 0.6})
    assert [r["workload"] for r in rows] == ["first", "four"]
    assert all(r["ratio"] is None and r["official_s"] is None for r in rows)
    assert rows[1]["met"] is None
    table = bench.markdown_table(rows)
    assert "| — | 9.0 | — |" in table and "≤ 0.60 |" in table


def test_estimate_grows_with_the_work(bench):
    args = dict(inversion_steps=500, steps=50)
    one = bench.estimate_seconds(0.3, 0.9, ["first"], True, 1, **args)
    assert bench.estimate_seconds(0.3, 0.9, ["first"], True, 2, **args) == pytest.approx(2 * one)
    assert bench.estimate_seconds(0.3, 0.9, ["first"], False, 1, **args) < one
    # official 500 batch-1 + 49 batch-3 calls, anyv2v 500 + 24 at 3 units + 25 at 2
    assert one == pytest.approx(1000 * 0.3 + 49 * 0.9 + 24 * 0.9 + 25 * 0.6 + 3 * bench.SETUP_GUESS_S)


def test_unet_counter_counts_a_real_unet_in_a_child_process(tmp_path):
    script = tmp_path / "child.py"
    script.write_text(
        "import torch\n"
        "from diffusers import I2VGenXLUNet\n"
        "torch.manual_seed(0)\n"
        "u = I2VGenXLUNet(block_out_channels=(8, 8, 8, 8), layers_per_block=1, norm_num_groups=4,\n"
        "                 cross_attention_dim=8, attention_head_dim=2, num_attention_heads=2).eval()\n"
        "with torch.no_grad():\n"
        "    for b in (1, 3):\n"
        "        u(torch.randn(b, 4, 2, 8, 8), 10, fps=torch.full((b,), 8), image_latents=torch.randn(b, 4, 2, 8, 8),\n"
        "          image_embeddings=torch.randn(b, 8), encoder_hidden_states=torch.randn(b, 3, 8))\n")
    counts = tmp_path / "counts.json"
    subprocess.run([sys.executable, str(BENCH / "unet_counter.py"), str(counts), str(script)], check=True,
                   env={**os.environ, "OMP_NUM_THREADS": "1"})
    c = json.loads(counts.read_text())
    assert (c["calls"], c["units"], c["threads"]) == (2, 4, 1)
    assert c["seconds"] > 0 and c["first_call"] > 0
