"""Reading the governing light's state from its lit lamp's colour."""

from __future__ import annotations

import dataclasses
import math

import cv2
import numpy as np
import pytest

from bus.frames import pixel_bearing
from bus.messages import CameraIntrinsics, Rotation, Transform, Vector3
from perception.classes import TrainClass, carla_to_class
from perception.lights import LampReaderConfig, horizon_row, read_lamps


def head_image(lamps: list[tuple[str, int, int, int]], size: tuple[int, int] = (640, 360)
               ) -> tuple[np.ndarray, np.ndarray]:
    """A grey scene with dark heads: each (state, centre u, centre v, lamp radius px)
    draws a head around a lit lamp; returns the BGR image and a traffic-light
    probability map at a quarter of the size (coarse, as the network's)."""
    w, h = size
    img = np.full((h, w, 3), 120, np.uint8)
    prob = np.zeros((h, w), np.float32)
    colours = {"red": (40, 40, 255), "yellow": (30, 210, 255), "green": (120, 255, 60)}
    for state, u, v, r in lamps:
        cv2.rectangle(img, (u - 2 * r, v - 5 * r), (u + 2 * r, v + 5 * r), (40, 40, 40), -1)
        cv2.circle(img, (u, v), r, colours[state], -1)
        prob[v - 5 * r:v + 5 * r + 1, u - 2 * r:u + 2 * r + 1] = 0.9
    return img, cv2.resize(prob, (w // 4, h // 4), interpolation=cv2.INTER_AREA)


@pytest.mark.parametrize("state", ["red", "yellow", "green"])
def test_the_lit_lamp_gives_the_state(state: str) -> None:
    img, prob = head_image([(state, 500, 80, 6)])
    got, conf, u, v = read_lamps(img, prob)
    assert got == state and conf == pytest.approx(1.0)
    assert (u, v) == (pytest.approx(500, abs=1.0), pytest.approx(80, abs=1.0))


def test_the_largest_lamp_decides_and_sets_the_confidence() -> None:
    img, prob = head_image([("green", 500, 80, 8), ("red", 200, 150, 3)])
    got, conf, u, v = read_lamps(img, prob)
    assert got == "green" and 0.5 < conf < 1.0
    assert (u, v) == (pytest.approx(500, abs=1.0), pytest.approx(80, abs=1.0))


def test_no_light_pixels_or_no_lit_lamp_is_none() -> None:
    img, prob = head_image([("red", 500, 80, 6)])
    none = read_lamps(img, np.zeros_like(prob))
    assert none[:2] == ("none", 0.0) and math.isnan(none.u) and math.isnan(none.v)
    dark = img.copy()
    dark[img[..., 2] == 255] = 40  # the lamp off
    assert read_lamps(dark, prob)[0] == "none"


def test_a_red_object_outside_the_light_pixels_is_not_a_lamp() -> None:
    img, prob = head_image([("green", 500, 80, 6)])
    prob[:] = 0.0
    prob[10:20, 10:20] = 0.9  # a light elsewhere, unlit
    cv2.rectangle(img, (300, 250), (360, 300), (40, 40, 255), -1)  # a red car
    assert read_lamps(img, prob)[0] == "none"


def test_a_lamp_below_the_horizon_is_a_car_light_or_paint_not_a_traffic_light() -> None:
    K = CameraIntrinsics.from_fov(640, 360, 90.0)
    mount = Transform(Vector3(1.5, 0.0, 1.6), Rotation())
    assert horizon_row(K, mount) == pytest.approx(180.0, abs=0.5)
    pitched = horizon_row(K, Transform(Vector3(1.5, 0.0, 1.6), Rotation(pitch=-5.0)))
    assert pitched < 180.0  # looking down: the horizon rises in the image
    img, prob = head_image([("red", 500, 80, 6)])
    assert read_lamps(img, prob, horizon=180.0)[0] == "red"
    img, prob = head_image([("red", 500, 200, 6)])
    assert read_lamps(img, prob)[0] == "red"
    assert read_lamps(img, prob, horizon=180.0)[0] == "none"


def test_a_lamp_too_small_to_read_is_none() -> None:
    img, prob = head_image([("red", 500, 80, 1)])
    assert read_lamps(img, prob, LampReaderConfig(min_lamp_px=8))[0] == "none"
    with pytest.raises(ValueError, match="min_probability"):
        LampReaderConfig(min_probability=0.0)


@pytest.mark.parametrize("state", ["red", "green"])
def test_the_rendered_light_ahead_is_read_from_true_light_pixels(state: str) -> None:
    """The embedded renderer's light at pedestrian_steps_out's junction, the ego
    stopped 7.5 m before its stop line, the true traffic-light pixels as the
    probability: the lamp's colour gives the state."""
    from sim.maps import load_map
    from sim.scenario import load_scenario
    from sim.scene import SceneRenderer
    from sim.world import MapSource, World

    scenario = load_scenario("pedestrian_steps_out")
    loaded = load_map(scenario.map)
    world = World(scenario, MapSource(loaded.name, loaded.xodr, loaded.map))
    scene = SceneRenderer(world, scenario.cameras, scenario.weather, scenario.seed)
    world.ego = dataclasses.replace(world.ego, x=81.5, y=-98.25, yaw=0.0)
    light = min(world.lights.lights, key=lambda lt: abs(lt.stop_line.x - 89.0)
                + abs(lt.stop_line.y + 98.25))
    world.lights.set_state(light.id, state)

    frame = scene.renderer.render(Transform(Vector3(81.5, -98.25, 0.0), Rotation()),
                                  scene.objects(world))["front"]
    prob = (carla_to_class(frame.labels) == int(TrainClass.TRAFFIC_LIGHT)).astype(np.float32)
    prob = cv2.resize(prob, (160, 80), interpolation=cv2.INTER_AREA)
    K = CameraIntrinsics.from_fov(640, 360, 90.0)
    mount = Transform(Vector3(1.5, 0.0, 1.6), Rotation())
    read = read_lamps(frame.rgb, prob, horizon=horizon_row(K, mount))
    assert read.state == state
    # seen where the map puts the light's head (its landmark), from the camera
    head = light.transform.location
    expected = math.degrees(math.atan2(head.y - (-98.25), head.x - (81.5 + 1.5)))
    assert pixel_bearing(read.u, read.v, K, mount) == pytest.approx(expected, abs=3.0)
