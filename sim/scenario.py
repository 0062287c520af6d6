"""Scenario files: what the embedded simulator runs, as validated YAML.

A scenario names the map (built-in name or .xodr path), where the ego starts, the
route (waypoints, or a CARLA leaderboard route file and id), traffic, weather,
cameras, scripted events, the duration, the seed and the evaluation settings (the
blocked time). Every key is checked at load
(``bus.config``): a misspelled key or a bad value is one error naming the file.

Coordinates are CARLA world (metres, degrees). ``drivestack run --scenario FILE``
and the sim node load it with :func:`load_scenario`, which also takes the name of a
built-in scenario (``sim/scenarios/<name>.yaml``, see :func:`list_scenarios`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from bus import config as cfg
from sim.evaluation import BLOCKED_TIME_S

#: Where the built-in scenarios live (package data).
SCENARIO_DIR = Path(__file__).resolve().parent / "scenarios"


@dataclass
class Pose:
    """A world pose; ``yaw`` in degrees (CARLA: 0 along +x, 90 along +y)."""

    x: float = 0.0
    y: float = 0.0
    z: float = 0.0
    yaw: float = 0.0


@dataclass
class EgoConfig:
    vehicle: str = "default_car"  # a file in sim/vehicles/ (without .yaml) or a path
    spawn: Pose | None = None  # None: the route's first point, else spawn_index
    spawn_index: int = 0  # index into the map's spawn points

    def __post_init__(self) -> None:
        if self.spawn_index < 0:
            raise ValueError(f"ego.spawn_index must be >= 0, not {self.spawn_index}")


@dataclass
class RouteConfig:
    """Either ``waypoints`` or ``file`` + ``id`` (a CARLA leaderboard route file)."""

    waypoints: list[Pose] = field(default_factory=list)
    file: str = ""
    id: str = ""

    def __post_init__(self) -> None:
        if self.file and self.waypoints:
            raise ValueError("route: give waypoints or file, not both")
        if self.file and not self.id:
            raise ValueError("route: a route file needs an id")
        if self.waypoints and len(self.waypoints) < 2:
            raise ValueError("route.waypoints: need at least 2")


@dataclass
class TrafficConfig:
    vehicles: int = 0  # NPC vehicles
    pedestrians: int = 0
    vehicle_max_speed_factor: float = 1.0  # NPC target speed / speed limit
    #: > 0: NPCs and pedestrians start only within this distance (m) of the ego, so a
    #: big map is busy where the ego drives; 0: anywhere on the map
    spawn_radius_m: float = 0.0

    def __post_init__(self) -> None:
        if self.vehicles < 0 or self.pedestrians < 0:
            raise ValueError("traffic: counts must be >= 0")
        if self.spawn_radius_m < 0:
            raise ValueError("traffic: spawn_radius_m must be >= 0")


@dataclass
class WeatherConfig:
    """Appearance only: the ground truth never changes with the weather."""

    time_of_day: Literal["day", "dusk", "night"] = "day"
    fog: float = 0.0  # 0..1
    rain: float = 0.0  # 0..1
    sample: bool = False  # draw time of day, fog and rain from the seed instead

    def __post_init__(self) -> None:
        for name in ("fog", "rain"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"weather.{name} must be in [0, 1]")


@dataclass
class CameraConfig:
    """CARLA's camera attributes; ``mount`` in the ego frame (x fwd, y right, z up)."""

    name: str = "front"
    image_size_x: int = 640
    image_size_y: int = 360
    fov: float = 90.0
    x: float = 1.5
    y: float = 0.0
    z: float = 1.6
    pitch: float = 0.0
    yaw: float = 0.0

    def __post_init__(self) -> None:
        if not (16 <= self.image_size_x <= 4096 and 16 <= self.image_size_y <= 4096):
            raise ValueError(f"camera {self.name}: image size must be 16..4096 px")
        if not 1.0 <= self.fov <= 170.0:
            raise ValueError(f"camera {self.name}: fov must be in [1, 170] degrees")


EventKind = Literal["pedestrian_steps_out", "lead_vehicle_brakes", "stopped_vehicle",
                    "cut_in"]


@dataclass
class EventConfig:
    """A scripted event. It triggers when the ego is within ``trigger_distance`` m
    (along its route) of ``at_route_m`` m from the route start, or at ``at_time_s``."""

    kind: EventKind = "pedestrian_steps_out"
    at_route_m: float = -1.0
    at_time_s: float = -1.0
    trigger_distance: float = 25.0
    ahead_m: float = 20.0  # where the actor appears/acts, ahead of the ego
    speed: float = 1.5  # pedestrian walking speed or NPC speed, m/s
    decel: float = 6.0  # lead_vehicle_brakes: m/s^2

    def __post_init__(self) -> None:
        if self.at_route_m < 0 and self.at_time_s < 0:
            raise ValueError(f"event {self.kind}: set at_route_m or at_time_s")


@dataclass
class LockstepConfig:
    mode: Literal["strict", "realtime"] = "strict"
    deadline_s: float = 5.0
    #: the first frame's deadline: the nodes' start-up work (map, route graph,
    #: network warm-up) lands on it
    first_deadline_s: float = 60.0

    def __post_init__(self) -> None:
        if self.deadline_s <= 0 or self.first_deadline_s <= 0:
            raise ValueError("lockstep.deadline_s and first_deadline_s must be > 0")


@dataclass
class EvaluationConfig:
    """How the run is scored where the Leaderboard leaves room: ``blocked_time_s``,
    seconds of sim time below 0.1 m/s before the run ends as blocked (the
    Leaderboard's 180 s; shorter in tests)."""

    blocked_time_s: float = BLOCKED_TIME_S

    def __post_init__(self) -> None:
        if not self.blocked_time_s > 0:
            raise ValueError(f"evaluation.blocked_time_s must be > 0, not {self.blocked_time_s}")


@dataclass
class Scenario:
    name: str = ""  # what reports call it (metrics.json); empty: the file's stem
    map: str = ""  # built-in name or .xodr; empty: the route file's town, else town_grid
    map_dir: str = ""  # where a route's town (e.g. Town01) is found as <town>.xodr
    seed: int = 0
    # simulated seconds; 0: until the route ends (completed, blocked, deviated, or its
    # Leaderboard timeout of 0.8 s/m x length + 5 s, which only the traced route knows)
    duration_s: float = 120.0
    rate_hz: float = 20.0
    substeps: int = 10
    ego: EgoConfig = field(default_factory=EgoConfig)
    route: RouteConfig = field(default_factory=RouteConfig)
    traffic: TrafficConfig = field(default_factory=TrafficConfig)
    weather: WeatherConfig = field(default_factory=WeatherConfig)
    cameras: list[CameraConfig] = field(default_factory=lambda: [CameraConfig()])
    events: list[EventConfig] = field(default_factory=list)
    lockstep: LockstepConfig = field(default_factory=LockstepConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    ground_truth: bool = True  # publish /sim/ground_truth

    def __post_init__(self) -> None:
        if self.duration_s < 0 or self.rate_hz <= 0 or self.substeps < 1:
            raise ValueError("duration_s must be >= 0, rate_hz > 0, substeps >= 1")
        if self.duration_s == 0 and not (self.route.waypoints or self.route.file):
            raise ValueError("duration_s: 0 (until the route ends) needs a route")
        names = [c.name for c in self.cameras]
        if len(set(names)) != len(names):
            raise ValueError(f"cameras: names must be unique, got {names}")

    @property
    def dt(self) -> float:
        return 1.0 / self.rate_hz


def apply_overrides(scenario: Scenario, *, map: str = "", map_dir: str = "",
                    route_file: str = "", route_id: str = "", seed: int | None = None,
                    duration_s: float | None = None, mode: str = "") -> Scenario:
    """``scenario`` with a run's overrides (empty or None: keep the scenario's)
    applied and its route resolved (:func:`resolve_route`). A route file replaces
    the scenario's route; its town is the map unless ``map`` is given, and it is
    driven until it ends (``duration_s`` 0: the scenario's duration was meant for
    its own route) unless ``duration_s`` is given."""
    if map:
        scenario.map = map
    if map_dir:
        scenario.map_dir = map_dir
    if route_file:
        scenario.route = RouteConfig(file=route_file, id=route_id)
        if not map:
            scenario.map = ""  # the route file's town
        scenario.duration_s = 0.0
    if seed is not None:
        scenario.seed = seed
    if duration_s is not None:
        scenario.duration_s = duration_s
    if mode:
        scenario.lockstep.mode = mode  # type: ignore[assignment]
    return resolve_route(scenario)


def resolve_route(scenario: Scenario) -> Scenario:
    """Fill in what a route file implies: its waypoints, and (when the scenario names
    no map) its town, found as ``map_dir/<town>.xodr`` or a built-in map.
    Raises sim.routes.RouteError / sim.maps.MapError naming the file."""
    from sim.maps import resolve_town
    from sim.routes import load_route

    r = scenario.route
    if r.file:
        route = load_route(r.file, r.id)
        r.waypoints = [Pose(p.x, p.y, p.z, p.yaw) for p in route.points]
        r.file = ""  # resolved: the waypoints are the route now
        if not scenario.map:
            scenario.map = str(resolve_town(route.town, scenario.map_dir or None))
    if not scenario.map:
        scenario.map = "town_grid"
    return scenario


def list_scenarios() -> dict[str, Path]:
    """Built-in scenario name -> its YAML file, sorted by name."""
    return {p.stem: p for p in sorted(SCENARIO_DIR.glob("*.yaml"))}


def find_scenario(name_or_path: str | Path) -> Path:
    """The YAML file of a built-in scenario name (``town_grid_route``) or of a path.

    A string that names a built-in scenario wins over a file of that name in the
    working directory. Anything else must be an existing file; if it is not, one
    ConfigError names it and lists the built-in scenarios."""
    builtins = list_scenarios()
    if isinstance(name_or_path, str) and name_or_path in builtins:
        return builtins[name_or_path]
    path = Path(name_or_path)
    if path.is_file():
        return path
    raise cfg.ConfigError(str(name_or_path), "", "a built-in scenario name ("
                          + ", ".join(builtins) + ") or an existing scenario YAML file")


def load_scenario(name_or_path: str | Path) -> Scenario:
    """A scenario from YAML (a built-in name or a path, see :func:`find_scenario`);
    relative paths in it resolve against its directory."""
    path = find_scenario(name_or_path)
    scenario = cfg.load_yaml(Scenario, path)
    scenario.name = scenario.name or path.stem
    base = path.resolve().parent

    def resolve(value: str) -> str:
        return value if not value or Path(value).is_absolute() else str(base / value)

    if scenario.map.endswith(".xodr") or "/" in scenario.map:  # else a built-in name
        scenario.map = resolve(scenario.map)
    scenario.map_dir = resolve(scenario.map_dir)
    scenario.route.file = resolve(scenario.route.file)
    return scenario
