"""Fixtures for simulator tests: a tiny hand-written OpenDRIVE road."""

from __future__ import annotations

import pytest


def _lane(lane_id: int, kind: str, width: float, mark: str) -> str:
    return (f'<lane id="{lane_id}" type="{kind}" level="false"><link/>'
            f'<width sOffset="0.0" a="{width}" b="0.0" c="0.0" d="0.0"/>'
            f'<roadMark sOffset="0.0" type="{mark}" weight="standard" color="standard" '
            f'width="0.15"/></lane>')


def straight_road(lanes_per_side: int = 1, sidewalks: bool = False) -> str:
    """OpenDRIVE of a 500 m straight road along +x with ``lanes_per_side`` driving
    lanes each way (3.5 m, broken lines between, solid edges) and optional 2 m
    sidewalks; 50 km/h."""
    left, right = [], []
    for i in range(1, lanes_per_side + 1):
        mark = "solid" if i == lanes_per_side else "broken"
        left.append(_lane(i, "driving", 3.5, mark))
        right.append(_lane(-i, "driving", 3.5, mark))
    if sidewalks:
        left.append(_lane(lanes_per_side + 1, "sidewalk", 2.0, "none"))
        right.append(_lane(-lanes_per_side - 1, "sidewalk", 2.0, "none"))
    return f"""<?xml version="1.0" standalone="yes"?>
<OpenDRIVE>
  <header revMajor="1" revMinor="4" name="straight" version="1.00"/>
  <road name="r0" length="500.0" id="1" junction="-1">
    <link/>
    <type s="0.0" type="town"><speed max="50" unit="km/h"/></type>
    <planView>
      <geometry s="0.0" x="0.0" y="0.0" hdg="0.0" length="500.0"><line/></geometry>
    </planView>
    <elevationProfile/><lateralProfile/>
    <lanes>
      <laneSection s="0.0">
        <left>{"".join(reversed(left))}</left>
        <center><lane id="0" type="driving" level="false"><link/>
          <roadMark sOffset="0.0" type="broken" weight="standard" color="yellow" width="0.15"/>
        </lane></center>
        <right>{"".join(right)}</right>
      </laneSection>
    </lanes>
  </road>
</OpenDRIVE>
"""


STRAIGHT_XODR = straight_road()


@pytest.fixture(scope="session")
def straight_xodr() -> str:
    """A 500 m straight two-lane road along +x: lane -1 at y = +1.75 drives towards +x
    (CARLA's y is OpenDRIVE's negated), lane 1 at y = -1.75 towards -x; 50 km/h."""
    return STRAIGHT_XODR


@pytest.fixture(scope="session")
def straight_map(straight_xodr: str):
    carla = pytest.importorskip("carla")
    return carla.Map("straight", straight_xodr)


@pytest.fixture(scope="session")
def wide_road():
    """Two lanes each way with sidewalks, as a world's MapSource."""
    carla = pytest.importorskip("carla")
    from sim.world import MapSource

    text = straight_road(lanes_per_side=2, sidewalks=True)
    return MapSource("wide", text, carla.Map("wide", text))
