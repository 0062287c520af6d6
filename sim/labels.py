"""CARLA's semantic label ids (``carla.CityObjectLabel``, 0.9.14 and later numbering).

The renderer writes these ids into its label images and ground truth uses them for
actor classes, so data from the embedded simulator and from CARLA train the same
network. See ../shared/design/FACTS.md.
"""

from __future__ import annotations

from enum import IntEnum


class Label(IntEnum):
    NONE = 0
    ROADS = 1
    SIDEWALKS = 2
    BUILDINGS = 3
    WALLS = 4
    FENCES = 5
    POLES = 6
    TRAFFIC_LIGHT = 7
    TRAFFIC_SIGNS = 8
    VEGETATION = 9
    TERRAIN = 10
    SKY = 11
    PEDESTRIANS = 12
    RIDER = 13
    CAR = 14
    TRUCK = 15
    BUS = 16
    TRAIN = 17
    MOTORCYCLE = 18
    BICYCLE = 19
    STATIC = 20
    DYNAMIC = 21
    OTHER = 22
    WATER = 23
    ROAD_LINES = 24
    GROUND = 25
    BRIDGE = 26
    RAIL_TRACK = 27
    GUARD_RAIL = 28


VEHICLE_LABELS = frozenset({Label.CAR, Label.TRUCK, Label.BUS, Label.MOTORCYCLE,
                            Label.BICYCLE})
