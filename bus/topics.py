"""The topic table: every topic on the bus, declared once (like openpilot's services).

A node may only publish or subscribe to a topic named here, with the message type
named here. ``drivestack topics`` prints this table.

QoS:
  keep_all     every message is delivered, in order (queues are unbounded: a slow
               subscriber grows memory rather than losing data). For lockstep topics.
  latest       a subscriber sees only the newest message when it gets to it; the
               ones it skipped are counted as drops. For sensor streams where stale
               data is worthless in real-time mode.
Latched topics resend their last message to every subscriber that connects later.
Multi-publisher topics (diagnostics, events) accept one publisher per node.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from bus import messages as m

History = Literal["keep_all", "latest"]


@dataclass(frozen=True)
class QoS:
    history: History = "keep_all"

    def __post_init__(self) -> None:
        if self.history not in ("keep_all", "latest"):
            raise ValueError(f"QoS history must be 'keep_all' or 'latest', not {self.history!r}")


KEEP_ALL = QoS("keep_all")
LATEST = QoS("latest")


@dataclass(frozen=True)
class TopicSpec:
    """One row of the table. ``rate_hz`` is nominal (0 = on change / on event)."""

    name: str
    msg_type: type
    rate_hz: float
    recorded: bool
    latched: bool = False
    multi_publisher: bool = False
    qos: QoS = KEEP_ALL
    description: str = ""


_TOPIC_NAME = re.compile(r"^(/[a-z0-9_]+)+$")
_PATTERN_PARAM = "<name>"


def _table(*specs: TopicSpec) -> dict[str, TopicSpec]:
    table = {}
    for s in specs:
        bare = s.name.replace(_PATTERN_PARAM, "x")
        if not _TOPIC_NAME.fullmatch(bare):
            raise ValueError(f"bad topic name {s.name!r}")
        table[s.name] = s
    return table


#: Every camera topic starts with this (the table's ``/sensors/camera/<name>``)
CAMERA_PREFIX = "/sensors/camera/"

TOPICS: dict[str, TopicSpec] = _table(
    TopicSpec("/sensors/camera/<name>", m.Image, 20, True, qos=KEEP_ALL,
              description="camera image; <name> is the camera (front, left, ...)"),
    TopicSpec("/ego/state", m.EgoState, 20, True, description="ego pose, velocity, control"),
    TopicSpec("/map/opendrive", m.MapData, 0, True, latched=True,
              description="OpenDRIVE text of the map being driven"),
    TopicSpec("/sim/ground_truth", m.GroundTruth, 20, True,
              description="every actor and light; evaluation, recorder, oracle mode only"),
    TopicSpec("/perception/objects", m.ObjectList, 20, True, description="objects, ego frame"),
    TopicSpec("/perception/traffic_light", m.TrafficLightState, 20, True,
              description="state of the light governing the ego lane"),
    TopicSpec("/perception/segmentation/<name>", m.Segmentation, 20, True,
              description="the network's classes of camera <name>'s image (CARLA ids)"),
    TopicSpec("/planning/trajectory", m.Trajectory, 20, True, description="planned path"),
    TopicSpec("/control/command", m.ControlCommand, 20, True,
              description="VehicleControl for the frame in the header"),
    TopicSpec("/diagnostics", m.NodeStatus, 1, True, multi_publisher=True,
              description="each node's heartbeat, latency and drops"),
    TopicSpec("/run/events", m.RunEvent, 0, True, multi_publisher=True,
              description="infractions and end conditions"),
    TopicSpec("/demo/chatter", m.Chatter, 10, True, description="demo pipeline input"),
    TopicSpec("/demo/relay", m.Chatter, 10, True, description="demo pipeline output"),
)


class UnknownTopicError(KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


def lookup(topic: str) -> TopicSpec:
    """The spec of a concrete topic name; ``/sensors/camera/front`` matches the
    pattern row ``/sensors/camera/<name>``. Unknown names raise UnknownTopicError."""
    spec = TOPICS.get(topic)
    if spec is not None and _PATTERN_PARAM not in topic:
        return spec
    if _TOPIC_NAME.fullmatch(topic):
        parent, _, leaf = topic.rpartition("/")
        pattern = TOPICS.get(f"{parent}/{_PATTERN_PARAM}")
        if pattern is not None and leaf:
            return TopicSpec(topic, pattern.msg_type, pattern.rate_hz, pattern.recorded,
                             pattern.latched, pattern.multi_publisher, pattern.qos,
                             pattern.description)
    raise UnknownTopicError(
        f"unknown topic {topic!r}: not in the topic table (drivestack topics lists them)"
    )


def check_type(topic: str, msg_type: type) -> TopicSpec:
    """The spec of ``topic``, after checking that it carries ``msg_type``."""
    spec = lookup(topic)
    if spec.msg_type is not msg_type:
        raise TypeError(
            f"topic {topic} carries {spec.msg_type.__name__}, not {msg_type.__name__}"
        )
    return spec
