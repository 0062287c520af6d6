"""Every message that crosses the bus, with its frame and units on each field.

Frames (see ``bus.frames`` for the conversions):
  world  CARLA's: metres, x/y/z with z up, left-handed; rotations in degrees.
  ego    the vehicle's: x forward, y right, z up, origin at the vehicle's
         transform (CARLA puts it at the bounding-box centre on the ground).
  camera OpenCV's: x right, y down, z forward (used only for projection).

Units are SI (m, s, m/s, m/s^2) except angles, which follow CARLA: degrees and
degrees per second. Every message starts with a :class:`Header`.
"""

from __future__ import annotations

from dataclasses import field

import numpy as np

from bus.schema import SchemaError, array, check_finite, check_range, choice, message, struct


# ----------------------------------------------------------------------------- parts
@struct
class Header:
    """When a message belongs: ``frame`` is the simulator tick it was computed for,
    ``stamp`` the simulation time of that tick in seconds (not wall time)."""

    frame: int = 0
    stamp: float = 0.0


@struct
class Vector3:
    """A point or vector; its frame is named by the field that holds it."""

    x: float = 0.0
    y: float = 0.0
    z: float = 0.0


@struct
class Rotation:
    """CARLA rotation in degrees: pitch about y, yaw about z, roll about x."""

    pitch: float = 0.0
    yaw: float = 0.0
    roll: float = 0.0


@struct
class Transform:
    """A pose: location (m) and rotation (deg), in the frame named by the field."""

    location: Vector3 = field(default_factory=Vector3)
    rotation: Rotation = field(default_factory=Rotation)



@struct
class CameraIntrinsics:
    """Pinhole intrinsics in pixels for an image of ``width`` x ``height``."""

    width: int = 0
    height: int = 0
    fx: float = 0.0
    fy: float = 0.0
    cx: float = 0.0
    cy: float = 0.0

    @staticmethod
    def from_fov(width: int, height: int, fov_deg: float) -> CameraIntrinsics:
        """CARLA's camera model: horizontal field of view ``fov`` (deg), square pixels."""
        f = width / (2.0 * np.tan(np.radians(fov_deg) / 2.0))
        return CameraIntrinsics(width, height, float(f), float(f), width / 2.0, height / 2.0)

    def matrix(self) -> np.ndarray:
        return np.array([[self.fx, 0, self.cx], [0, self.fy, self.cy], [0, 0, 1]], float)


@struct
class VehicleControl:
    """CARLA ``VehicleControl``: throttle 0..1, steer -1..1 (positive right),
    brake 0..1, hand brake, reverse, and the optional manual gear."""

    throttle: float = 0.0
    steer: float = 0.0
    brake: float = 0.0
    hand_brake: bool = False
    reverse: bool = False
    manual_gear_shift: bool = False
    gear: int = 0

    def __post_init__(self) -> None:
        check_range("VehicleControl.throttle", self.throttle, 0.0, 1.0)
        check_range("VehicleControl.steer", self.steer, -1.0, 1.0)
        check_range("VehicleControl.brake", self.brake, 0.0, 1.0)


@struct
class BoundingBox:
    """An oriented 3D box: ``location`` of its centre relative to the actor's origin
    (actor frame, m), half-sizes ``extent`` (m), ``rotation`` relative to the actor."""

    location: Vector3 = field(default_factory=Vector3)
    extent: Vector3 = field(default_factory=Vector3)
    rotation: Rotation = field(default_factory=Rotation)



@struct
class LaneRef:
    """An OpenDRIVE lane: road id, lane section index and signed lane id."""

    road_id: int = 0
    section_id: int = 0
    lane_id: int = 0


LIGHT_STATES = ("red", "yellow", "green", "off", "unknown")


# -------------------------------------------------------------------------- messages
@message("Image", 1)
class Image:
    """One camera frame. ``data`` is H x W x 3 uint8 in ``encoding`` channel order;
    ``mount`` is the camera pose in the ego frame (CARLA sensor attachment: x forward,
    y right, z up, degrees)."""

    header: Header = field(default_factory=Header)
    camera: str = "front"
    encoding: str = choice(("bgr8", "rgb8"), default="bgr8")
    data: np.ndarray = array("uint8", (None, None, 3))
    intrinsics: CameraIntrinsics = field(default_factory=CameraIntrinsics)
    mount: Transform = field(default_factory=Transform)

    def __post_init__(self) -> None:
        h, w = self.data.shape[:2]
        if self.intrinsics.width == 0 and self.intrinsics.height == 0:  # not given
            self.intrinsics = CameraIntrinsics.from_fov(w, h, 90.0)
        if (self.intrinsics.width, self.intrinsics.height) != (w, h):
            raise SchemaError(
                "Image.intrinsics",
                f"width x height = {w} x {h} (the image's)",
                f"{self.intrinsics.width} x {self.intrinsics.height}",
            )


@message("Segmentation", 1)
class Segmentation:
    """The perception network's classes of one camera image, at the network's input
    size. ``labels`` H x W uint8: CARLA CityObjectLabel ids (``sim.labels.Label``;
    the network's classes, each as one id: road 1, road line 24, sidewalk 2, vehicle
    14 (Car, for every vehicle), pedestrian 12, traffic light 7, everything else 0);
    ``intrinsics`` those of the label image (the camera's scaled to its size);
    ``mount`` the camera's pose in the ego frame, as in :class:`Image`."""

    header: Header = field(default_factory=Header)
    camera: str = "front"
    labels: np.ndarray = array("uint8", (None, None))
    intrinsics: CameraIntrinsics = field(default_factory=CameraIntrinsics)
    mount: Transform = field(default_factory=Transform)

    def __post_init__(self) -> None:
        h, w = self.labels.shape
        if (self.intrinsics.width, self.intrinsics.height) != (w, h):
            raise SchemaError(
                "Segmentation.intrinsics",
                f"width x height = {w} x {h} (the labels')",
                f"{self.intrinsics.width} x {self.intrinsics.height}",
            )


@message("EgoState", 1)
class EgoState:
    """The ego vehicle as the simulator knows it at ``header.frame``.

    transform: world pose of the vehicle origin. velocity, acceleration: world frame,
    m/s and m/s^2. speed: |velocity| in m/s. yaw_rate: deg/s (CARLA's angular
    velocity z). speed_limit: m/s of the current lane (0 when unknown).
    control: the VehicleControl applied during the last step.
    """

    header: Header = field(default_factory=Header)
    transform: Transform = field(default_factory=Transform)
    velocity: Vector3 = field(default_factory=Vector3)
    acceleration: Vector3 = field(default_factory=Vector3)
    speed: float = 0.0
    yaw_rate: float = 0.0
    speed_limit: float = 0.0
    control: VehicleControl = field(default_factory=VehicleControl)

    def __post_init__(self) -> None:
        check_finite("EgoState.speed", self.speed, self.yaw_rate, self.speed_limit)


@message("MapData", 1)
class MapData:
    """The map being driven: OpenDRIVE 1.4+ text and its name (e.g. ``Town01``).
    Latched: a node that starts late still receives it."""

    header: Header = field(default_factory=Header)
    name: str = ""
    opendrive: str = ""


@struct
class ActorState:
    """One actor in ground truth. ``label`` is CARLA's CityObjectLabel id (14 Car,
    12 Pedestrians, ...); ``transform`` and ``velocity`` in the world frame."""

    id: int = 0
    type_id: str = ""
    label: int = 0
    transform: Transform = field(default_factory=Transform)
    velocity: Vector3 = field(default_factory=Vector3)
    bounding_box: BoundingBox = field(default_factory=BoundingBox)



@struct
class TrafficLightInfo:
    """A traffic light in ground truth: its world pose, state, and the world
    position of the centre of its stop line; ``lanes`` are the lanes it governs."""

    id: int = 0
    state: str = choice(LIGHT_STATES, default="unknown")
    transform: Transform = field(default_factory=Transform)
    stop_line: Vector3 = field(default_factory=Vector3)
    lanes: list[LaneRef] = field(default_factory=list)



@message("GroundTruth", 1)
class GroundTruth:
    """What the simulator knows: every actor except the ego, every traffic light,
    and the ego's lane. Reaches evaluation and the recorder, and planning only in
    oracle mode."""

    header: Header = field(default_factory=Header)
    ego_id: int = 0
    actors: list[ActorState] = field(default_factory=list)
    traffic_lights: list[TrafficLightInfo] = field(default_factory=list)
    ego_lane: LaneRef = field(default_factory=LaneRef)



OBJECT_CLASSES = ("vehicle", "pedestrian", "cyclist", "static", "unknown")


@struct
class DetectedObject:
    """An object in the ego frame at ``header.stamp``: centre ``position`` (m), full
    ``size`` (length, width, height in m), ``yaw`` relative to ego x (deg, positive
    to the right as in CARLA), ``velocity`` (m/s, ego frame, over ground),
    ``confidence`` 0..1, ``track_id`` stable across frames (-1 when untracked)."""

    track_id: int = -1
    label: str = choice(OBJECT_CLASSES, default="unknown")
    position: Vector3 = field(default_factory=Vector3)
    size: Vector3 = field(default_factory=Vector3)
    yaw: float = 0.0
    velocity: Vector3 = field(default_factory=Vector3)
    confidence: float = 1.0

    def __post_init__(self) -> None:
        check_range("DetectedObject.confidence", self.confidence, 0.0, 1.0)


@message("ObjectList", 1)
class ObjectList:
    """Objects perceived (or, in oracle mode, taken from ground truth) at a tick;
    ``source`` says which."""

    header: Header = field(default_factory=Header)
    source: str = choice(("perception", "oracle"), default="perception")
    objects: list[DetectedObject] = field(default_factory=list)



@message("TrafficLightState", 2)
class TrafficLightState:
    """State of the light governing the ego lane. ``distance`` to its stop line
    along the lane (m; -1 when no light is ahead), ``confidence`` 0..1.
    Perception's, when ``lamp_seen`` (the state was read from a lamp in a camera
    image): ``bearing``, the direction (deg from ego x, positive to the right as
    CARLA's yaw) in which that lamp was seen from ``origin`` (the camera's position
    in the ego frame, m), so that the planner can tell which head of its map was
    read."""

    header: Header = field(default_factory=Header)
    state: str = choice(LIGHT_STATES, default="unknown")
    distance: float = -1.0
    confidence: float = 0.0
    source: str = choice(("perception", "oracle"), default="perception")
    lamp_seen: bool = False
    bearing: float = 0.0
    origin: Vector3 = field(default_factory=Vector3)

    def __post_init__(self) -> None:
        check_range("TrafficLightState.confidence", self.confidence, 0.0, 1.0)
        check_range("TrafficLightState.bearing", self.bearing, -180.0, 180.0)


@message("Trajectory", 1)
class Trajectory:
    """A planned path over time in the world frame: ``poses`` N x 3 (x m, y m,
    yaw deg), ``speeds`` N (m/s), ``times`` N (s after ``header.stamp``, rising)."""

    header: Header = field(default_factory=Header)
    poses: np.ndarray = array("float64", (None, 3))
    speeds: np.ndarray = array("float64", (None,))
    times: np.ndarray = array("float64", (None,))

    def __post_init__(self) -> None:
        n = self.poses.shape[0]
        if self.speeds.shape[0] != n or self.times.shape[0] != n:
            raise SchemaError(
                "Trajectory", "poses, speeds and times of one length",
                (n, self.speeds.shape[0], self.times.shape[0]),
            )
        if n > 1 and not bool(np.all(np.diff(self.times) > 0)):
            raise SchemaError("Trajectory.times", "strictly rising times", "not rising")


@message("ControlCommand", 1)
class ControlCommand:
    """The command for ``header.frame``; the simulator applies it for one step."""

    header: Header = field(default_factory=Header)
    control: VehicleControl = field(default_factory=VehicleControl)



@message("NodeStatus", 1)
class NodeStatus:
    """A node's heartbeat on /diagnostics. ``heartbeat`` counts up once per report;
    ``latency_ms_p50/p99/max`` are the node's processing times per output since the
    last report (its callbacks that publish; see ``bus.node.NodeStats``);
    ``drops`` counts messages lost or skipped (latest-only QoS, sequence gaps) since
    start; ``deadline_misses`` counts lockstep waits that timed out in real-time mode."""

    header: Header = field(default_factory=Header)
    node: str = ""
    pid: int = 0
    state: str = choice(("starting", "ready", "running", "error", "stopping"), "starting")
    heartbeat: int = 0
    wall_time: float = 0.0
    latency_ms_p50: float = 0.0
    latency_ms_p99: float = 0.0
    latency_ms_max: float = 0.0
    messages_in: int = 0
    messages_out: int = 0
    drops: int = 0
    deadline_misses: int = 0
    message: str = ""


EVENT_KINDS = (
    "collision_pedestrian", "collision_vehicle", "collision_static", "red_light",
    "stop_sign", "off_route", "route_deviation", "lane_invasion", "blocked",
    "route_timeout", "route_completed", "deadline_miss", "scenario_end",
)


@message("RunEvent", 1)
class RunEvent:
    """Something that happened in a run: an infraction (collision, red light, ...)
    or an end condition. ``location`` in the world frame; ``other_id`` the other
    actor (-1 when none); ``value`` a kind-specific amount (e.g. collision impulse
    in N s, off-route distance in m)."""

    header: Header = field(default_factory=Header)
    kind: str = choice(EVENT_KINDS, default="route_completed")
    actor_id: int = -1
    other_id: int = -1
    location: Vector3 = field(default_factory=Vector3)
    value: float = 0.0
    description: str = ""



@message("Chatter", 1)
class Chatter:
    """A line of text: the demo pipeline's message (``launch/files/demo.yaml``), and
    a smoke test for any bus set-up."""

    header: Header = field(default_factory=Header)
    text: str = ""
    count: int = 0
