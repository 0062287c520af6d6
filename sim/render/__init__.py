"""Camera renderer of the embedded simulator: pinhole cameras on the ego that see a
rasterised ground and 3D boxes, and give RGB, CARLA semantic labels, metric depth
and instance ids, pixel-aligned (see :mod:`sim.render.renderer`).

What is approximate, by design:

- the world is flat: the ground is the plane z = 0 (roads with elevation are drawn
  flattened), and ground depth is cached per camera height and tilt;
- everything above the ground is a box (vehicles are one or two, trees two);
- visibility is painter's order with separating planes: exact for boxes that do
  not intersect (a ray-cast reference agrees on > 99.9 % of interior pixels);
  intersecting boxes fall back to the order of their centres' depth;
- OpenCV's polygon fill covers pixels within about half a pixel of an edge, so
  silhouettes are up to a pixel wider than a centre-sampling rasteriser's, and a
  pixel on the seam between two faces of a box may take the other face's depth;
- the ground is sampled without mipmaps (distant lane lines alias), there are no
  shadows, reflections or lens effects, and a lit traffic lamp is only a colour.
"""

from sim.render.appearance import Appearance
from sim.render.camera import CameraSpec
from sim.render.ground import FAR_PLANE, GroundRaster, default_ground_colors
from sim.render.objects import LAMP_STATES, NEAR_PLANE, RenderObject
from sim.render.renderer import Frame, Renderer
from sim.render.scenery import SceneryConfig, place_scenery, traffic_light_objects

__all__ = [
    "FAR_PLANE",
    "LAMP_STATES",
    "NEAR_PLANE",
    "Appearance",
    "CameraSpec",
    "Frame",
    "GroundRaster",
    "RenderObject",
    "Renderer",
    "SceneryConfig",
    "default_ground_colors",
    "place_scenery",
    "traffic_light_objects",
]
