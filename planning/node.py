"""The planning node: map, ego state, perceived objects and traffic light in; the
trajectory for the same frame out.

It builds its own ``carla.Map`` and lane graph from the latched /map/opendrive,
plans the route once it knows where the ego is (the scenario's route waypoints, a
CARLA leaderboard route, or, with none, the lane ahead for ``free_drive_m``), and
each frame k answers /ego/state k, /perception/objects k and
/perception/traffic_light k with /planning/trajectory k (``planning.local_planner``).
With ``use_perception: false`` it plans without objects and lights. Vehicles
that touch no driving lane are not planned around (``planning.object_filter``). A light that
comes without a stop line (perception's) is placed at the next junction entry of
the route (``planning.stop_lines``); the oracle's carries its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bus import Node
from bus.join import FrameJoin
from bus.messages import EgoState, MapData, ObjectList, TrafficLightState, Trajectory
from planning.behaviour import BehaviourParams
from planning.local_planner import LocalPlanner, LocalPlannerParams
from planning.object_filter import ObjectFilter, ObjectFilterParams
from planning.route import RoutePlanner, UnreachableError
from planning.stop_lines import (
    JunctionEntries,
    PerceivedLight,
    PerceivedLightParams,
    map_signal_heads,
)


@dataclass
class PlanningParams:
    scenario: str = ""  # a scenario YAML: its route is the one to drive
    waypoints: list[list[float]] = field(default_factory=list)  # [[x, y], ...] world
    free_drive_m: float = 1000.0  # without a route: follow the lane this far
    use_perception: bool = True
    max_speed: float = 0.0  # m/s; 0: speed limits
    # a light perceived without a stop line (perception's): where it applies and how
    # it is held (planning.stop_lines.PerceivedLightParams)
    perceived_light: PerceivedLightParams = field(default_factory=PerceivedLightParams)
    # which objects are planned around (planning.object_filter): vehicles on lanes
    object_filter: ObjectFilterParams = field(default_factory=ObjectFilterParams)

    def __post_init__(self) -> None:
        if any(len(p) < 2 for p in self.waypoints):
            raise ValueError("waypoints: each is [x, y]")
        if self.free_drive_m <= 0:
            raise ValueError("free_drive_m must be > 0")


class PlanningNode(Node):
    Params = PlanningParams

    def __init__(self, name: str = "planning", **kwargs) -> None:
        super().__init__(name, **kwargs)
        self.carla_map = None
        self.router: RoutePlanner | None = None
        self.local: LocalPlanner | None = None
        self.lights: PerceivedLight | None = None  # along self.local's route
        self.inputs = FrameJoin(("ego", "objects", "light") if self.params.use_perception
                                else ("ego",))
        self.pub = self.create_publisher(Trajectory, "/planning/trajectory")
        self.create_subscription(MapData, "/map/opendrive", self.on_map)
        self.create_subscription(EgoState, "/ego/state", lambda m: self._add(m, "ego"))
        if self.params.use_perception:
            self.create_subscription(ObjectList, "/perception/objects",
                                     lambda m: self._add(m, "objects"))
            self.create_subscription(TrafficLightState, "/perception/traffic_light",
                                     lambda m: self._add(m, "light"))

    def on_map(self, msg: MapData) -> None:
        import carla

        self.carla_map = carla.Map(msg.name or "map", msg.opendrive)
        self.router = RoutePlanner(self.carla_map)
        self.object_filter = ObjectFilter(self.carla_map, self.params.object_filter)
        self.local = None
        self.lights = None
        # The map is latched and comes over its own socket, so a frame's inputs may
        # arrive before it (seen on a loaded machine): those frames are planned now,
        # or the simulator would wait for them until its deadline.
        for frame in self.inputs.complete_frames():
            self._plan(self.inputs.take(frame))

    def _route_points(self, ego: EgoState) -> list[tuple[float, float]]:
        loc = ego.transform.location
        if self.params.waypoints:
            return [(loc.x, loc.y)] + [(p[0], p[1]) for p in self.params.waypoints]
        if self.params.scenario:
            from sim.scenario import load_scenario, resolve_route

            route = resolve_route(load_scenario(self.params.scenario)).route.waypoints
            if route:
                return [(loc.x, loc.y)] + [(p.x, p.y) for p in route[1:]]
        return self._lane_ahead(ego)

    def _lane_ahead(self, ego: EgoState) -> list[tuple[float, float]]:
        """Without a route: the ego's lane ahead, first branch at splits."""
        import carla

        loc = ego.transform.location
        wp = self.carla_map.get_waypoint(carla.Location(loc.x, loc.y, loc.z))
        points = [(loc.x, loc.y)]
        travelled = 0.0
        while wp is not None and travelled < self.params.free_drive_m:
            ahead = wp.next(10.0)
            if not ahead:
                break
            wp = ahead[0]
            points.append((wp.transform.location.x, wp.transform.location.y))
            travelled += 10.0
        return points

    def _adjacent_lanes(self, ego: EgoState) -> dict[str, float]:
        """Lanes beside the ego's that it may change into here: driving lanes of the
        same direction across a marking that allows it; {side: offset m, + right}."""
        import carla

        loc = ego.transform.location
        wp = self.carla_map.get_waypoint(carla.Location(loc.x, loc.y, loc.z))
        if wp is None or wp.is_junction:
            return {}
        out = {}
        for side, lane, marking, sign, allowed in (
                ("left", wp.get_left_lane(), wp.left_lane_marking, -1.0,
                 (carla.LaneChange.Left, carla.LaneChange.Both)),
                ("right", wp.get_right_lane(), wp.right_lane_marking, 1.0,
                 (carla.LaneChange.Right, carla.LaneChange.Both))):
            if (lane is not None and lane.lane_type == carla.LaneType.Driving
                    and lane.lane_id * wp.lane_id > 0 and marking.lane_change in allowed):
                out[side] = sign * (wp.lane_width + lane.lane_width) / 2
        return out

    def _add(self, msg: object, kind: str) -> None:
        frame = self.inputs.add(kind, msg)
        if self.router is not None and self.inputs.complete(frame):
            self._plan(self.inputs.take(frame))

    def _plan(self, slot: dict[str, object]) -> None:
        ego: EgoState = slot["ego"]  # type: ignore[assignment]
        if self.local is None:
            points = self._route_points(ego)
            try:
                route = self.router.plan_through(points)
            except UnreachableError as exc:  # the run stops at the sim's deadline,
                self.state = "error"  # which names this node; here is why
                self.get_logger().error("no route: %s", exc)
                return
            route_xy = route.xy()
            behaviour = BehaviourParams(max_speed=self.params.max_speed)
            self.local = LocalPlanner(route_xy, LocalPlannerParams(behaviour=behaviour))
            self.lights = PerceivedLight(
                JunctionEntries(self.carla_map, route_xy, map_signal_heads(self.carla_map)),
                self.params.perceived_light,
                comfort_decel=behaviour.comfort_decel, firm_decel=behaviour.firm_decel,
                clearance_m=behaviour.ego_half_length + behaviour.stop_margin)
        objects = self.object_filter.apply(slot.get("objects", ObjectList(header=ego.header)),
                                           ego)
        light = slot.get("light", TrafficLightState(header=ego.header))
        if self.lights is not None:  # perception's light: its stop line from the map
            loc = ego.transform.location
            self.local.locate(loc.x, loc.y)
            light = self.lights.place(light, self.local.route_position(loc.x, loc.y),
                                      light.header.stamp, speed=ego.speed,
                                      pose=ego.transform)
        trajectory = self.local.plan(ego, objects, light,  # type: ignore[arg-type]
                                     self._adjacent_lanes(ego))
        self.pub.publish(trajectory)
