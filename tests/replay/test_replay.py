"""``drivestack replay`` on the golden recordings (tests/replay/make_golden.py): a clean
replay passes, a perturbed planner parameter fails naming /planning/trajectory,
--update then --check passes, bad input is one line and exit 2; and the
comparison's tolerance rules."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from bus.messages import (
    ControlCommand,
    DetectedObject,
    Header,
    ObjectList,
    Trajectory,
    VehicleControl,
)
from bus.recording import Recording, RecordingWriter
from launch.cli import main
from launch.replay import UPDATE_METADATA, Tolerance, field_diff

from .make_golden import CNN_PARAMS, CNN_TOLERANCE, WEIGHTS

HERE = Path(__file__).resolve().parent
ORACLE = HERE / "golden_oracle" / "drive.mcap"
CNN = HERE / "golden_cnn" / "drive.mcap"
PERTURB = ["--param", "planning.max_speed=3"]  # m/s; the golden drive reaches 9.5 m/s


def replay(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["replay", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_the_golden_oracle_recording_replays_clean(capsys) -> None:
    code, out, _ = replay(capsys, str(ORACLE), "--check")
    assert code == 0, out
    assert "re-ran planning, control" in out  # an oracle recording: no perception
    assert "/planning/trajectory: 100 compared, 0 mismatched" in out
    assert "/control/command: 100 compared, 0 mismatched" in out
    assert "x real time" in out


def test_a_perturbed_planner_parameter_is_a_regression(capsys) -> None:
    code, out, _ = replay(capsys, str(ORACLE), "--check", *PERTURB)
    assert code == 1
    line = next(x for x in out.splitlines() if x.strip().startswith("/planning/trajectory"))
    assert "100 mismatched" in line and "worst: frame" in line and "recorded" in line
    assert "REGRESSION: /control/command, /planning/trajectory" in out
    # without --check the same diff is a report, not a failure
    assert replay(capsys, str(ORACLE), *PERTURB)[0] == 0


def test_a_node_not_rerun_feeds_its_recorded_outputs(capsys) -> None:
    code, out, _ = replay(capsys, str(ORACLE), "--check", "--nodes", "control")
    assert code == 0 and "re-ran control;" in out
    assert "/control/command: 100 compared" in out and "/planning/trajectory" not in out
    # planning alone, perturbed: only its own output is compared
    code, out, _ = replay(capsys, str(ORACLE), "--check", "--nodes", "planning", *PERTURB)
    assert code == 1 and "/planning/trajectory" in out and "/control/command" not in out


def test_update_then_check_passes(capsys, tmp_path: Path) -> None:
    copy = tmp_path / "drive.mcap"
    shutil.copyfile(ORACLE, copy)
    shutil.copyfile(ORACLE.with_name("scenario.yaml"), tmp_path / "scenario.yaml")
    code, out, _ = replay(capsys, str(copy), "--update", *PERTURB)
    assert code == 0 and f"updated {copy}" in out
    assert replay(capsys, str(copy), "--check", *PERTURB)[0] == 0
    assert replay(capsys, str(copy), "--check")[0] == 1  # the original planner now differs
    assert sorted(p.name for p in tmp_path.iterdir()) == ["drive.mcap", "scenario.yaml"]
    with Recording.open(ORACLE) as old, Recording.open(copy) as new:
        assert new.topics() == old.topics()
        assert new.metadata()["run"] == old.metadata()["run"]
        assert "max_speed" in new.metadata()[UPDATE_METADATA]["params"]
        topics = ["/sensors/camera/front", "/ego/state", "/perception/objects"]
        assert [m.data for m in new.messages(topics)] == [m.data for m in old.messages(topics)]
        assert [m.data for m in new.messages(["/planning/trajectory"])] != \
            [m.data for m in old.messages(["/planning/trajectory"])]


def test_a_node_that_raises_fails_naming_the_message_fed(capsys, monkeypatch) -> None:
    from control.node import ControlNode

    def broken(self: ControlNode, frame: int) -> None:
        raise RuntimeError("controller bug")

    monkeypatch.setattr(ControlNode, "_try", broken)
    code, _, err = replay(capsys, str(ORACLE), "--check", "--nodes", "control")
    assert code == 1
    assert "RuntimeError: controller bug" in err  # the traceback, then one error line
    assert err.splitlines()[-1].startswith("error: ") and "of frame 0 was fed" in err


@pytest.mark.parametrize(("argv", "expected"), [
    (["{tmp}/absent.mcap"], "absent.mcap: no such file"),
    (["{tmp}/text.mcap"], "text.mcap: not an MCAP file"),
    ([str(ORACLE), "--nodes", "planning,steering"], "not 'steering'"),
    ([str(ORACLE), "--nodes", "perception"], "recorded with --oracle"),
    ([str(ORACLE), "--param", "planning.max_sped=3"], "max_sped"),
    ([str(ORACLE), "--param", "control.kp=1", "--nodes", "planning"], "control is not re-run"),
    ([str(ORACLE), "--atol", "-1"], "--atol and --rtol must be >= 0"),
])
def test_bad_input_is_one_line_and_exit_2(capsys, tmp_path: Path, argv: list[str],
                                          expected: str) -> None:
    (tmp_path / "text.mcap").write_text("not a recording\n")
    code, out, err = replay(capsys, *(a.format(tmp=tmp_path) for a in argv), "--check")
    assert code == 2, out + err
    assert err.startswith("error: ") and err.count("\n") == 1 and expected in err, err


@pytest.mark.skipif(not (CNN.is_file() and WEIGHTS.is_file()),
                    reason="no golden CNN recording or no shipped weights")
def test_the_golden_cnn_recording_replays_clean(capsys) -> None:
    made_with = CNN.with_name("weights.sha256").read_text().split()[0]
    shipped = WEIGHTS.with_name(WEIGHTS.name + ".sha256").read_text().split()[0]
    assert shipped == made_with, ("the shipped perception weights changed since the CNN "
                                  "golden was made: python tests/replay/make_golden.py --cnn")
    code, out, _ = replay(capsys, str(CNN), "--check", *CNN_PARAMS, *CNN_TOLERANCE)
    assert code == 0, out
    assert "re-ran perception, planning, control" in out
    assert "/perception/objects: 100 compared, 0 mismatched" in out


# ------------------------------------------------------------------- comparison
def _trajectory(speeds: list[float], stamp: float = 1.0) -> Trajectory:
    n = len(speeds)
    return Trajectory(header=Header(20, stamp), poses=np.zeros((n, 3)),
                      speeds=np.array(speeds), times=np.arange(1.0, n + 1.0))


def test_floats_compare_within_atol_plus_rtol() -> None:
    tol = Tolerance(atol=1e-3, rtol=1e-2)
    assert field_diff(_trajectory([5.0, 6.0]), _trajectory([5.0, 6.0]), tol) is None
    near = field_diff(_trajectory([5.0, 6.0]), _trajectory([5.0, 6.05]), tol)
    assert near is not None and not near.mismatch and near.path == "speeds[1]"
    far = field_diff(_trajectory([5.0, 6.0]), _trajectory([5.0, 6.1]), tol, frame=20)
    assert far is not None and far.mismatch and (far.frame, far.path) == (20, "speeds[1]")
    assert (far.recorded, far.replayed) == ("6", "6.1")
    assert field_diff(_trajectory([math.nan]), _trajectory([math.nan]), tol) is None
    assert field_diff(_trajectory([1.0]), _trajectory([1.0], stamp=1.05), tol).path \
        == "header.stamp"  # sim time is compared


def test_integers_strings_and_shapes_compare_exactly() -> None:
    tol = Tolerance(atol=1.0, rtol=1.0)
    shape = field_diff(_trajectory([1.0, 2.0]), _trajectory([1.0]), tol)
    assert shape is not None and shape.mismatch and shape.path == "poses"
    a = ObjectList(objects=[DetectedObject(track_id=3, label="vehicle")])
    b = ObjectList(objects=[DetectedObject(track_id=4, label="vehicle")])
    assert field_diff(a, b, tol).path == "objects[0].track_id"
    c = ObjectList(objects=[DetectedObject(track_id=3, label="pedestrian")])
    assert field_diff(a, c, tol).path == "objects[0].label"
    assert field_diff(a, ObjectList(), tol).path == "len(objects)"
    gear = field_diff(ControlCommand(), ControlCommand(control=VehicleControl(gear=1)), tol)
    assert gear is not None and gear.path == "control.gear" and math.isinf(gear.excess)


def test_a_recording_without_camera_images_replays_planning_and_control(
        capsys, tmp_path: Path) -> None:
    """A run recorded with --no-record-cameras: by default replay re-runs planning and
    control (there is nothing for perception to see), and asking for perception is
    one clear line."""
    copy = tmp_path / "drive.mcap"
    with Recording.open(CNN) as rec, RecordingWriter(copy) as writer:
        for m in rec.messages([t for t in rec.topics() if not t.startswith("/sensors/")]):
            writer.write(m.topic, m.data, m.log_time_ns, m.publish_time_ns, m.sequence)
    shutil.copyfile(CNN.with_name("scenario.yaml"), tmp_path / "scenario.yaml")
    code, out, _ = replay(capsys, str(copy), "--check", *CNN_TOLERANCE)
    assert code == 0 and "re-ran planning, control;" in out, out
    code, _, err = replay(capsys, str(copy), "--check", "--nodes", "perception")
    assert code == 2 and "without camera images (--no-record-cameras)" in err
