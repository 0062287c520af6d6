"""Ground-truth pieces from CARLA actors, with fake actors (no server)."""

from __future__ import annotations

from dataclasses import dataclass, field

import carla
import pytest

from sim.carla_bridge.truth import LightStates, actor_label, ego_box
from sim.labels import Label
from sim.maps import load_map


@dataclass
class FakeLight:
    signal: str
    state: carla.TrafficLightState
    type_id: str = "traffic.traffic_light"

    def get_opendrive_id(self) -> str:
        return self.signal

    def get_state(self) -> carla.TrafficLightState:
        return self.state


@dataclass
class FakeVehicle:
    type_id: str
    transform: carla.Transform
    bounding_box: carla.BoundingBox = field(default_factory=lambda: carla.BoundingBox(
        carla.Location(0.5, 0.0, 0.7), carla.Vector3D(2.0, 1.0, 0.7)))
    semantic_tags: list[int] = field(default_factory=list)

    def get_transform(self) -> carla.Transform:
        return self.transform


def test_light_states_follow_the_server_by_opendrive_id() -> None:
    lights = LightStates(load_map("town_grid").map)
    assert lights.lights.lights, "town_grid has lights"
    first, second = lights.lights.lights[:2]
    actors = [FakeLight(first.signal_ids[0], carla.TrafficLightState.Red),
              FakeLight(second.signal_ids[0], carla.TrafficLightState.Green),
              FakeLight("no-such-signal", carla.TrafficLightState.Red),
              FakeLight(first.signal_ids[0], carla.TrafficLightState.Red, "vehicle.x")]
    assert lights.update(actors) == 2
    assert lights.lights.state_of(first.id) == "red"
    assert lights.lights.state_of(second.id) == "green"
    states = {gt.id: gt.state for gt in lights.lights.ground_truth()}
    assert states[first.id] == "red" and states[second.id] == "green"
    # a red light's stop line crossed along its lane is reported, a green one's not
    stop = first.stop_waypoints[0].transform
    f = stop.get_forward_vector()
    before = (stop.location.x - 2 * f.x, stop.location.y - 2 * f.y)
    after = (stop.location.x + 2 * f.x, stop.location.y + 2 * f.y)
    assert lights.red_light_crossed(before, after) == first.id
    lights.update([FakeLight(first.signal_ids[0], carla.TrafficLightState.Green)])
    assert lights.red_light_crossed(before, after) is None


def test_ego_box_centre_and_labels() -> None:
    v = FakeVehicle("vehicle.tesla.model3", carla.Transform(carla.Location(10.0, 5.0, 0.0),
                                                            carla.Rotation(yaw=90.0)))
    box = ego_box(v)
    # the box centre sits 0.5 m ahead of the origin, ahead being +y at yaw 90
    assert (box.x, box.y) == pytest.approx((10.0, 5.5))
    assert (box.yaw, box.half_length, box.half_width) == pytest.approx((90.0, 2.0, 1.0))
    assert actor_label(v) == int(Label.CAR)
    assert actor_label(FakeVehicle("vehicle.carlamotors.carlacola", v.transform,
                                   semantic_tags=[int(Label.TRUCK)])) == int(Label.TRUCK)
    assert actor_label(FakeVehicle("walker.pedestrian.0001", v.transform)) == int(
        Label.PEDESTRIANS)
