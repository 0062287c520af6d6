"""The blueprint library the server offers: CARLA ids, tags and attributes for the
vehicles, the walker and the sensors the embedded simulator can simulate.

Each vehicle blueprint names the ``sim/vehicles/*.yaml`` dynamics model that drives
it; its bounding box comes from that model. Attribute types use the 1-based
``ActorAttributeType`` of the 0.9.16 client (:mod:`sim.carla_server.wire`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sim.carla_server.wire import ATTR_BOOL, ATTR_FLOAT, ATTR_INT, ATTR_RGBCOLOR, ATTR_STRING
from sim.labels import Label


@dataclass(frozen=True)
class Attribute:
    """``rpc::ActorAttribute``: id, type, default value, recommended values, whether
    the client may change it and whether only recommended values are allowed."""

    id: str
    type: int
    value: str
    recommended: tuple[str, ...] = ()
    modifiable: bool = False
    restrict: bool = False

    def to_msg(self) -> list:
        return [self.id, self.type, self.value, list(self.recommended), self.modifiable,
                self.restrict]


@dataclass(frozen=True)
class Blueprint:
    """``rpc::ActorDefinition``: uid, id, comma-separated tags, attributes. ``model``
    is the dynamics model of a vehicle; ``label`` its CityObjectLabel."""

    uid: int
    id: str
    tags: str
    attributes: tuple[Attribute, ...]
    model: str = ""
    label: int = int(Label.NONE)
    defaults: dict[str, str] = field(default_factory=dict, compare=False)

    def to_msg(self) -> list:
        return [self.uid, self.id, self.tags, [a.to_msg() for a in self.attributes]]


def _role(default: str = "") -> Attribute:
    return Attribute("role_name", ATTR_STRING, default, ("autopilot", "scenario", "ego"),
                     True)


_COLORS = ("17,37,103", "0,0,0", "255,255,255", "180,30,30", "120,120,120")

# (id, tags, dynamics model, label, wheels, base type)
_VEHICLES = (
    ("vehicle.lincoln.mkz_2020", "mkz_2020,lincoln,vehicle,car", "default_car", Label.CAR,
     "car"),
    ("vehicle.tesla.model3", "model3,tesla,vehicle,car", "default_car", Label.CAR, "car"),
    ("vehicle.audi.a2", "a2,audi,vehicle,car", "default_car", Label.CAR, "car"),
    ("vehicle.toyota.prius", "prius,toyota,vehicle,car", "default_car", Label.CAR, "car"),
    ("vehicle.carlamotors.carlacola", "carlacola,carlamotors,vehicle,truck", "truck",
     Label.TRUCK, "truck"),
)


def _vehicle(uid: int, vid: str, tags: str, model: str, label: int, base: str) -> Blueprint:
    attrs = (
        _role("autopilot"),
        Attribute("color", ATTR_RGBCOLOR, _COLORS[uid % len(_COLORS)], _COLORS, True),
        Attribute("number_of_wheels", ATTR_INT, "4"),
        Attribute("generation", ATTR_INT, "2"),
        Attribute("base_type", ATTR_STRING, base),
        Attribute("object_type", ATTR_STRING, ""),
        Attribute("special_type", ATTR_STRING, ""),
        Attribute("has_dynamic_doors", ATTR_BOOL, "false"),
        Attribute("has_lights", ATTR_BOOL, "false"),
        Attribute("sticky_control", ATTR_BOOL, "true", (), True),
        Attribute("terramechanics", ATTR_BOOL, "false", (), True),
    )
    return Blueprint(uid, vid, tags, attrs, model=model, label=int(label))


def _camera_attrs(extra: tuple[Attribute, ...] = ()) -> tuple[Attribute, ...]:
    return (
        _role("front"),
        Attribute("image_size_x", ATTR_INT, "800", (), True),
        Attribute("image_size_y", ATTR_INT, "600", (), True),
        Attribute("fov", ATTR_FLOAT, "90.0", (), True),
        Attribute("sensor_tick", ATTR_FLOAT, "0.0", (), True),
        Attribute("lens_circle_falloff", ATTR_FLOAT, "5.0", (), True),
        Attribute("lens_circle_multiplier", ATTR_FLOAT, "0.0", (), True),
        Attribute("lens_k", ATTR_FLOAT, "-1.0", (), True),
        Attribute("lens_kcube", ATTR_FLOAT, "0.0", (), True),
        Attribute("lens_x_size", ATTR_FLOAT, "0.08", (), True),
        Attribute("lens_y_size", ATTR_FLOAT, "0.08", (), True),
        *extra,
    )


def _noise(names: tuple[str, ...]) -> tuple[Attribute, ...]:
    return tuple(Attribute(n, ATTR_FLOAT, "0.0", (), True) for n in names)


def _build() -> tuple[Blueprint, ...]:
    out: list[Blueprint] = []
    for vid, tags, model, label, base in _VEHICLES:
        out.append(_vehicle(len(out) + 1, vid, tags, model, label, base))
    out.append(Blueprint(len(out) + 1, "walker.pedestrian.0001", "0001,pedestrian,walker",
                         (_role(), Attribute("is_invincible", ATTR_BOOL, "true", (), True),
                          Attribute("speed", ATTR_FLOAT, "1.4", ("1.4", "2.8"), True),
                          Attribute("age", ATTR_STRING, "adult"),
                          Attribute("gender", ATTR_STRING, "male"),
                          Attribute("generation", ATTR_INT, "2")),
                         label=int(Label.PEDESTRIANS)))
    out.append(Blueprint(len(out) + 1, "sensor.camera.rgb", "rgb,camera,sensor",
                         _camera_attrs((Attribute("gamma", ATTR_FLOAT, "2.2", (), True),
                                        Attribute("enable_postprocess_effects", ATTR_BOOL,
                                                  "true", (), True)))))
    out.append(Blueprint(len(out) + 1, "sensor.camera.depth", "depth,camera,sensor",
                         _camera_attrs()))
    out.append(Blueprint(len(out) + 1, "sensor.camera.semantic_segmentation",
                         "semantic_segmentation,camera,sensor", _camera_attrs()))
    out.append(Blueprint(len(out) + 1, "sensor.other.collision", "collision,other,sensor",
                         (_role(),)))
    out.append(Blueprint(len(out) + 1, "sensor.other.lane_invasion",
                         "lane_invasion,other,sensor", (_role(),)))
    out.append(Blueprint(len(out) + 1, "sensor.other.gnss", "gnss,other,sensor",
                         (_role(), Attribute("sensor_tick", ATTR_FLOAT, "0.0", (), True),
                          *_noise(("noise_alt_bias", "noise_alt_stddev", "noise_lat_bias",
                                   "noise_lat_stddev", "noise_lon_bias",
                                   "noise_lon_stddev")),
                          Attribute("noise_seed", ATTR_INT, "0", (), True))))
    out.append(Blueprint(len(out) + 1, "sensor.other.imu", "imu,other,sensor",
                         (_role(), Attribute("sensor_tick", ATTR_FLOAT, "0.0", (), True),
                          *_noise(("noise_accel_stddev_x", "noise_accel_stddev_y",
                                   "noise_accel_stddev_z", "noise_gyro_bias_x",
                                   "noise_gyro_bias_y", "noise_gyro_bias_z",
                                   "noise_gyro_stddev_x", "noise_gyro_stddev_y",
                                   "noise_gyro_stddev_z")),
                          Attribute("noise_seed", ATTR_INT, "0", (), True))))
    return tuple(out)


BLUEPRINTS: tuple[Blueprint, ...] = _build()
BY_ID: dict[str, Blueprint] = {b.id: b for b in BLUEPRINTS}

#: actor type ids that are not spawnable blueprints but appear as actors
SPECTATOR_ID = "spectator"
TRAFFIC_LIGHT_ID = "traffic.traffic_light"
NPC_VEHICLE_ID = "vehicle.lincoln.mkz_2020"
NPC_WALKER_ID = "walker.pedestrian.0001"

CAMERA_TYPES = ("sensor.camera.rgb", "sensor.camera.depth",
                "sensor.camera.semantic_segmentation")


def blueprint(type_id: str) -> Blueprint:
    """The blueprint of ``type_id``; KeyError names what exists."""
    try:
        return BY_ID[type_id]
    except KeyError:
        raise KeyError(f"unknown blueprint {type_id!r}; this server offers: "
                       + ", ".join(BY_ID)) from None


def resolve_attributes(bp: Blueprint, given: dict[str, tuple[int, str]]
                       ) -> dict[str, tuple[int, str]]:
    """The attributes an actor of ``bp`` gets: each blueprint attribute's default,
    overridden by what the client set (unknown ones are kept as given)."""
    out = {a.id: (a.type, a.value) for a in bp.attributes}
    out.update(given)
    return out
