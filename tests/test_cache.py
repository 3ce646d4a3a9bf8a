import time

import numpy as np
import torch
from typer.testing import CliRunner

from anyv2v_core.cache import CacheKey, InversionCache, default_cache_dir, frames_digest
from anyv2v_core.cli import app
from anyv2v_core.inversion import InversionResult
from anyv2v_core.protocols import ClipSpec
from anyv2v_core.testing.tiny import synthetic_frames


def key(**kw):
    base = dict(source="s", backbone="b", model="m", steps=500, prompt="", n_frames=3, width=64, height=64, fps=8,
                dtype="torch.float32", device="cpu", encoding="mean")
    base.update(kw)
    return CacheKey(**base)


def result(timesteps=(961, 941, 1)):
    g = torch.Generator().manual_seed(0)
    return InversionResult({t: torch.randn(1, 4, 3, 8, 8, generator=g) for t in timesteps}, "b", "m",
                           ClipSpec(3, 64, 64, 8), 500, "", np.zeros((64, 64, 3), np.uint8))


def test_store_lookup_and_coverage(tmp_path):
    cache = InversionCache(tmp_path)
    inv = result()
    cache.store(key(), inv)
    hit = cache.lookup(key(), [961, 1])
    assert hit is not None and torch.equal(hit.latents[961], inv.latents[961])
    assert cache.lookup(key(), [961, 921]) is None  # not covered: recompute, entry kept
    assert cache.lookup(key(steps=250), [961]) is None  # another setting: another address
    assert cache.timesteps(key()) == [961, 941, 1]


def test_corrupt_entry_is_detected_and_removed(tmp_path, caplog):
    cache = InversionCache(tmp_path)
    path = cache.store(key(), result())
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF
    path.write_bytes(bytes(data))
    assert cache.lookup(key(), [961]) is None
    assert "corrupt" in caplog.text
    assert not path.exists() and cache.entries() == []


def test_manifest_key_mismatch_is_not_trusted(tmp_path):
    cache = InversionCache(tmp_path)
    cache.store(key(), result())
    manifest = tmp_path / f"{key().digest}.json"
    manifest.write_text(manifest.read_text().replace('"prompt": ""', '"prompt": "other"'))
    assert cache.lookup(key(), [961]) is None
    assert cache.entries() == []


def test_prune_and_cli(tmp_path):
    cache = InversionCache(tmp_path)
    cache.store(key(), result())
    cache.store(key(steps=250), result())
    (tmp_path / "orphan.safetensors").write_bytes(b"x")
    runner = CliRunner()
    r = runner.invoke(app, ["cache", "ls", "--cache-dir", str(tmp_path)])
    assert r.exit_code == 0 and "2 entries" in r.output
    r = runner.invoke(app, ["cache", "prune", "--max-size", "1", "--cache-dir", str(tmp_path)])
    assert r.exit_code == 0 and not (tmp_path / "orphan.safetensors").exists()
    assert cache.entries() == []
    cache.store(key(), result())
    digest = key().digest
    r = runner.invoke(app, ["cache", "rm", digest[:8], "--cache-dir", str(tmp_path)])
    assert r.exit_code == 0 and cache.entries() == []
    r = runner.invoke(app, ["cache", "rm", "--cache-dir", str(tmp_path)])
    assert r.exit_code == 2 and "--all" in r.output
    r = runner.invoke(app, ["cache", "prune", "--max-size", "lots", "--cache-dir", str(tmp_path)])
    assert r.exit_code == 2


def test_prune_older_than(tmp_path):
    cache = InversionCache(tmp_path)
    cache.store(key(), result())
    entry = cache.entries()[0]
    entry.last_used = time.time() - 3 * 86400
    cache._write_manifest(entry)
    assert cache.prune(older_than=86400) == [entry.digest]


def test_frames_digest_and_default_dir(monkeypatch, tmp_path):
    a, b = synthetic_frames(2, 16, 16, seed=1), synthetic_frames(2, 16, 16, seed=2)
    assert frames_digest(a) == frames_digest(synthetic_frames(2, 16, 16, seed=1)) != frames_digest(b)
    monkeypatch.setenv("ANYV2V_CACHE", str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c"
    monkeypatch.delenv("ANYV2V_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_cache_dir() == tmp_path / "anyv2v" / "inversions"
