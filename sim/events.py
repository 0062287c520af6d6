"""Scripted scenario events: the situations a planner must handle on cue.

  pedestrian_steps_out  a walker appears on the sidewalk ``ahead_m`` ahead of the
                        ego and crosses the road in front of it
  lead_vehicle_brakes   the vehicle ahead in the ego's lane (one is placed there,
                        at the ego's speed, if there is none) brakes at ``decel``
  stopped_vehicle       a stopped vehicle blocks the ego's lane ``ahead_m`` ahead
  cut_in                a vehicle overtakes in the adjacent lane and moves into the
                        ego's lane ``ahead_m`` ahead of it

An event triggers at ``at_time_s`` of sim time, or when the ego has driven to
within ``trigger_distance`` of ``at_route_m`` (odometer distance). Placement uses
the ego's lane as the map gives it; an event that cannot be placed (no lane ahead,
no sidewalk) is reported once in the log and skipped.
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING

import numpy as np

from sim.pedestrians import sidewalk_beside
from sim.scenario import EventConfig
from sim.traffic import NPC

if TYPE_CHECKING:
    import carla

    from sim.world import World

log = logging.getLogger("drivestack.sim.events")
EVENT_ACTOR_BASE = 50_000


class ScenarioEvents:
    """The events of a scenario, fired in order as their triggers are met."""

    def __init__(self, events: list[EventConfig]) -> None:
        self.pending = list(events)
        self.fired: list[tuple[float, str]] = []
        self._next_id = EVENT_ACTOR_BASE

    def update(self, world: World) -> None:
        for ev in list(self.pending):
            if self._triggered(ev, world):
                self.pending.remove(ev)
                if getattr(self, f"_{ev.kind}")(ev, world):
                    self.fired.append((world.time, ev.kind))
                else:
                    log.warning("event %s at t=%.1f s: could not be placed, skipped",
                                ev.kind, world.time)

    @staticmethod
    def _triggered(ev: EventConfig, world: World) -> bool:
        if ev.at_time_s >= 0:
            return world.time >= ev.at_time_s
        return world.ego.odometer >= ev.at_route_m - ev.trigger_distance

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    @staticmethod
    def _lane_ahead(world: World, distance: float) -> carla.Waypoint | None:
        wp = world.ego_waypoint()
        if wp is None:
            return None
        ahead = wp.next(distance)
        return ahead[0] if ahead else None

    # ------------------------------------------------------------------- events
    def _pedestrian_steps_out(self, ev: EventConfig, world: World) -> bool:
        wp = self._lane_ahead(world, ev.ahead_m)
        sidewalk = sidewalk_beside(wp) if wp is not None else None
        if sidewalk is None:
            return False
        walker = world.pedestrians.spawn(self._new_id(), sidewalk,
                                         np.random.default_rng([world.scenario.seed, 9]))
        walker.speed = ev.speed
        return world.pedestrians.cross_now(walker)

    def _lead_vehicle_brakes(self, ev: EventConfig, world: World) -> bool:
        lead = self._lead_npc(world, ev.ahead_m + 30.0)
        if lead is None:
            wp = self._lane_ahead(world, ev.ahead_m)
            if wp is None:
                return False
            lead = world.traffic.spawn(self._new_id(), wp, np.random.default_rng(0),
                                       speed=max(world.ego.speed, 0.0))
        lead.braking_event = ev.decel
        return True

    def _stopped_vehicle(self, ev: EventConfig, world: World) -> bool:
        wp = self._lane_ahead(world, ev.ahead_m)
        if wp is None:
            return False
        npc = world.traffic.spawn(self._new_id(), wp, np.random.default_rng(0))
        npc.stopped = True
        return True

    def _cut_in(self, ev: EventConfig, world: World) -> bool:
        import carla

        wp = self._lane_ahead(world, ev.ahead_m)
        if wp is None:
            return False
        beside = wp.get_left_lane()
        if beside is None or beside.lane_type != carla.LaneType.Driving or \
                beside.lane_id * wp.lane_id < 0:
            beside = wp.get_right_lane()
        if beside is None or beside.lane_type != carla.LaneType.Driving or \
                beside.lane_id * wp.lane_id < 0:
            return False
        npc = world.traffic.spawn(self._new_id(), beside, np.random.default_rng(0),
                                  speed=max(world.ego.speed, ev.speed))
        world.traffic.change_lane(npc, wp)
        return True

    @staticmethod
    def _lead_npc(world: World, max_gap: float) -> NPC | None:
        yaw = math.radians(world.ego.yaw)
        best, best_d = None, max_gap
        for npc in world.traffic.npcs:
            dx, dy = npc.x - world.ego.x, npc.y - world.ego.y
            along = dx * math.cos(yaw) + dy * math.sin(yaw)
            across = -dx * math.sin(yaw) + dy * math.cos(yaw)
            if 0 < along < best_d and abs(across) < 1.8:
                best, best_d = npc, along
        return best
