"""The topic table: rows, pattern lookup, type checks and QoS."""

from __future__ import annotations

import dataclasses
import re

import pytest

from bus import messages as m
from bus import topics
from bus.schema import registered_messages, type_of
from bus.topics import (
    KEEP_ALL,
    LATEST,
    TOPICS,
    QoS,
    TopicSpec,
    UnknownTopicError,
    check_type,
    lookup,
)

NAME_RE = re.compile(r"(/[a-z0-9_]+)+\Z")


def test_every_row_carries_a_registered_message() -> None:
    registered = {mt.cls for mt in registered_messages()}
    assert TOPICS
    for name, spec in TOPICS.items():
        assert spec.name == name
        assert spec.msg_type in registered, name
        assert type_of(spec.msg_type).cls is spec.msg_type


def test_row_names_are_valid() -> None:
    for name in TOPICS:
        assert NAME_RE.match(name.replace("<name>", "x")), name
        assert name.count("<name>") <= 1
        assert "<name>" not in name or name.endswith("/<name>"), name


def test_row_fields() -> None:
    for name, spec in TOPICS.items():
        assert isinstance(spec.qos, QoS), name
        assert spec.rate_hz >= 0, name
        assert isinstance(spec.recorded, bool) and isinstance(spec.latched, bool)
        assert spec.description, name
    assert TOPICS["/map/opendrive"].latched
    assert TOPICS["/map/opendrive"].rate_hz == 0
    assert TOPICS["/diagnostics"].multi_publisher
    assert TOPICS["/run/events"].multi_publisher
    assert not TOPICS["/control/command"].multi_publisher


@pytest.mark.parametrize(
    ("topic", "msg_type"),
    [
        ("/ego/state", m.EgoState),
        ("/map/opendrive", m.MapData),
        ("/sim/ground_truth", m.GroundTruth),
        ("/perception/objects", m.ObjectList),
        ("/perception/traffic_light", m.TrafficLightState),
        ("/planning/trajectory", m.Trajectory),
        ("/control/command", m.ControlCommand),
        ("/diagnostics", m.NodeStatus),
        ("/run/events", m.RunEvent),
        ("/demo/chatter", m.Chatter),
        ("/demo/relay", m.Chatter),
    ],
)
def test_lookup_exact(topic: str, msg_type: type) -> None:
    spec = lookup(topic)
    assert spec is TOPICS[topic]
    assert spec.msg_type is msg_type
    assert check_type(topic, msg_type) is spec


@pytest.mark.parametrize("camera", ["front", "left", "rear_2", "x", "0"])
def test_lookup_camera_pattern(camera: str) -> None:
    topic = f"/sensors/camera/{camera}"
    spec = lookup(topic)
    pattern = TOPICS["/sensors/camera/<name>"]
    assert spec.name == topic
    assert spec.msg_type is m.Image
    assert dataclasses.replace(spec, name=pattern.name) == pattern
    assert check_type(topic, m.Image).name == topic


@pytest.mark.parametrize(
    "topic",
    [
        "/sensors/camera", "/sensors/camera/", "/sensors/camera/Front", "/sensors/camera/a/b",
        "/sensors/camera/front-left", "/sensors/camera/front ", "/sensors/lidar/top",
        "/ego", "/ego/state/", "ego/state", "/Ego/state", "", "/", "//ego/state",
        "/nope", "/ego/state/x", "/demo/chatter2",
    ],
)
def test_unknown_topics(topic: str) -> None:
    with pytest.raises(UnknownTopicError) as info:
        lookup(topic)
    text = str(info.value)
    assert text == (
        f"unknown topic {topic!r}: not in the topic table (drivestack topics lists them)"
    )
    assert isinstance(info.value, KeyError)
    with pytest.raises(UnknownTopicError):
        check_type(topic, m.Image)


def test_trailing_newline_is_not_a_topic() -> None:
    with pytest.raises(UnknownTopicError):
        lookup("/sensors/camera/front\n")


def test_check_type_mismatch() -> None:
    with pytest.raises(TypeError) as info:
        check_type("/ego/state", m.Image)
    assert str(info.value) == "topic /ego/state carries EgoState, not Image"
    with pytest.raises(TypeError, match="carries Image, not Chatter"):
        check_type("/sensors/camera/front", m.Chatter)
    with pytest.raises(TypeError, match="carries Chatter, not Header"):
        check_type("/demo/chatter", m.Header)


def test_qos() -> None:
    assert QoS().history == "keep_all"
    assert QoS("keep_all") == KEEP_ALL and QoS("latest") == LATEST
    assert KEEP_ALL != LATEST
    for bad in ("latest_only", "KEEP_ALL", "", None, 1):
        with pytest.raises(ValueError, match="QoS history must be 'keep_all' or 'latest'"):
            QoS(bad)  # type: ignore[arg-type]
    with pytest.raises(dataclasses.FrozenInstanceError):
        KEEP_ALL.history = "latest"  # type: ignore[misc]


def test_table_refuses_bad_names() -> None:
    for bad in ("ego/state", "/Ego", "/ego state", "/ego/", "/", "/a//b"):
        with pytest.raises(ValueError, match="bad topic name"):
            topics._table(TopicSpec(bad, m.Chatter, 1, True))
    table = topics._table(TopicSpec("/a/<name>", m.Chatter, 1, True),
                          TopicSpec("/b_2/c", m.Chatter, 1, False))
    assert list(table) == ["/a/<name>", "/b_2/c"]


def test_specs_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        TOPICS["/ego/state"].rate_hz = 1  # type: ignore[misc]
