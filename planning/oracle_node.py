"""Oracle perception node: /sim/ground_truth in, the same /perception/objects and
/perception/traffic_light a perception node would publish, out (``--oracle`` runs).

It keeps the latest /ego/state and builds its own ``carla.Map`` from the latched
/map/opendrive to find the light ahead of the ego; both algorithms live in
``planning.oracle``.
"""

from __future__ import annotations

from dataclasses import dataclass

from bus import Node
from bus.messages import EgoState, GroundTruth, MapData, ObjectList, TrafficLightState
from planning.oracle import MAX_RANGE_M, oracle_objects, oracle_traffic_light


@dataclass
class OracleParams:
    max_range_m: float = MAX_RANGE_M

    def __post_init__(self) -> None:
        if self.max_range_m <= 0:
            raise ValueError("max_range_m must be > 0")


class OracleNode(Node):
    Params = OracleParams

    def __init__(self, name: str = "oracle", **kwargs) -> None:
        super().__init__(name, **kwargs)
        self.ego: EgoState | None = None
        self.carla_map = None
        self.objects_pub = self.create_publisher(ObjectList, "/perception/objects")
        self.light_pub = self.create_publisher(TrafficLightState, "/perception/traffic_light")
        self.create_subscription(MapData, "/map/opendrive", self.on_map)
        self.create_subscription(EgoState, "/ego/state", self.on_ego)
        self.create_subscription(GroundTruth, "/sim/ground_truth", self.on_ground_truth)

    def on_map(self, msg: MapData) -> None:
        import carla

        self.carla_map = carla.Map(msg.name or "map", msg.opendrive)

    def on_ego(self, msg: EgoState) -> None:
        self.ego = msg

    def on_ground_truth(self, gt: GroundTruth) -> None:
        if self.ego is None or self.ego.header.frame != gt.header.frame:
            return  # the sim publishes /ego/state before /sim/ground_truth each tick
        self.objects_pub.publish(oracle_objects(gt, self.ego, self.params.max_range_m))
        self.light_pub.publish(oracle_traffic_light(gt, self.ego, self.carla_map))
