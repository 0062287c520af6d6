"""Make the golden recordings that tests/replay replays (run it again when a node's
behaviour changes on purpose, or use ``drivestack replay FILE --update``).

    python tests/replay/make_golden.py          # oracle: planning and control
    python tests/replay/make_golden.py --cnn    # CNN perception with the shipped weights

Each is a 5 s ``drivestack run`` of ``golden_scenario.yaml`` (town_grid, one 160x96
camera); the run directory's ``drive.mcap`` and ``scenario.yaml`` (planning's route,
which replay reads next to the recording) are copied to ``golden_oracle/`` or
``golden_cnn/``, then replayed once with ``--check`` as a sanity check.

The CNN golden also keeps the weights' checksum as ``weights.sha256`` (it holds what
those weights see), and its outputs are re-based with ``--update`` on the CPU with
one thread, as the test replays it: the closed-loop run used the node's default
threads (and maybe a GPU), whose float32 sums round differently. The test then
allows 1e-4 for other CPUs' kernels.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
SCENARIO = HERE / "golden_scenario.yaml"
KEPT = ("drive.mcap", "scenario.yaml")
WEIGHTS = REPO / "perception" / "weights" / "perception.pt"
#: How the CNN golden is replayed: on the CPU with one thread (a fixed summation
#: order), and a float32-sized tolerance for other CPUs' kernels.
CNN_PARAMS = ["--param", "perception.device=cpu", "--param", "perception.cpu_threads=1"]
CNN_TOLERANCE = ["--atol", "1e-4", "--rtol", "1e-4"]


def _replay(recording: Path, *args: str) -> int:
    return subprocess.run([sys.executable, "-m", "launch.cli", "replay", str(recording),
                           *args], cwd=REPO).returncode


def make(cnn: bool) -> Path:
    """Drive the scenario and keep its recording; returns the directory."""
    dest = HERE / ("golden_cnn" if cnn else "golden_oracle")
    if cnn and not WEIGHTS.is_file():
        raise SystemExit(f"no {WEIGHTS}: the CNN golden needs the shipped weights")
    with tempfile.TemporaryDirectory(prefix="golden-") as tmp:
        out = Path(tmp) / "run"
        cmd = [sys.executable, "-m", "launch.cli", "run", "--scenario", str(SCENARIO),
               "--out", str(out), "--no-progress", *([] if cnn else ["--oracle"])]
        subprocess.run(cmd, cwd=REPO, check=True)
        dest.mkdir(exist_ok=True)
        for name in KEPT:
            shutil.copyfile(out / name, dest / name)
    recording = dest / "drive.mcap"
    if cnn:
        shutil.copyfile(WEIGHTS.with_name(WEIGHTS.name + ".sha256"), dest / "weights.sha256")
        if _replay(recording, "--update", *CNN_PARAMS) != 0:
            raise SystemExit(f"could not re-base {recording} (see above)")
    if _replay(recording, "--check", *(CNN_PARAMS + CNN_TOLERANCE if cnn else [])) != 0:
        raise SystemExit(f"{recording} does not replay cleanly (see above)")
    size = recording.stat().st_size / 1e6
    print(f"wrote {recording} ({size:.1f} MB) and {dest / 'scenario.yaml'}")
    return dest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cnn", action="store_true",
                        help="CNN perception (needs perception/weights/perception.pt) "
                             "instead of the oracle")
    make(parser.parse_args().cnn)


if __name__ == "__main__":
    main()
