"""The shipped weights see: a scene rendered by the embedded simulator on a built-in
map, with a stopped car and a pedestrian crossing at known positions, is turned into
objects within 1.5 m of the truth by the perception pipeline (the node's tick, on
the node's default CPU backend)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bus.frames import world_to_ego
from bus.messages import Rotation, Transform, Vector3, VehicleControl
from perception.inference import DEFAULT_WEIGHTS, load_weights, make_predictor, range_scale_of
from perception.objects import ObjectsConfig
from perception.pipeline import PerceptionPipeline

pytestmark = pytest.mark.skipif(not DEFAULT_WEIGHTS.is_file(),
                                reason="no shipped weights in perception/weights/")


def test_shipped_weights_are_small_and_checksummed() -> None:
    assert DEFAULT_WEIGHTS.stat().st_size < 10_000_000
    model, info = load_weights(DEFAULT_WEIGHTS)
    assert model.config.input_size == (320, 160)
    assert info["light_trained"] and info["meta"]["miou"] > 0.5


@pytest.mark.parametrize("seed", [
    pytest.param(1, marks=pytest.mark.xfail(strict=True, reason=(
        "issue 4 falls short: the shipped weights place this stopped car 22 m away "
        "4 m near (18.0 m; the walker at 13.9 m in front of it, the network's depth "
        "of a car partly behind a walker). They pass 18 of seeds 1-32 (2, 3, 4, 5, 6, "
        "7, 9, 10, 11, 12, 14, 15, 17, 22, 25, 28, 30, 31: 10, 11, 15 and 31 since "
        "session 29 let a car beside stray walker pixels, or beside a walker's legs, "
        "meet the road; seed 3 since session 25 cut vehicle clusters whose depth "
        "profile is no convex object's), 9 with the weights before them. "
        "Strict: when better weights pass, this marker must go"))),
    17])
def test_a_rendered_car_and_pedestrian_are_found_within_1_5_m(seed: int) -> None:
    from sim.maps import load_map
    from sim.scenario import CameraConfig, EventConfig, Scenario, WeatherConfig
    from sim.scene import SceneRenderer
    from sim.world import MapSource, World

    m = load_map("town_grid")
    camera = CameraConfig()
    weather = WeatherConfig()  # clear day
    scenario = Scenario(map="town_grid", seed=seed, cameras=[camera], weather=weather,
                        events=[EventConfig(kind="stopped_vehicle", at_time_s=0.0,
                                            ahead_m=22.0),
                                EventConfig(kind="pedestrian_steps_out", at_time_s=0.0,
                                            ahead_m=12.0, speed=1.5)])
    world = World(scenario, MapSource(m.name, m.xodr, m.map))
    scene = SceneRenderer(world, [camera], weather, seed)
    for _ in range(30):  # 1.5 s: the walker is on the road
        world.step(VehicleControl(brake=1.0))
    model, info = load_weights(DEFAULT_WEIGHTS)
    light_trained = bool(info["light_trained"])
    pipeline = PerceptionPipeline(  # the node's object stage: the weights' calibration
        make_predictor(model, light_trained, torch.device("cpu")), light_trained,
        ObjectsConfig(range_scale=range_scale_of(info.get("calibration"), DEFAULT_WEIGHTS)))
    out = pipeline.step([scene.render(world)[camera.name]], None)
    ego = Transform(Vector3(world.ego.x, world.ego.y, 0.0), Rotation(yaw=world.ego.yaw))
    truth = {"vehicle": list(world.traffic.npcs),
             "pedestrian": list(world.pedestrians.walkers)}
    assert len(truth["vehicle"]) == 1 and len(truth["pedestrian"]) == 1
    for label, actors in truth.items():
        a = actors[0]
        p = world_to_ego([a.x, a.y, 0.0], ego)
        errs = [float(np.hypot(*(d.position[:2] - p[:2]))) for d in out.detections
                if d.label == label]
        assert errs and min(errs) < 1.5, (label, p, [(d.label, d.position)
                                                     for d in out.detections])
