"""Scripted scenario events on a two-lane-each-way road with sidewalks."""

from __future__ import annotations

import pytest

from bus.messages import VehicleControl
from sim.scenario import EgoConfig, EventConfig, Pose, Scenario
from sim.world import World


def world_with(wide_road, *events: EventConfig) -> World:
    scenario = Scenario(map="wide", ego=EgoConfig(spawn=Pose(20.0, 1.75, 0.0, 0.0)),
                        events=list(events))
    return World(scenario, wide_road)


def drive(world: World, ticks: int, throttle: float = 0.5) -> list[str]:
    kinds = []
    for _ in range(ticks):
        kinds += [e.kind for e in world.step(VehicleControl(throttle=throttle))]
    return kinds


def test_stopped_vehicle_blocks_the_lane_ahead(wide_road):
    world = world_with(wide_road, EventConfig(kind="stopped_vehicle", at_time_s=0.5,
                                              ahead_m=40.0))
    kinds = drive(world, 300)
    (npc,) = world.traffic.npcs
    assert npc.stopped and npc.speed == 0.0
    assert abs(npc.y - 1.75) < 0.01 and 55.0 < npc.x < 70.0
    assert "collision_vehicle" in kinds  # the ego kept its throttle
    assert world.script.fired == [(0.5, "stopped_vehicle")]


def test_lead_vehicle_brakes_hard(wide_road):
    world = world_with(wide_road, EventConfig(kind="lead_vehicle_brakes", at_route_m=30.0,
                                              trigger_distance=0.0, ahead_m=25.0, decel=6.0))
    kinds = drive(world, 200)
    (npc,) = world.traffic.npcs
    assert npc.braking_event == 6.0 and npc.speed == 0.0
    assert npc.x > 20.0 + 30.0 + 25.0 - 5.0  # placed ahead of the ego when it fired
    assert "collision_vehicle" in kinds  # nobody braked for it


def test_a_braked_lead_drives_on_after_standing(wide_road):
    from sim.traffic import BRAKE_EVENT_HOLD_S

    world = world_with(wide_road, EventConfig(kind="lead_vehicle_brakes", at_time_s=0.0,
                                              ahead_m=25.0, decel=6.0))
    stood = 0.0
    for _ in range(int((BRAKE_EVENT_HOLD_S + 6.0) / world.dt)):
        world.step(VehicleControl(brake=1.0))
        (npc,) = world.traffic.npcs
        if npc.speed < 0.1:
            stood += world.dt
        if npc.braking_event == 0.0:
            break
    assert npc.braking_event == 0.0 and stood == pytest.approx(BRAKE_EVENT_HOLD_S, abs=0.11)
    x0 = npc.x
    for _ in range(60):
        world.step(VehicleControl(brake=1.0))
    assert npc.x > x0 + 2.0 and npc.speed > 1.0


def test_pedestrian_steps_out_and_crosses(wide_road):
    world = world_with(wide_road, EventConfig(kind="pedestrian_steps_out", at_time_s=0.2,
                                              ahead_m=30.0, speed=1.5))
    drive(world, 6, throttle=0.0)
    (walker,) = world.pedestrians.walkers
    assert walker.crossing and walker.y > 7.0  # starts on the ego's (right) sidewalk
    for _ in range(400):
        world.step(VehicleControl(brake=1.0))
    assert not walker.crossing and walker.y < -7.0  # and ends on the far one


def test_cut_in_moves_into_the_ego_lane(wide_road):
    world = world_with(wide_road, EventConfig(kind="cut_in", at_time_s=0.1, ahead_m=15.0,
                                              speed=8.0))
    drive(world, 3, throttle=0.0)
    (npc,) = world.traffic.npcs
    assert abs(npc.y - 5.25) < 0.5  # starts in the lane beside the ego (lane -2)
    drive(world, 80, throttle=0.0)
    assert abs(npc.y - 1.75) < 0.05  # ends in the ego's lane (lane -1)


def test_event_that_cannot_be_placed_is_skipped(straight_map, straight_xodr, caplog):
    from sim.world import MapSource

    source = MapSource("straight", straight_xodr, straight_map)
    scenario = Scenario(map="straight", ego=EgoConfig(spawn=Pose(20.0, 1.75, 0.0, 0.0)),
                        events=[EventConfig(kind="pedestrian_steps_out", at_time_s=0.0)])
    world = World(scenario, source)
    world.step(VehicleControl())
    assert world.pedestrians.walkers == [] and world.script.fired == []
    assert "could not be placed" in caplog.text
