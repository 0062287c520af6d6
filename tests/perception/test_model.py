"""The perception network: shapes, size, losses, and that it can learn."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from perception.classes import (
    CARLA_TO_CLASS_LUT,
    LIGHT_STATES,
    NUM_CLASSES,
    TrainClass,
    carla_to_class,
)
from perception.model import (
    MAX_DEPTH,
    MODEL_PRESETS,
    ModelConfig,
    build_model,
    class_weights,
    count_parameters,
    depth_gradient_loss,
    depth_loss,
    fuse_batchnorm,
    multitask_loss,
)
from sim.labels import Label


@pytest.mark.parametrize("size", [(320, 160), (256, 128)])
def test_output_shapes(size: tuple[int, int]) -> None:
    w, h = size
    model = build_model(ModelConfig(input_size=size)).eval()
    with torch.inference_mode():
        out = model(torch.randn(2, 3, h, w))
    assert out["seg"].shape == (2, NUM_CLASSES, h, w)
    assert out["log_depth"].shape == (2, h, w)
    assert out["depth"].shape == (2, h, w)
    assert bool((out["depth"] > 0).all())
    assert out["light"].shape == (2, len(LIGHT_STATES))


@pytest.mark.parametrize("stride", [2, 4])
def test_head_resolution_without_upsampling(stride: int) -> None:
    model = build_model(ModelConfig(head_stride=stride)).eval()
    with torch.inference_mode():
        out = model(torch.randn(1, 3, 160, 320), full_size=False)
    assert out["seg"].shape == (1, NUM_CLASSES, 160 // stride, 320 // stride)
    assert out["depth"].shape == (1, 160 // stride, 320 // stride)
    with pytest.raises(ValueError, match="head_stride"):
        build_model(ModelConfig(head_stride=8))


def test_folding_batchnorm_keeps_the_outputs() -> None:
    torch.manual_seed(0)
    model = build_model()
    with torch.no_grad():  # BatchNorm statistics that are not the identity
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    x = torch.randn(2, 3, 160, 320)
    with torch.inference_mode():
        ref = model.eval()(x)
        fused = fuse_batchnorm(model)(x)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    for key in ("seg", "depth", "light"):
        torch.testing.assert_close(fused[key], ref[key], rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="eval mode"):
        fuse_batchnorm(build_model().train())


def test_bad_input_size_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="multiples of 32"):
        build_model()(torch.randn(1, 3, 100, 200))


def test_parameter_count_is_small() -> None:
    assert count_parameters(build_model()) < 5_000_000


def test_the_large_network_is_wider_and_still_under_five_million_parameters() -> None:
    small = count_parameters(build_model(MODEL_PRESETS["small"]))
    large = build_model(replace(MODEL_PRESETS["large"], input_size=(640, 352))).eval()
    assert 3 * small < count_parameters(large) < 5_000_000
    with torch.inference_mode():
        out = large(torch.randn(1, 3, 352, 640), full_size=False)
    assert out["seg"].shape == (1, NUM_CLASSES, 176, 320)
    assert out["depth"].shape == (1, 176, 320)


def test_label_mapping() -> None:
    carla = np.array([[Label.ROADS, Label.ROAD_LINES, Label.SIDEWALKS, Label.CAR],
                      [Label.TRUCK, Label.PEDESTRIANS, Label.TRAFFIC_LIGHT, Label.SKY]],
                     np.uint8)
    assert carla_to_class(carla).tolist() == [
        [TrainClass.ROAD, TrainClass.ROAD_LINE, TrainClass.SIDEWALK, TrainClass.VEHICLE],
        [TrainClass.VEHICLE, TrainClass.PEDESTRIAN, TrainClass.TRAFFIC_LIGHT,
         TrainClass.BACKGROUND]]
    assert int(CARLA_TO_CLASS_LUT.max()) < NUM_CLASSES


def test_depth_loss_masks_sky_and_is_zero_when_exact() -> None:
    depth = torch.tensor([[5.0, 20.0, MAX_DEPTH]])
    pred = torch.log(torch.tensor([[5.0, 20.0, 3.0]]))  # sky pixel wrong: ignored
    assert float(depth_loss(pred, depth)) == pytest.approx(0.0, abs=1e-6)
    # scale-invariant: a global scale error costs (almost) nothing with lambda=1
    assert float(depth_loss(pred + 0.5, depth, "silog", si_lambda=1.0)) < 1e-3
    assert float(depth_loss(pred + 0.5, depth, "l1")) == pytest.approx(0.5, abs=1e-5)


def test_class_weights_favour_small_classes() -> None:
    w = class_weights(torch.tensor([1000, 10, 1]))
    assert w[2] > w[1] > w[0]


def test_training_step_lowers_the_loss() -> None:
    torch.manual_seed(0)
    h, w = 64, 128
    model = build_model(ModelConfig(input_size=(w, h))).train()
    image = torch.randn(2, 3, h, w)
    labels = torch.zeros(2, h, w, dtype=torch.long)
    labels[:, h // 2:] = TrainClass.ROAD
    labels[:, h // 2:, w // 3:w // 2] = TrainClass.VEHICLE
    image[:, 0, h // 2:] += 1.0
    image[:, 1, h // 2:, w // 3:w // 2] += 2.0
    depth = torch.full((2, h, w), MAX_DEPTH)
    depth[:, h // 2:] = torch.linspace(30.0, 3.0, h - h // 2)[:, None]
    light = torch.tensor([0, 3])
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(20):
        loss, parts = multitask_loss(model(image), labels, depth, light, depth_grad_weight=0.5)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(parts["total"])
    assert losses[-1] < 0.5 * losses[0], losses


def test_obstacle_pixels_weigh_more_in_the_depth_loss() -> None:
    truth = torch.full((1, 4, 4), 10.0)
    pred = torch.log(truth.clone())
    pred[0, 0, 0] = float(np.log(20.0))  # one pixel off by a factor 2
    w = torch.ones(1, 4, 4)
    plain = depth_loss(pred, truth)
    w[0, 0, 0] = 5.0
    weighted = depth_loss(pred, truth, pixel_weights=w)
    assert float(plain) == pytest.approx(np.log(2.0) / 16)
    assert float(weighted) == pytest.approx(5 * np.log(2.0) / 20)


def _step(width: int = 32, at: int = 16, near: float = 10.0, far: float = 20.0
          ) -> torch.Tensor:
    """A depth map (1, 8, width): a near object left of column ``at``, far right."""
    depth = torch.full((1, 8, width), far)
    depth[..., :at] = near
    return depth


def test_depth_gradient_loss_wants_sharp_steps_in_the_right_place() -> None:
    truth = _step()
    # a global scale error leaves every step's height and place right: no cost
    assert float(depth_gradient_loss(torch.log(truth * 1.3), truth)) == pytest.approx(
        0.0, abs=1e-6)
    # the same step blurred over 8 columns: about as good per pixel, but not here
    blurred = torch.log(truth.clone())
    blurred[..., 12:20] = torch.linspace(float(np.log(10.0)), float(np.log(20.0)), 8)
    moved = torch.log(_step(at=18))  # a sharp step two columns off
    assert float(depth_loss(blurred, truth)) < float(depth_loss(moved, truth))
    assert float(depth_gradient_loss(blurred, truth)) > 0.01
    assert float(depth_gradient_loss(moved, truth)) > 0.01
    # sky and the far plane are masked: a wrong depth there costs nothing
    truth_sky = truth.clone()
    truth_sky[..., 24:] = MAX_DEPTH
    pred = torch.log(truth_sky.clamp(max=20.0))
    pred[..., 24:] = 3.0
    assert float(depth_gradient_loss(pred, truth_sky)) == pytest.approx(0.0, abs=1e-6)


def test_depth_gradient_loss_weighs_obstacle_outlines_up() -> None:
    truth = _step()
    pred = torch.log(truth.clone())
    pred[..., :16] += 0.2  # the object's depth off by a constant: the step is wrong
    weights = torch.ones_like(truth)
    plain = float(depth_gradient_loss(pred, truth, scales=1))
    weights[..., :16] = 5.0
    weighted = float(depth_gradient_loss(pred, truth, scales=1, pixel_weights=weights))
    # one pair per row crosses the step, its weight 5 in a larger total weight
    assert weighted > plain > 0


def test_far_obstacles_weigh_with_the_square_of_their_distance_out_to_the_limit() -> None:
    """The same 10 % depth error on a vehicle pixel 20 m away costs 4x one 10 m away
    (and up to 40 m, 9x one at 30 m: capped); off, both cost the same."""
    from perception.classes import TrainClass
    from perception.model import multitask_loss

    def depth_part(d: float, far_m: float) -> float:
        labels = torch.full((1, 4, 4), int(TrainClass.ROAD), dtype=torch.long)
        labels[0, 0, 0] = int(TrainClass.VEHICLE)
        depth = torch.full((1, 4, 4), 5.0)
        depth[0, 0, 0] = d
        log_depth = torch.log(depth.clone())
        log_depth[0, 0, 0] += 0.1
        out = {"seg": torch.zeros(1, 7, 4, 4), "log_depth": log_depth}
        return multitask_loss(out, labels, depth, far_obstacles_m=far_m)[1]["depth"]

    def vehicle_weight(d: float, far_m: float) -> float:
        # depth part = 0.1 w / (w + 15): solve for the vehicle pixel's weight w
        part = depth_part(d, far_m)
        return 15 * part / (0.1 - part)

    assert vehicle_weight(10.0, 0.0) == pytest.approx(vehicle_weight(20.0, 0.0))
    w10, w20 = vehicle_weight(10.0, 30.0), vehicle_weight(20.0, 30.0)
    assert w10 == pytest.approx(5.0, rel=1e-3)  # 1 + 4 x 1
    assert w20 == pytest.approx(17.0, rel=1e-3)  # 1 + 4 x 4
    assert vehicle_weight(40.0, 30.0) == pytest.approx(37.0, rel=1e-3)  # 1 + 4 x 9
