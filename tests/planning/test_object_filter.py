"""Vehicles off the driving lanes are not planned around (planning.object_filter);
on the town_grid map's straight road at y = -98.25 (eastbound lane -1, 3.5 m wide,
y in [-100, -96.5]; sidewalk beyond -96.5), the ego in the middle of it, facing +x."""

from __future__ import annotations

import pytest

from bus.messages import DetectedObject, EgoState, Header, ObjectList, Rotation, Transform, Vector3
from planning.object_filter import ObjectFilter, ObjectFilterParams
from sim.maps import load_map

EGO = EgoState(header=Header(0, 0.0),
               transform=Transform(Vector3(130.0, -98.25, 0.0), Rotation(0.0, 0.0, 0.0)),
               speed_limit=8.0)


def _vehicle(x: float, y: float, yaw: float = 0.0, length: float = 4.6,
             width: float = 1.9, label: str = "vehicle", height: float = 1.5) -> DetectedObject:
    return DetectedObject(track_id=1, label=label, position=Vector3(x, y, height / 2),
                          size=Vector3(length, width, height), yaw=yaw, confidence=0.9)


@pytest.fixture(scope="module")
def town_grid():  # type: ignore[no-untyped-def]
    return load_map("town_grid")


def _kept(town_grid, *objects: DetectedObject,  # type: ignore[no-untyped-def]
          params: ObjectFilterParams | None = None) -> list[DetectedObject]:
    f = ObjectFilter(town_grid.map, params)
    return f.apply(ObjectList(header=EGO.header, objects=list(objects)), EGO).objects


def test_vehicles_on_lanes_are_kept(town_grid) -> None:  # type: ignore[no-untyped-def]
    ahead = _vehicle(12.0, 0.0)
    oncoming = _vehicle(20.0, -3.5, yaw=180.0)
    assert _kept(town_grid, ahead, oncoming) == [ahead, oncoming]


def test_a_vehicle_lower_than_a_car_on_the_lane_is_dropped(town_grid) -> None:  # type: ignore[no-untyped-def]
    # the asphalt round a painted stop bar, taken for a 4.6 x 3.2 x 0.96 m car
    stop_bar = _vehicle(7.0, 0.0, width=3.2, height=0.96)
    car = _vehicle(15.0, 0.0, height=1.1)
    assert _kept(town_grid, stop_bar, car) == [car]
    low_walker = _vehicle(5.0, 0.0, length=0.5, width=0.5, label="pedestrian", height=0.9)
    assert _kept(town_grid, low_walker) == [low_walker]  # a child, or a walker's box cut
    lax = ObjectFilterParams(min_vehicle_height_m=0.5)
    assert _kept(town_grid, stop_bar, params=lax) == [stop_bar]


def test_a_vehicle_on_the_sidewalk_is_dropped_a_pedestrian_is_not(town_grid) -> None:  # type: ignore[no-untyped-def]
    assert _kept(town_grid, _vehicle(12.0, 4.0)) == []
    walker = _vehicle(12.0, 4.0, length=0.5, width=0.5, label="pedestrian")
    assert _kept(town_grid, walker) == [walker]


def test_a_centre_just_past_the_lane_edge_is_within_the_margin(town_grid) -> None:  # type: ignore[no-untyped-def]
    # the centre 0.4 m beyond the lane's edge (1.75 m right of the lane centre)
    near_edge = _vehicle(12.0, 2.15)
    assert _kept(town_grid, near_edge) == [near_edge]
    assert _kept(town_grid, near_edge, params=ObjectFilterParams(margin_m=0.2,
                                                                 min_overlap=1.0)) == []


def test_a_diagonal_box_on_the_verge_reaching_into_the_lane_is_dropped(town_grid) -> None:  # type: ignore[no-untyped-def]
    # a box fitted to grass beside a bend: one corner in the lane, the rest off it
    phantom = _vehicle(12.0, 3.2, yaw=45.0, width=3.4)
    assert _kept(town_grid, phantom) == []


def test_a_box_mostly_on_the_lane_is_kept_whatever_its_centre(town_grid) -> None:  # type: ignore[no-untyped-def]
    # a car merged with the kerb beside it: a wide box centred on the sidewalk
    merged = _vehicle(12.0, 2.6, width=5.0)
    assert _kept(town_grid, merged) == [merged]


def test_the_filter_can_be_switched_off(town_grid) -> None:  # type: ignore[no-untyped-def]
    off_road = _vehicle(12.0, 4.0)
    assert _kept(town_grid, off_road, params=ObjectFilterParams(vehicles_on_lanes=False)) \
        == [off_road]
    with pytest.raises(ValueError, match="min_overlap"):
        ObjectFilterParams(min_overlap=1.5)
    with pytest.raises(ValueError, match="min_vehicle_height_m"):
        ObjectFilterParams(min_vehicle_height_m=-1.0)
