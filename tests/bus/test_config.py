"""Config loading: typed dataclasses from dicts and YAML, with errors that say where."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pytest

from bus.config import ConfigError, load, load_yaml


@dataclass
class Pid:
    kp: float
    ki: float = 0.0
    kd: float = 0.0


@dataclass
class Camera:
    name: str = "front"
    width: int = 640
    height: int = 480
    fov: float = 90.0

    def __post_init__(self) -> None:
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"camera size must be positive, got {self.width}x{self.height}")


@dataclass
class Vehicle:
    mode: Literal["oracle", "perception"] = "perception"
    gear: Literal[1, 2, 3] = 1
    cameras: list[Camera] = field(default_factory=lambda: [Camera()])
    waypoints: list[float] = field(default_factory=list)
    tags: tuple[str, ...] = ()
    gains: dict[str, float] = field(default_factory=dict)
    speed: Pid = field(default_factory=lambda: Pid(kp=1.0))
    limit: int | float = 10
    seed: int | None = None
    label: str | None = None
    enabled: bool = True
    extra: Any = None
    lateral: Pid | None = None


@dataclass
class Required:
    name: str
    count: int


@dataclass
class WithHidden:
    a: int = 1
    b: int = field(default=2, init=False)


@dataclass
class WithOptional:
    pid: Pid | None = None


@dataclass
class WithOptionalDefaults:
    camera: Camera | None = field(default_factory=Camera)


@dataclass
class Outer:
    inner: Required
    vehicle: Vehicle = field(default_factory=Vehicle)


def _err(cls: type, data: Any, source: str = "config") -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load(cls, data, source)
    return info.value


# -------------------------------------------------------------------------- success
def test_defaults_from_empty_or_none() -> None:
    assert load(Vehicle, {}) == Vehicle()
    assert load(Vehicle, None) == Vehicle()


def test_full_nested_load() -> None:
    data = {
        "mode": "oracle",
        "gear": 3,
        "cameras": [{"name": "left", "width": 800}, {}],
        "waypoints": [1, 2.5, -3],
        "tags": ["a", "b"],
        "gains": {"x": 1, "y": 0.5},
        "speed": {"kp": 2, "ki": 0.1},
        "limit": 12.5,
        "seed": 7,
        "label": None,
        "enabled": False,
        "extra": {"anything": [1, "two"]},
        "lateral": {"kp": 0.3},
    }
    v = load(Vehicle, data)
    assert v.mode == "oracle" and v.gear == 3
    assert v.cameras == [Camera("left", 800, 480, 90.0), Camera()]
    assert v.waypoints == [1.0, 2.5, -3.0]
    assert all(type(w) is float for w in v.waypoints)
    assert v.tags == ("a", "b") and isinstance(v.tags, tuple)
    assert v.gains == {"x": 1.0, "y": 0.5} and type(v.gains["x"]) is float
    assert v.speed == Pid(2.0, 0.1, 0.0) and type(v.speed.kp) is float
    assert v.limit == 12.5
    assert v.seed == 7 and v.label is None and v.enabled is False
    assert v.extra == {"anything": [1, "two"]}
    assert v.lateral == Pid(0.3)


def test_union_tries_members_in_order() -> None:
    assert load(Vehicle, {"limit": 3}).limit == 3
    assert type(load(Vehicle, {"limit": 3}).limit) is int
    assert type(load(Vehicle, {"limit": 3.0}).limit) is float
    assert load(Vehicle, {"seed": None}).seed is None
    assert load(Vehicle, {"label": "x"}).label == "x"


def test_int_accepted_for_float() -> None:
    assert load(Pid, {"kp": 1}).kp == 1.0
    assert type(load(Pid, {"kp": 1}).kp) is float


# --------------------------------------------------------------------------- errors
def test_missing_required_key() -> None:
    e = _err(Required, {"name": "x"}, "node.yaml")
    assert str(e) == "node.yaml: count: expected a value (an integer)"
    assert (e.source, e.key) == ("node.yaml", "count")
    e = _err(Outer, {"inner": {"count": 1}}, "run.yaml")
    assert str(e).startswith("run.yaml: inner.name: expected a value (a string)")
    e = _err(Outer, {}, "run.yaml")
    assert e.key == "inner"
    e = _err(Pid, None)
    assert e.key == "kp"


def test_unknown_key_names_source_and_key() -> None:
    e = _err(Pid, {"kp": 1.0, "kx": 2.0}, "launch/files/demo.yaml")
    assert str(e).startswith("launch/files/demo.yaml: kx: expected one of the keys kp, ki, kd")
    assert e.key == "kx" and e.source == "launch/files/demo.yaml"
    e = _err(Vehicle, {"speed": {"kp": 1.0, "kpp": 1.0}}, "v.yaml")
    assert e.key == "speed.kpp"
    assert "v.yaml: speed.kpp" in str(e)
    e = _err(Vehicle, {"cameras": [{}, {"fov": 90, "zoom": 2}]}, "v.yaml")
    assert e.key == "cameras[1].zoom"


def test_init_false_field_is_unknown() -> None:
    assert load(WithHidden, {"a": 5}).a == 5
    assert _err(WithHidden, {"b": 3}).key == "b"


def test_non_str_keys() -> None:
    e = _err(Pid, {"kp": 1.0, 3: 1})
    assert e.key == "3"


@pytest.mark.parametrize(
    ("cls", "data", "key", "expected"),
    [
        (Camera, {"width": True}, "width", "an integer"),
        (Camera, {"width": 640.0}, "width", "an integer"),
        (Camera, {"width": "640"}, "width", "an integer"),
        (Camera, {"fov": True}, "fov", "a number"),
        (Camera, {"fov": "90"}, "fov", "a number"),
        (Camera, {"name": 5}, "name", "a string"),
        (Vehicle, {"enabled": 1}, "enabled", "true or false"),
        (Vehicle, {"enabled": "yes"}, "enabled", "true or false"),
        (Vehicle, {"limit": True}, "limit", "an integer or a number"),
        (Vehicle, {"limit": "fast"}, "limit", "an integer or a number"),
        (Vehicle, {"seed": 1.5}, "seed", "an integer or null"),
        (Vehicle, {"seed": False}, "seed", "an integer or null"),
        (Vehicle, {"mode": "auto"}, "mode", "one of 'oracle', 'perception'"),
        (Vehicle, {"gear": 4}, "gear", "one of 1, 2, 3"),
        (Vehicle, {"waypoints": 1.0}, "waypoints", "a list of a number"),
        (Vehicle, {"waypoints": [1.0, "x"]}, "waypoints[1]", "a number"),
        (Vehicle, {"waypoints": [1.0, True]}, "waypoints[1]", "a number"),
        (Vehicle, {"tags": "abc"}, "tags", "a list of a string"),
        (Vehicle, {"gains": [1, 2]}, "gains", "a mapping"),
        (Vehicle, {"gains": {"x": "y"}}, "gains.x", "a number"),
        (Vehicle, {"cameras": {"name": "front"}}, "cameras", "a list of"),
        (Vehicle, {"cameras": ["front"]}, "cameras[0]", "a mapping with keys name, width"),
        (Vehicle, {"speed": 1.0}, "speed", "a mapping with keys kp, ki, kd"),
        (Vehicle, {"speed": {"kp": True}}, "speed.kp", "a number"),
        (Vehicle, {"lateral": 3}, "lateral", "a mapping with keys kp, ki, kd or null"),
    ],
)
def test_wrong_types(cls: type, data: dict, key: str, expected: str) -> None:
    e = _err(cls, data, "cfg.yaml")
    assert e.key == key
    assert e.source == "cfg.yaml"
    assert str(e).startswith(f"cfg.yaml: {key}: expected {expected}")
    assert "got" in str(e)


def test_top_level_not_a_mapping() -> None:
    e = _err(Pid, [1, 2], "x.yaml")
    assert str(e).startswith("x.yaml: expected a mapping with keys kp, ki, kd, got [1, 2]")
    assert e.key == ""


def test_long_values_are_shortened() -> None:
    e = _err(Camera, {"name": ["x" * 200]})
    assert str(e).endswith("...")
    assert len(str(e)) < 150


def test_post_init_value_error_is_reported() -> None:
    e = _err(Camera, {"width": 0}, "cam.yaml")
    assert str(e) == "cam.yaml: expected camera size must be positive, got 0x480"
    e = _err(Vehicle, {"cameras": [{}, {"height": -1}]}, "v.yaml")
    assert e.key == "cameras[1]"
    assert str(e).startswith("v.yaml: cameras[1]: expected camera size must be positive")


def test_config_error_is_a_value_error() -> None:
    assert issubclass(ConfigError, ValueError)
    e = ConfigError("src", "", "x")
    assert str(e) == "src: expected x"
    e = ConfigError("src", "k", "x", 0)
    assert str(e) == "src: k: expected x, got 0"


def test_optional_dataclass_null_without_defaults_is_none() -> None:
    """Pid has a required key, so load(Pid, None) fails and the union falls to None."""
    assert load(WithOptional, {"pid": None}).pid is None
    assert load(WithOptional, {"pid": {"kp": 2}}).pid == Pid(2.0)


def test_optional_dataclass_null_is_none() -> None:
    assert load(WithOptionalDefaults, {"camera": None}).camera is None


def test_literal_refuses_bool_for_int() -> None:
    with pytest.raises(ConfigError):
        load(Vehicle, {"gear": True})


def test_huge_int_for_float_is_config_error() -> None:
    with pytest.raises(ConfigError):
        load(Pid, {"kp": 10**400})


# ---------------------------------------------------------------------------- YAML
def test_load_yaml(tmp_path: Path) -> None:
    p = tmp_path / "vehicle.yaml"
    p.write_text(
        "mode: oracle\n"
        "cameras:\n"
        "  - {name: left, width: 320, height: 240}\n"
        "speed:\n"
        "  kp: 0.5\n"
        "  kd: 0.001\n"
        "seed: ~\n"
    )
    v = load_yaml(Vehicle, p)
    assert v.mode == "oracle"
    assert v.cameras == [Camera("left", 320, 240)]
    assert v.speed == Pid(0.5, 0.0, 0.001)
    assert v.seed is None
    assert load_yaml(Vehicle, str(p)) == v


def test_load_yaml_empty_file_is_defaults(tmp_path: Path) -> None:
    p = tmp_path / "empty.yaml"
    p.write_text("# nothing\n")
    assert load_yaml(Vehicle, p) == Vehicle()


def test_load_yaml_errors_name_the_file(tmp_path: Path) -> None:
    p = tmp_path / "bad_key.yaml"
    p.write_text("speed:\n  kp: 1\n  kq: 2\n")
    with pytest.raises(ConfigError) as info:
        load_yaml(Vehicle, p)
    assert str(info.value).startswith(f"{p}: speed.kq: expected one of the keys")

    p = tmp_path / "yes.yaml"
    p.write_text("width: yes\n")  # YAML 1.1 bool, not an int
    with pytest.raises(ConfigError, match=r"width: expected an integer, got True"):
        load_yaml(Camera, p)

    p = tmp_path / "list.yaml"
    p.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_yaml(Camera, p)


@pytest.mark.parametrize(
    "text", ["a: [1, 2\n", "a: b: c\n", "key: 'unclosed\n", "\tx: 1\n", "{a: 1\n", "? [a]\n: 1\n"]
)
def test_load_yaml_malformed(tmp_path: Path, text: str) -> None:
    p = tmp_path / "broken.yaml"
    p.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_yaml(Vehicle, p)
    msg = str(info.value)
    assert msg.startswith(f"{p}: expected valid YAML (")
    assert "\n" not in msg
    assert info.value.source == str(p) and info.value.key == ""


def test_load_yaml_missing_file(tmp_path: Path) -> None:
    p = tmp_path / "nope" / "missing.yaml"
    with pytest.raises(ConfigError) as info:
        load_yaml(Vehicle, p)
    assert str(info.value) == f"{p}: expected a readable YAML file, got 'No such file or directory'"
    assert info.value.source == str(p)


def test_load_yaml_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="a readable YAML file"):
        load_yaml(Vehicle, tmp_path)


def test_load_yaml_not_utf8(tmp_path: Path) -> None:
    p = tmp_path / "binary.yaml"
    p.write_bytes(b"name: \xff\xfe\x00\x81\n")
    with pytest.raises(ConfigError):
        load_yaml(Camera, p)
