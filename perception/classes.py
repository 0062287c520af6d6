"""The perception network's training classes and the mapping from CARLA's
CityObjectLabel ids (``sim.labels.Label``) to them.

The network predicts 7 classes; every CARLA id maps to exactly one of them, so data
from the embedded simulator and from CARLA train the same network. Traffic-light
states for the light head are :data:`LIGHT_STATES` (index = class id).
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np

from sim.labels import VEHICLE_LABELS, Label


class TrainClass(IntEnum):
    BACKGROUND = 0
    ROAD = 1
    ROAD_LINE = 2
    SIDEWALK = 3
    VEHICLE = 4
    PEDESTRIAN = 5
    TRAFFIC_LIGHT = 6


NUM_CLASSES = len(TrainClass)
CLASS_NAMES = tuple(c.name.lower() for c in TrainClass)

#: States the traffic-light head classifies; "none": no light governs the ego lane
#: (or it is off/unknown).
LIGHT_STATES = ("red", "yellow", "green", "none")

_CARLA_TO_CLASS: dict[int, TrainClass] = {
    int(Label.ROADS): TrainClass.ROAD,
    int(Label.ROAD_LINES): TrainClass.ROAD_LINE,
    int(Label.SIDEWALKS): TrainClass.SIDEWALK,
    int(Label.PEDESTRIANS): TrainClass.PEDESTRIAN,
    int(Label.RIDER): TrainClass.PEDESTRIAN,
    int(Label.TRAFFIC_LIGHT): TrainClass.TRAFFIC_LIGHT,
    **{int(v): TrainClass.VEHICLE for v in VEHICLE_LABELS},
    int(Label.TRAIN): TrainClass.VEHICLE,
}

#: 256-entry lookup table: CARLA id -> class id (everything unlisted: background).
CARLA_TO_CLASS_LUT = np.zeros(256, np.uint8)
for _carla_id, _cls in _CARLA_TO_CLASS.items():
    CARLA_TO_CLASS_LUT[_carla_id] = int(_cls)


#: class id -> BGR colour for pictures (CARLA's CityScapes palette)
PALETTE = np.array([(0, 0, 0), (128, 64, 128), (50, 234, 157), (232, 35, 244),
                    (142, 0, 0), (60, 20, 220), (30, 170, 250)], np.uint8)

#: class id -> the CARLA id it is published as (a class that stands for several
#: CARLA ids takes its first: vehicle -> Car; background -> NONE)
CLASS_TO_CARLA = np.array([int(Label.NONE), int(Label.ROADS), int(Label.ROAD_LINES),
                           int(Label.SIDEWALKS), int(Label.CAR), int(Label.PEDESTRIANS),
                           int(Label.TRAFFIC_LIGHT)], np.uint8)


def carla_to_class(labels: np.ndarray) -> np.ndarray:
    """Map a uint8 image of CARLA CityObjectLabel ids to training class ids (uint8)."""
    labels = np.asarray(labels)
    if labels.dtype != np.uint8:
        raise TypeError(f"labels must be uint8 CARLA ids, got {labels.dtype}")
    return CARLA_TO_CLASS_LUT[labels]


def light_state_index(state: str | None) -> int:
    """Index into LIGHT_STATES of a light state ('off', 'unknown', None -> 'none')."""
    return LIGHT_STATES.index(state) if state in LIGHT_STATES else LIGHT_STATES.index("none")
