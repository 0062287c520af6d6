"""SensorQueue: each frame gets exactly its own readings, whatever order and thread
the callbacks deliver them in (no server needed)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import pytest

from sim.carla_bridge.sync import SensorQueue, SensorTimeout


@dataclass
class FakeData:
    """What CARLA hands a ``listen`` callback: the frame it belongs to, a payload."""

    frame: int
    payload: str


def test_out_of_order_and_lagging_cameras_match_their_frame() -> None:
    q = SensorQueue(("front", "front/depth"))
    front, depth = q.callback("front"), q.callback("front/depth")
    # depth lags a frame, front delivers 11 before 10
    for cb, f in ((front, 11), (front, 10), (depth, 9), (depth, 10), (front, 12),
                  (depth, 11)):
        cb(FakeData(f, f"{'d' if cb is depth else 'f'}{f}"))
    got10 = q.collect(10, timeout_s=0.1)
    assert {k: v.payload for k, v in got10.items()} == {"front": "f10", "front/depth": "d10"}
    # the stale depth of frame 9 went with frame 10; frames 11 and 12 are kept
    assert q.pending() == {"front": [11, 12], "front/depth": [11]}
    got11 = q.collect(11, timeout_s=0.1)
    assert got11["front"].payload == "f11" and got11["front/depth"].payload == "d11"


def test_waits_for_a_late_reading_from_another_thread() -> None:
    q = SensorQueue(("front",))
    cb = q.callback("front", convert=lambda d: d.payload.upper())

    def late() -> None:
        time.sleep(0.15)
        cb(FakeData(4, "old"))  # a stale frame first: must not satisfy frame 5
        cb(FakeData(5, "x"))

    t = threading.Thread(target=late)
    t0 = time.monotonic()
    t.start()
    assert q.collect(5, timeout_s=5.0) == {"front": "X"}
    t.join()
    assert 0.1 < time.monotonic() - t0 < 2.0


def test_timeout_names_the_missing_sensor_and_is_bounded() -> None:
    q = SensorQueue(("front", "rear"))
    q.put("front", 3, "f3")
    q.put("rear", 2, "r2")
    t0 = time.monotonic()
    with pytest.raises(SensorTimeout, match=r"frame 3 from rear .*\{'rear': \[2\]\}"):
        q.collect(3, timeout_s=0.2)
    assert time.monotonic() - t0 < 1.0
    # what arrived is still there for a retry
    q.put("rear", 3, "r3")
    assert q.collect(3, timeout_s=0.1) == {"front": "f3", "rear": "r3"}


def test_events_come_out_in_frame_order_once() -> None:
    q = SensorQueue(("front",))
    hit, lane = q.callback("collision", event=True), q.callback("lane_invasion", event=True)
    hit(FakeData(7, "car"))
    lane(FakeData(5, "solid"))
    hit(FakeData(5, "wall"))
    hit(FakeData(9, "later"))
    assert [(f, n, d.payload) for f, n, d in q.events(7)] == [
        (5, "lane_invasion", "solid"), (5, "collision", "wall"), (7, "collision", "car")]
    assert q.events(7) == []
    assert [d.payload for _, _, d in q.events(9)] == ["later"]


def test_bounded_memory_and_unknown_sensor() -> None:
    q = SensorQueue(("front",), max_frames=4)
    for f in range(10):
        q.put("front", f, f)
    assert q.pending() == {"front": [6, 7, 8, 9]}
    with pytest.raises(KeyError, match="unknown sensor 'rear'"):
        q.put("rear", 1, None)
    with pytest.raises(ValueError, match="unique"):
        SensorQueue(("a", "a"))


def test_many_threads_many_frames() -> None:
    """Two cameras delivering 200 frames each from their own threads in shuffled
    order: every frame collects its own pair."""
    import random

    q = SensorQueue(("a", "b"), max_frames=1000)

    def produce(name: str, seed: int) -> None:
        frames = list(range(200))
        random.Random(seed).shuffle(frames)
        for f in frames:
            q.put(name, f, (name, f))

    threads = [threading.Thread(target=produce, args=(n, s)) for n, s in (("a", 1), ("b", 2))]
    for t in threads:
        t.start()
    for f in range(200):
        assert q.collect(f, timeout_s=5.0) == {"a": ("a", f), "b": ("b", f)}
    for t in threads:
        t.join()


def test_first_frame_ticks_past_a_frame_sent_before_the_listener_was_known() -> None:
    """The server rendered frame 1 before the camera's subscription landed: frame 1
    never comes, so the bridge ticks again instead of waiting its whole timeout."""
    q = SensorQueue(("front", "front/depth"))
    front, depth = q.callback("front"), q.callback("front/depth")
    frames = iter(range(1, 100))
    ticked: list[int] = []

    def tick() -> int:
        f = next(frames)
        ticked.append(f)
        if f >= 3:  # the front camera's subscription landed after frame 2
            front(FakeData(f, f"f{f}"))
        depth(FakeData(f, f"d{f}"))
        return f

    t0 = time.monotonic()
    frame, readings = q.first_frame(tick, timeout_s=5.0, first_wait_s=0.05)
    assert frame == 3 and ticked == [1, 2, 3]
    assert {k: v.payload for k, v in readings.items()} == {"front": "f3", "front/depth": "d3"}
    assert time.monotonic() - t0 < 1.0  # 0.05 + 0.1 s of waiting, not the timeout
    assert q.pending() == {"front": [], "front/depth": []}


def test_first_frame_waits_for_a_slow_first_reading_and_gives_up_in_time() -> None:
    q = SensorQueue(("front",))
    cb = q.callback("front")
    # slow, not lost: frame 1 arrives 0.15 s after its tick (a first render)
    timer = threading.Timer(0.15, cb, args=(FakeData(1, "late"),))
    frame, readings = q.first_frame(lambda: (timer.start(), 1)[1], timeout_s=5.0,
                                    first_wait_s=0.5)
    assert frame == 1 and readings["front"].payload == "late"

    frames = iter(range(10, 100))
    t0 = time.monotonic()
    with pytest.raises(SensorTimeout, match=r"from front within .*first frame, after 0.4 s"):
        q.first_frame(lambda: next(frames), timeout_s=0.4, first_wait_s=0.05)
    assert 0.35 < time.monotonic() - t0 < 1.0
