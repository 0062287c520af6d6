"""Oracle perception node: /sim/ground_truth in, the same /perception/objects and
/perception/traffic_light a perception node would publish, out (``--oracle`` runs).

It pairs /ego/state and /sim/ground_truth by frame and builds its own ``carla.Map``
from the latched /map/opendrive to find the light ahead of the ego; both algorithms
live in ``planning.oracle``. The two topics come over separate sockets, so a frame's
ground truth may be read before its ego state although the simulator sent it
second: each waits for the other (taking the order for granted once lost frame 0
and with it the whole run, the simulator waiting for a command that never came).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bus import Node
from bus.join import FrameJoin
from bus.messages import EgoState, GroundTruth, MapData, ObjectList, TrafficLightState
from planning.oracle import MAX_RANGE_M, oracle_objects, oracle_traffic_light


@dataclass
class OracleParams:
    max_range_m: float = MAX_RANGE_M
    #: subscribe to the simulator only once each of these own topics has that many
    #: subscribers (planning, the recorder): the simulator starts when the oracle
    #: subscribes, so frame 0's objects reach their readers. Empty: at once
    start_when_subscribed: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.max_range_m <= 0:
            raise ValueError("max_range_m must be > 0")


class OracleNode(Node):
    Params = OracleParams

    def __init__(self, name: str = "oracle", **kwargs) -> None:
        super().__init__(name, **kwargs)
        self.inputs = FrameJoin(("ego", "truth"))
        self.carla_map = None
        self.objects_pub = self.create_publisher(ObjectList, "/perception/objects")
        self.light_pub = self.create_publisher(TrafficLightState, "/perception/traffic_light")
        self.when_subscribed(self.params.start_when_subscribed, self._open_inputs)

    def _open_inputs(self) -> None:
        self.create_subscription(MapData, "/map/opendrive", self.on_map)
        self.create_subscription(EgoState, "/ego/state", self.on_ego)
        self.create_subscription(GroundTruth, "/sim/ground_truth", self.on_ground_truth)

    def on_map(self, msg: MapData) -> None:
        import carla

        self.carla_map = carla.Map(msg.name or "map", msg.opendrive)

    def on_ego(self, msg: EgoState) -> None:
        self._try(self.inputs.add("ego", msg))

    def on_ground_truth(self, msg: GroundTruth) -> None:
        self._try(self.inputs.add("truth", msg))

    def _try(self, frame: int) -> None:
        if not self.inputs.complete(frame):
            return
        slot = self.inputs.take(frame)
        ego, gt = slot["ego"], slot["truth"]
        self.objects_pub.publish(oracle_objects(gt, ego, self.params.max_range_m))
        self.light_pub.publish(oracle_traffic_light(gt, ego, self.carla_map))
