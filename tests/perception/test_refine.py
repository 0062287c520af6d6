"""Guided upsampling of the head's class probabilities: outlines follow the image."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from perception.refine import (
    GuidedScore,
    RefineConfig,
    confirm_blobs,
    guided_coefficients,
    guided_labels,
    guided_upsample,
    guided_upsample_torch,
    refine_segmentation,
    upsample_scores,
)

H, W = 64, 96


def blurred_head(truth: np.ndarray, n: int = 3) -> np.ndarray:
    """What a stride-2 head gives for a class map ``truth`` (H, W): the one-hot
    classes area-shrunk to half size and blurred, (n, H/2, W/2) probabilities."""
    onehot = np.stack([(truth == c).astype(np.float32) for c in range(n)], -1)
    small = cv2.resize(onehot, (truth.shape[1] // 2, truth.shape[0] // 2),
                       interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (5, 5), 1.2)
    return np.ascontiguousarray((small / small.sum(-1, keepdims=True)).transpose(2, 0, 1))


def bilinear_argmax(probs: np.ndarray) -> np.ndarray:
    up = cv2.resize(np.ascontiguousarray(probs.transpose(1, 2, 0)), (W, H),
                    interpolation=cv2.INTER_LINEAR)
    return up.argmax(-1)


def scene() -> tuple[np.ndarray, np.ndarray]:
    """A grey road (class 1) with a thin dark pole (class 2, 3 px wide, an odd
    column so it straddles head pixels) on a light background (class 0), and the
    image of it with a little noise."""
    truth = np.zeros((H, W), np.uint8)
    truth[H // 2:, :] = 1
    truth[8:H - 4, 45:48] = 2
    colour = np.array([[200, 210, 220], [90, 90, 95], [30, 20, 60]], np.float32)
    rng = np.random.default_rng(0)
    image = colour[truth] + rng.normal(0, 2.0, (H, W, 3))
    return truth, np.clip(image, 0, 255).astype(np.uint8)


def test_outlines_follow_the_image():
    truth, image = scene()
    probs = blurred_head(truth)
    refined = refine_segmentation(probs, image)
    assert refined.shape == (H, W) and refined.dtype == np.uint8
    plain = bilinear_argmax(probs)
    pole = truth == 2
    # the 3-pixel pole is a blur at the head's resolution, never the likeliest
    # class (at most 0.46): bilinear upsampling loses it; the guide gives most of
    # its columns back, exactly where the image has them
    iou = lambda seg: ((seg == 2) & pole).sum() / ((seg == 2) | pole).sum()  # noqa: E731
    assert iou(plain) < 0.1
    assert iou(refined) > 0.6
    assert ((refined == 2) & ~pole).sum() <= 4
    assert (refined == truth).mean() > 0.99
    assert (refined == truth).mean() > (plain == truth).mean()


def test_scores_are_a_partition_of_one():
    # linear in the probabilities: the classes' scores still sum to 1 everywhere
    _, image = scene()
    rng = np.random.default_rng(1)
    probs = rng.random((5, H // 2, W // 2)).astype(np.float32)
    probs /= probs.sum(0)
    q = guided_upsample(probs, image)
    assert q.shape == (H, W, 5) and q.dtype == np.float32
    np.testing.assert_allclose(q.sum(-1), 1.0, atol=1e-4)


def test_flat_image_smooths_only():
    # no edges in the guide: the output is the probabilities smoothed, and a class
    # that holds everywhere stays everywhere
    probs = np.zeros((3, H // 2, W // 2), np.float32)
    probs[1] = 1.0
    flat = np.full((H, W, 3), 128, np.uint8)
    assert (refine_segmentation(probs, flat) == 1).all()


def test_same_size_guide_and_bad_input():
    truth, image = scene()
    full = np.stack([(truth == c).astype(np.float32) for c in range(3)])
    assert (refine_segmentation(full, image) == truth).mean() > 0.99
    with pytest.raises(ValueError, match="uint8"):
        guided_upsample(full, image.astype(np.float32))
    with pytest.raises(ValueError, match="smaller"):
        guided_upsample(full, image[::2, ::2])
    with pytest.raises(ValueError, match="at least 2"):
        guided_upsample(full[:1], image)
    with pytest.raises(ValueError, match="radius"):
        RefineConfig(radius=0)
    with pytest.raises(ValueError, match="eps"):
        RefineConfig(eps=0.0)


def test_blobs_the_guided_map_does_not_confirm_take_its_classes():
    seg = np.zeros((20, 30), np.uint8)
    seg[2:10, 2:6] = 5  # a walker the guided map bears out, feet and all but two rows
    seg[12:18, 20:26] = 5  # a blur the guided map calls a car and road
    guided = np.zeros_like(seg)
    guided[2:8, 2:6] = 5
    guided[8:10, 2:6] = 4
    guided[12:15, 20:26] = 4
    guided[15:18, 20:26] = 1
    out = confirm_blobs(seg, guided, 5, 0.5)
    assert (out[2:10, 2:6] == 5).all()  # kept whole: its extent is the head's
    np.testing.assert_array_equal(out[12:18, 20:26], guided[12:18, 20:26])
    assert (out[seg != 5] == 0).all()
    assert (seg[12:18, 20:26] == 5).all()  # the input is not changed
    # nothing to reject: the same array back
    assert confirm_blobs(seg, seg, 5, 0.5) is seg
    assert confirm_blobs(np.zeros_like(seg), guided, 5, 0.5).sum() == 0


def test_the_device_filter_is_the_numpy_one():
    # the CUDA path's torch filter, run here on the CPU, gives numpy's classes
    truth, image = scene()
    probs = blurred_head(truth)
    rng = np.random.default_rng(3)
    noisy = probs + rng.random(probs.shape).astype(np.float32) * 0.2
    noisy /= noisy.sum(0)
    guide = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255.0
    for p, config in ((probs, RefineConfig()), (noisy, RefineConfig(3, 1e-3))):
        want = guided_upsample(p, image, config)
        got = guided_upsample_torch(torch.from_numpy(p)[None], guide, config)
        assert got.shape == (1, 3, H, W) and got.dtype == torch.float32
        got = got[0].permute(1, 2, 0).numpy()
        # float32 either way: in the near-flat colours both are within a few 1e-4
        # of the float64 result (the ridge divides variances of that size)
        exact = guided_upsample_torch(torch.from_numpy(p)[None].double(), guide.double(),
                                      config)[0].permute(1, 2, 0).numpy()
        np.testing.assert_allclose(got, exact, atol=1e-3)
        np.testing.assert_allclose(want, exact, atol=1e-3)
        assert (got.argmax(-1) == want.argmax(-1)).mean() > 0.999


def test_one_class_score_in_windows_is_the_full_filter_there():
    """GuidedScore gives guided_upsample's score of one class at any window of a
    larger image (here 4x the head's size), clipped to the image; from all classes'
    coefficients or that class's probability alone (the filter is linear in it)."""
    truth, image = scene()
    probs = blurred_head(truth)
    big = cv2.resize(image, (2 * W, 2 * H), interpolation=cv2.INTER_LINEAR)
    full = guided_upsample(probs, big)[..., 2]
    score = GuidedScore.of_class(*guided_coefficients(probs, big), 2, big)
    alone = GuidedScore.of_probability(probs[2], big)
    np.testing.assert_allclose(alone.window((0, 2 * H), (0, 2 * W)), full, atol=1e-4)
    np.testing.assert_allclose(score.window((10, 50), (30, 100)), full[10:50, 30:100],
                               atol=1e-5)
    np.testing.assert_allclose(score.window((-5, 2 * H + 5), (0, 2 * W)), full, atol=1e-5)
    assert score.window((2 * H, 2 * H + 3), (0, 5)).shape == (0, 5)
    with pytest.raises(ValueError, match="smaller"):
        GuidedScore.of_probability(probs[2], image[:10])


def test_the_class_map_is_the_argmax_of_the_filtered_scores_to_the_bit():
    """guided_labels makes the scores class by class on whole planes (the node's
    hot path); the classes are those of the interleaved scores' argmax, ties to
    the first class, upsampled or at the head's own size."""
    _, image = scene()
    rng = np.random.default_rng(5)
    noisy = rng.random((7, H // 2, W // 2)).astype(np.float32)
    noisy /= noisy.sum(0)
    for guide in (image, cv2.resize(image, (W // 2, H // 2), interpolation=cv2.INTER_AREA)):
        a, b = guided_coefficients(noisy, guide)
        want = upsample_scores(a, b, guide).argmax(-1)
        got = guided_labels(a, b, guide)
        assert got.dtype == np.uint8 and got.shape == guide.shape[:2]
        np.testing.assert_array_equal(got, want)
    tie = np.zeros((2, 4, 6), np.float32)
    flat = np.full((8, 12, 3), 128, np.uint8)
    a, b = guided_coefficients(np.concatenate([tie + 0.5, tie + 0.5]), flat)
    assert (guided_labels(a, b, flat) == 0).all()  # equal scores: the first class
