"""Facts of the official preprocessing (run_inference.py / data_utils.py) our code keeps.
(Checked bit-exact against the official functions in a scratch set-up; see README.)"""

import numpy as np

from anyv2v_editor_anydoor.preprocess import mask_box, paste_back, prepare


def rect(shape, y0, y1, x0, x1):
    m = np.zeros(shape, np.uint8)
    m[y0:y1, x0:x1] = 1
    return m


def images(seed=0):
    rs = np.random.RandomState(seed)
    ref = rs.randint(0, 256, (50, 40, 3)).astype(np.uint8)
    tar = rs.randint(0, 256, (60, 100, 3)).astype(np.uint8)
    return ref, rect((50, 40), 10, 40, 8, 30), tar, rect((60, 100), 20, 40, 40, 70)


def test_mask_box_ends_at_the_last_pixel_and_tiny_masks_mean_everything():
    assert mask_box(rect((20, 30), 2, 9, 3, 12)) == (2, 8, 3, 11)
    assert mask_box(rect((20, 30), 2, 5, 3, 5)) == (0, 20, 0, 30)  # 6 pixels < 10


def test_prepare_shapes_ranges_and_reference_whitening():
    ref, ref_mask, tar, tar_mask = images()
    p = prepare(ref, ref_mask, tar, tar_mask, np.random.default_rng(0), resolution=64, reference_size=28)
    assert p.reference.shape == (28, 28, 3) and p.hint.shape == (64, 64, 4)
    assert p.reference.min() >= 0 and p.reference.max() <= 1
    assert np.all(p.reference[0, 0] == 1.0)  # outside the subject: white (the 1.2 padding)
    assert set(np.unique(p.hint[..., 3])) == {0.0, 1.0}
    assert p.hint[..., :3].min() >= -1 and p.hint[..., :3].max() <= 1


def test_square_padding_is_marked_in_the_hint_mask():
    ref, ref_mask, tar, tar_mask = images()
    # 60 rows: a 1.5-2.9x context crop of the box is wider than tall after clipping -> padded rows
    p = prepare(ref, ref_mask, tar, tar_mask, np.random.default_rng(3), resolution=64, reference_size=28)
    h1, w1, h2, w2 = p.sizes
    assert h2 == w2 and h1 < h2
    assert np.all(p.hint[0, :, 3] == 1.0) and np.all(p.hint[0, :, :3] == -1.0)  # padding: black, marked 1


def test_the_seed_draws_the_context_ratio():
    ref, ref_mask, tar, tar_mask = images()
    boxes = {prepare(ref, ref_mask, tar, tar_mask, np.random.default_rng(s), 64, 28).crop_box for s in range(12)}
    assert len(boxes) > 2
    a = prepare(ref, ref_mask, tar, tar_mask, np.random.default_rng(5), 64, 28)
    b = prepare(ref, ref_mask, tar, tar_mask, np.random.default_rng(5), 64, 28)
    assert a.crop_box == b.crop_box and np.array_equal(a.hint, b.hint)


def test_paste_back_only_inside_the_crop_minus_margin():
    ref, ref_mask, tar, tar_mask = images()
    p = prepare(ref, ref_mask, tar, tar_mask, np.random.default_rng(1), 64, 28)
    out = paste_back(np.zeros((64, 64, 3), np.float32), tar, p)
    y1, y2, x1, x2 = p.crop_box
    changed = np.zeros(tar.shape[:2], bool)
    changed[y1 + 5:y2 - 5, x1 + 5:x2 - 5] = True
    assert np.array_equal(out[~changed], tar[~changed])
    assert np.all(out[changed] == 0)
