"""Fixtures for simulator tests: a tiny hand-written OpenDRIVE road."""

from __future__ import annotations

import pytest

STRAIGHT_XODR = """<?xml version="1.0" standalone="yes"?>
<OpenDRIVE>
  <header revMajor="1" revMinor="4" name="straight" version="1.00" north="0" south="0"
          east="0" west="0"><geoReference><![CDATA[+proj=tmerc]]></geoReference></header>
  <road name="r0" length="500.0" id="1" junction="-1">
    <link/>
    <type s="0.0" type="town"><speed max="50" unit="km/h"/></type>
    <planView>
      <geometry s="0.0" x="0.0" y="0.0" hdg="0.0" length="500.0"><line/></geometry>
    </planView>
    <elevationProfile/><lateralProfile/>
    <lanes>
      <laneSection s="0.0">
        <left>
          <lane id="1" type="driving" level="false"><link/>
            <width sOffset="0.0" a="3.5" b="0.0" c="0.0" d="0.0"/>
            <roadMark sOffset="0.0" type="solid" weight="standard" color="standard" width="0.15"/>
          </lane>
        </left>
        <center><lane id="0" type="driving" level="false"><link/>
          <roadMark sOffset="0.0" type="broken" weight="standard" color="yellow" width="0.15"/>
        </lane></center>
        <right>
          <lane id="-1" type="driving" level="false"><link/>
            <width sOffset="0.0" a="3.5" b="0.0" c="0.0" d="0.0"/>
            <roadMark sOffset="0.0" type="solid" weight="standard" color="standard" width="0.15"/>
          </lane>
        </right>
      </laneSection>
    </lanes>
  </road>
</OpenDRIVE>
"""


@pytest.fixture(scope="session")
def straight_xodr() -> str:
    """A 500 m straight two-lane road along +x: lane -1 at y = +1.75 drives towards +x
    (CARLA's y is OpenDRIVE's negated), lane 1 at y = -1.75 towards -x; 50 km/h."""
    return STRAIGHT_XODR


@pytest.fixture(scope="session")
def straight_map(straight_xodr: str):
    carla = pytest.importorskip("carla")
    return carla.Map("straight", straight_xodr)
