"""Walker copy-paste augmentation: cut-outs, depth-tested pastes, placement."""

from __future__ import annotations

import numpy as np

from perception.classes import TrainClass
from perception.paste import paste_walker, place_over_vehicle, walker_cutouts
from perception.train import Augment

H, W = 60, 120


def scene() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Road at 30 m, a car at columns 70-99 rows 20-39 at 20 m, a walker at
    columns 10-15 rows 15-34 at 12 m, and a walker cut by the left border."""
    rgb = np.full((H, W, 3), 100, np.uint8)
    labels = np.full((H, W), TrainClass.ROAD, np.uint8)
    depth = np.full((H, W), 30.0, np.float32)
    labels[20:40, 70:100], depth[20:40, 70:100], rgb[20:40, 70:100] = TrainClass.VEHICLE, 20.0, 50
    labels[15:35, 10:16], depth[15:35, 10:16], rgb[15:35, 10:16] = TrainClass.PEDESTRIAN, 12.0, 200
    labels[15:35, 0:4] = TrainClass.PEDESTRIAN  # cut by the border: not a whole walker
    return rgb, labels, depth


def test_cutouts_are_whole_walkers() -> None:
    cuts = walker_cutouts(*scene())
    assert len(cuts) == 1
    c = cuts[0]
    assert (c.top, c.left, c.mask.shape) == (15, 10, (20, 6)) and c.mask.all()
    assert np.all(c.depth == 12.0) and np.all(c.rgb == 200)
    assert walker_cutouts(*scene(), min_pixels=121) == []


def test_paste_is_depth_tested_and_labels_the_walker() -> None:
    rgb, labels, depth = scene()
    cut = walker_cutouts(rgb, labels, depth)[0]
    # in front of the car (12 m < 20 m): every pixel shows, with its depth and label
    assert paste_walker(rgb, labels, depth, cut, 80) == 120
    assert np.all(labels[15:35, 80:86] == TrainClass.PEDESTRIAN)
    assert np.all(depth[15:35, 80:86] == 12.0) and np.all(rgb[15:35, 80:86] == 200)
    assert labels[19, 79] == TrainClass.ROAD and labels[20, 86] == TrainClass.VEHICLE
    # behind a nearer object (a 5 m wall on rows 15-24): only the rows below it show
    depth[15:25, 30:40] = 5.0
    assert paste_walker(rgb, labels, depth, cut, 32) == 60
    assert np.all(labels[15:25, 32:38] == TrainClass.ROAD)
    # clipped to the image
    assert paste_walker(rgb, labels, depth, cut, W + 50) > 0
    assert np.all(labels[15:35, W - 6:] == TrainClass.PEDESTRIAN)


def test_placement_centres_walkers_on_vehicles() -> None:
    rgb, labels, depth = scene()
    cut = walker_cutouts(rgb, labels, depth)[0]
    rng = np.random.default_rng(0)
    lefts = [place_over_vehicle(labels, cut, rng) for _ in range(50)]
    assert all(70 - 3 <= v <= 99 - 3 for v in lefts)
    labels[labels == TrainClass.VEHICLE] = TrainClass.ROAD
    assert place_over_vehicle(labels, cut, rng) is None


def test_augment_pastes_into_copies() -> None:
    rgb, labels, depth = scene()
    cuts = walker_cutouts(rgb, labels, depth)
    before = [a.copy() for a in (rgb, labels, depth)]
    counts = [int((Augment(seed, cuts, paste_p=1.0)((rgb, labels, depth))[1]
                   == TrainClass.PEDESTRIAN).sum()) for seed in range(20)]
    for a, b in zip((rgb, labels, depth), before, strict=True):
        assert np.array_equal(a, b)  # the data set's cached arrays are untouched
    plain = [int((Augment(seed)((rgb, labels, depth))[1] == TrainClass.PEDESTRIAN).sum())
             for seed in range(20)]
    assert np.mean(counts) > np.mean(plain) + 50
