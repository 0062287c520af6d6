"""Oracle mode: ground truth as the ObjectList and TrafficLightState perception
would publish, in the ego frame."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bus.messages import VehicleControl
from planning.oracle import oracle_objects, oracle_traffic_light
from sim.maps import load_map
from sim.scenario import EgoConfig, Pose, Scenario, TrafficConfig
from sim.world import MapSource, World


@pytest.fixture(scope="module")
def town() -> MapSource:
    loaded = load_map("town_grid")
    return MapSource(loaded.name, loaded.xodr, loaded.map)


def world_before_light(town: MapSource, metres: float, **traffic) -> tuple[World, object]:
    probe = World(Scenario(map="town_grid"), town)
    light = probe.lights.lights[0]
    start = light.stop_waypoints[0].previous(metres)[0].transform
    world = World(Scenario(map="town_grid", traffic=TrafficConfig(**traffic),
                           ego=EgoConfig(spawn=Pose(start.location.x, start.location.y, 0.0,
                                                    start.rotation.yaw))), town)
    return world, light


def test_light_ahead_of_the_ego_with_its_distance(town):
    world, light = world_before_light(town, 30.0)
    world.step(VehicleControl(brake=1.0))
    gt, ego = world.ground_truth(), world.ego_state()
    tl = oracle_traffic_light(gt, ego, world.map)
    assert tl.source == "oracle" and tl.state == world.lights.state_of(light.id)
    assert tl.distance == pytest.approx(30.0, abs=1.5)


def test_objects_are_in_the_ego_frame(town):
    world, _ = world_before_light(town, 40.0, vehicles=1)
    npc = world.traffic.npcs[0]
    yaw = math.radians(world.ego.yaw)
    npc.stopped = True
    npc.x, npc.y, npc.yaw = (world.ego.x + 15 * math.cos(yaw) - 2 * math.sin(yaw),
                             world.ego.y + 15 * math.sin(yaw) + 2 * math.cos(yaw),
                             world.ego.yaw + 30.0)
    objs = oracle_objects(world.ground_truth(), world.ego_state())
    (car,) = [o for o in objs.objects if o.track_id == npc.id]
    assert car.label == "vehicle" and objs.source == "oracle"
    assert (car.position.x, car.position.y) == pytest.approx((15.0, 2.0), abs=1e-6)
    assert car.yaw == pytest.approx(30.0)
    assert car.size.x == pytest.approx(2 * npc.half_length)
    assert np.hypot(car.velocity.x, car.velocity.y) == pytest.approx(0.0)
