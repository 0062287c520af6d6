"""FrameJoin: one frame's inputs from several topics, in any order."""

from __future__ import annotations

import pytest

from bus.join import FrameJoin
from bus.messages import EgoState, Header, Trajectory


def ego(frame: int) -> EgoState:
    return EgoState(header=Header(frame=frame))


def traj(frame: int) -> Trajectory:
    return Trajectory(header=Header(frame=frame))


def test_a_frame_is_complete_once_every_input_is_in_whatever_the_order():
    join = FrameJoin(("ego", "trajectory"))
    assert join.add("trajectory", traj(0)) == 0
    assert not join.complete(0)
    join.add("ego", ego(0))
    assert join.complete(0)
    slot = join.take(0)
    assert slot["ego"].header.frame == 0 and slot["trajectory"].header.frame == 0
    assert len(join) == 0


def test_taking_a_frame_drops_older_ones_and_keeps_newer_ones():
    join = FrameJoin(("ego", "trajectory"))
    join.add("ego", ego(1))
    join.add("ego", ego(2))
    join.add("ego", ego(3))
    join.add("trajectory", traj(3))
    join.add("trajectory", traj(2))
    assert join.complete_frames() == [2, 3]
    join.take(2)
    assert join.complete_frames() == [3]
    assert len(join) == 1 and join.dropped == 1
    join.take(3)
    assert join.dropped == 1  # nothing older was left


def test_optional_inputs_come_along_when_in():
    join = FrameJoin(("ego",))
    join.add("light", traj(4))
    assert not join.complete(4)
    join.add("ego", ego(4))
    assert set(join.take(4)) == {"ego", "light"}


def test_a_join_needs_an_input():
    with pytest.raises(ValueError, match="at least one input"):
        FrameJoin(())
