"""From pixels to objects: segmentation + metric depth + camera -> ego-frame objects.

:func:`detect_objects` takes a map of training class ids (:mod:`perception.classes`),
a depth map (metres along the camera z axis), the intrinsics of *that* map (use
:func:`scale_intrinsics` when the network runs on a resized image) and the camera
mount (its pose in the ego frame). For each obstacle class (vehicle, pedestrian):

1. the class pixels with a valid depth (``min_depth <= d <= max_range_m``) and a
   depth consistent with their image blob's (``blob_depth_factor``: predicted depth
   bleeds across outlines), each column of a vehicle blob at its median depth
   (``column_median``: its faces are vertical), a pedestrian blob at the distance
   where it meets the ground fused with its depth (``ground_contact``), are
   unprojected to the camera frame and moved to the ego frame
   (``bus.frames.unproject`` then ``bus.frames.camera_to_ego``);
2. the points are binned on a grid and the occupied cells grouped by
   8-connectivity (``cv2.connectedComponents``) after a dilation that links cells
   up to ``link_m`` apart. Pedestrians: a grid in the ego x-y plane (``cell_m``;
   linked farther along x: grazing surfaces leave gaps along the viewing ray),
   a cluster split where its image blobs lie apart (``split_blobs_m``: walkers
   side by side, whom the grid's link joins, are apart in the image).
   Vehicles (``column_clusters``): a grid of the camera's depth (``cell_m``) by
   image column, linked ``link_m[0]`` in depth and to the next column; the
   depth's error lies along the ray, and cars side by side are apart in columns
   even where their points are near in x-y; a small cluster just beyond a
   bigger one's columns and depth is the side of that car (``sliver_max_px``);
   a cluster is cut where its depth by column could not be one convex object's
   (``convex_split_m``) and where its top by column rises twice, to two cabins
   over a gap lower than both (``cabin_split_m``: cars nose to tail). Two
   objects at different depths
   behind one another fall in different cells, so depth discontinuities split
   clusters by construction (objects closer than ``link_m`` merge; a vehicle seen
   only over a nearer one's roof has no column of its own and joins it);
3. each cluster becomes a :class:`Detection`. The camera sees only the near faces
   of an object, so its box is fitted to them and grown away from the camera:
   for a vehicle, the heading of the rectangle that best fits its bird's-eye points
   (L-shape fitting, :func:`_fit_heading`: an L when a corner is in view, an I
   when one face is); a visible face longer than ``side_min_m`` is a side (the
   length runs along it), a shorter one the front or back (the length runs along
   the other axis). Along each axis the observed extent (2nd-98th percentile) is
   grown to at least the class's prior size (:data:`PRIOR_SIZE`) away from the
   camera; when the cluster touches the image's left or right edge, its length
   is grown across that edge's ray, out of the view (``front_max_m``), along
   the face the edge cuts (``edge_face``). The box with the length along the
   other axis is taken instead when the columns its corners project to match
   the cluster's own columns clearly better (``silhouette_px``: the extents
   come from depth, whose error lies along the ray; the columns are exact).
   Pedestrians get a
   square box grown along the viewing ray. Height: the object stands on the
   ground (ego z = 0), height = the highest point, centre z = height / 2. The
   weights' calibration (``range_scale``) then moves the centre along the
   camera's ray.

Yaw (degrees, relative to ego x, positive to the right as in CARLA) is the box's
length axis, folded to (-90, 90]: a box does not tell front from back. Pedestrians
get yaw 0. The tracker refines yaw from the velocity of moving objects.

Pixel counts (``min_pixels``, ``pixel_scale``) are given for a 320 x 160 map and
scale with the map's area, so a network's 1/2-resolution output and a full-size
label image ask the same of an object. Confidence: ``1 - exp(-pixels /
pixel_scale)`` times the mean class probability of the cluster's pixels when
``probs`` is given.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import cv2
import numpy as np

from bus.frames import camera_to_ego, ego_to_camera, project, unproject
from bus.messages import CameraIntrinsics, DetectedObject, Transform, Vector3
from perception.classes import TrainClass
from perception.numeric import median
from perception.refine import GuidedScore
from sim.geometry import box_corners

#: Class id -> DetectedObject label, for the obstacle classes clustered.
OBSTACLE_CLASSES: dict[int, str] = {int(TrainClass.VEHICLE): "vehicle",
                                    int(TrainClass.PEDESTRIAN): "pedestrian"}
#: class id -> whether it is an obstacle class, for a lookup per pixel
_IS_OBSTACLE = np.isin(np.arange(256), list(OBSTACLE_CLASSES))
#: Prior full size (length, width, height) in metres per label: the least box a
#: cluster is given (only the near faces are seen).
PRIOR_SIZE: dict[str, tuple[float, float, float]] = {"vehicle": (4.6, 1.9, 1.5),
                                                     "pedestrian": (0.5, 0.5, 1.7)}


REFERENCE_MAP_WIDTH = 320  # pixel counts and lengths in ObjectsConfig are for a
REFERENCE_MAP_AREA = REFERENCE_MAP_WIDTH * 160  # map of this size

#: A range calibration: knots (distance from the camera in m, factor), distances
#: increasing; between knots the factor is interpolated linearly, beyond the ends
#: it is the end's (:func:`range_factor`).
RangeCurve = tuple[tuple[float, float], ...]


def range_factor(curve: RangeCurve, distance: float) -> float:
    """The factor of ``curve`` at ``distance`` (m)."""
    return float(np.interp(distance, [k[0] for k in curve], [k[1] for k in curve]))


@dataclass(frozen=True)
class ObjectsConfig:
    max_range_m: float = 80.0
    min_depth_m: float = 0.5
    cell_m: dict[str, float] = field(default_factory=lambda: {"vehicle": 0.6,
                                                              "pedestrian": 0.4})
    #: fewest pixels a cluster needs (at 320 x 160; scaled with the map's area). A
    #: whole car 40 m away covers about 45 (its back, 1.9 x 1.5 m). Of the network's
    #: vehicle clusters within 30 m of 20-39 (5-9 in its 160 x 80 map), none of 26 was
    #: a car (tuning set 9, held out built-in 6, Town01/02 11). Vehicles within 30 m,
    #: precision 0.844 -> 0.871, 0.880 -> 0.900 and 0.583 -> 0.605 (recall unchanged)
    #: with 40 than 20
    min_pixels: dict[str, int] = field(default_factory=lambda: {"vehicle": 40,
                                                                "pedestrian": 10})
    pixel_scale: float = 40.0
    min_confidence: float = 0.3  # weaker clusters are not reported
    #: a vehicle's visible face longer than this (m) is a side (the car's length);
    #: a shorter one is its front or back
    side_min_m: float = 2.6
    #: m: of a car cut off by the image's left or right edge (so a side may be only
    #: partly in view), a visible face longer than this, more than a car is wide,
    #: is a side. Such a car's length is grown across the edge's ray, out of the
    #: view (it was grown towards the camera, right for a car alongside, whose
    #: unseen part is nearer, but not for one crossing ahead near the edge, whose
    #: side runs on out of view beyond what is seen). With the true segmentation
    #: and depth, vehicles within 30 m, recall / precision (held out): Town01/02
    #: 0.86 / 0.88 -> 0.90 / 0.92, seed 1002 0.89 / 0.90 -> 0.91 / 0.92; with the
    #: shipped weights 0.50 / 0.51 -> 0.51 / 0.52 and 0.56 / 0.57 (no change)
    front_max_m: float = 2.1
    #: of a vehicle cut off by the image's left or right edge whose visible faces
    #: are no longer than ``front_max_m``, the length runs along the face the edge
    #: cuts (it runs on out of view): where the edge column's points lie, a face
    #: along either axis of the fitted rectangle could pass; the one along which
    #: the points run on (within ``edge_face_m`` of its line) is it. Before, the
    #: axis nearer the viewing ray took the length, a coin toss for a car crossing
    #: 45 degrees aside, at the edge of a 90-degree view: such a car 27 m away,
    #: its front and under a metre of its side in view, was placed 2 m near.
    #: Vehicles within 30 m, recall / precision, tuning set (seed 2000): 0.875 /
    #: 0.874 -> 0.885 / 0.885 (true segmentation and depth 0.957 / 0.964 -> 0.968
    #: / 0.975); held out: seed 1002 0.749 / 0.799 -> 0.754 / 0.805 (0.897 / 0.935
    #: -> 0.908 / 0.947), Town01/02 0.679 / 0.628 -> 0.687 / 0.635 (0.898 / 0.930
    #: -> 0.925 / 0.957), seed 1000 unchanged (0.967 / 0.985 both)
    edge_face: bool = True
    edge_face_m: float = 0.5
    #: m: a vehicle box fitted wider than this (a bus is 2.55 m) covers several
    #: vehicles in a row; it is fitted again along their principal axis (Town01
    #: route 4: two parked cars in the next lane became a 9.7 x 7.9 m box at 45
    #: degrees, which reached into the ego's lane and blocked it for 180 s)
    max_width_m: float = 3.0
    #: pixels (at 320 x 160; scaled with the map's width): a vehicle box whose
    #: length runs along the other axis of its fitted rectangle is taken instead
    #: when its outline in the image (the columns its corners project to) matches
    #: the cluster's own by this much more (:func:`_silhouette_error`). The length
    #: axis is decided from the points' extents along the rectangle, which the
    #: depth's error along the ray stretches (a car's back 20 m away seen 3 m
    #: deep); the columns the cluster spans are exact, and a car 4.6 m long seen
    #: end-on spans far fewer of them than one seen side-on. Vehicles within 30 m,
    #: recall / precision: tuning set B 0.787 / 0.780 -> 0.797 / 0.791, set A 0.867 /
    #: 0.845 -> 0.868 / 0.848; held out seed 1000 0.918 / 0.919 -> 0.926 / 0.926,
    #: seed 1002 0.824 / 0.832 -> 0.826 / 0.834, Town01/02 0.728 / 0.693 -> 0.743 /
    #: 0.708, seed 2000 0.914 / 0.907 (unchanged). None: off
    silhouette_px: float | None = 8.0
    #: a cluster's outline is its own on a side (left or right) unless the
    #: image's edge or anything nearer (any class, depth under this share of the
    #: cluster's median: a walker, another car, a building's corner at a
    #: junction) lies within ``silhouette_gap_px`` columns beyond it in the rows
    #: of its last column there: behind an occluder the car may run on, and only
    #: a box that stops short of that side is wrong. Counting other cars only
    #: (0.9), crossing cars half behind a corner were turned along the road:
    #: with the true segmentation and depth, set B 0.901 / 0.929 without the
    #: check, 0.891 / 0.919 with it, 0.914 / 0.943 now (set A 0.945 / 0.965 ->
    #: 0.955 / 0.975); with the network's, the same as counting cars only
    silhouette_nearer: float = 0.8
    silhouette_gap_px: int = 2
    #: L-shape fit (:func:`_fit_heading`): heading step (deg), the least distance
    #: (m) in the closeness score, and the most points scored (evenly subsampled)
    fit_step_deg: float = 3.0
    fit_d0_m: float = 0.05
    fit_max_points: int = 300
    #: cells closer than this (m; along ego x, along ego y) join one cluster: surfaces
    #: seen at a grazing angle (roofs, bonnets) leave gaps along the viewing ray
    link_m: tuple[float, float] = (1.2, 0.6)
    #: labels clustered by depth and image column instead of on the ego x-y grid
    #: (step 2 of the module doc). In x-y, whose lateral link bridges gaps of
    #: 1.2-1.8 m (a cell of slack either side), two cars side by side in adjacent
    #: lanes (1.6 m apart) became one box between them that matched neither. With
    #: the true segmentation and depth, vehicles within 30 m, recall / precision
    #: (held out): built-in maps 0.91 / 0.94 -> 0.98 / 0.97, seed 1002 0.83 / 0.88
    #: -> 0.89 / 0.90, Town01/02 0.87 / 0.89 -> 0.86 / 0.88; with the shipped
    #: weights 0.58 / 0.62 -> 0.62 / 0.61, 0.53 / 0.53 -> 0.56 / 0.54 and 0.44 /
    #: 0.46 -> 0.49 / 0.50. Pedestrians stay on the x-y grid: by column, seed
    #: 1002's recall within 20 m fell 0.900 -> 0.891 (Town01/02 0.82 -> 0.85)
    column_clusters: tuple[str, ...] = ("vehicle",)
    #: pixels (at 320 x 160): a cluster of a label in ``column_clusters`` this small,
    #: in or next to the columns of a bigger one and farther than it by less than
    #: the label's prior length plus ``link_m[0]``, is a part of it: the side of a
    #: car seen at a grazing angle is a column or two whose depth runs on several
    #: metres past its back (a car 21 m ahead, half a lane aside: its back at 17.2
    #: m, the next column 21.3 m), and alone it became a second car behind the
    #: first. Vehicles within 30 m, recall / precision (held out, the shipped
    #: weights): built-in 0.62 / 0.61 -> 0.64 / 0.65, seed 1002 0.56 / 0.54 ->
    #: 0.56 / 0.57, Town01/02 0.49 / 0.50 -> 0.50 / 0.51
    sliver_max_px: int = 40
    #: a vehicle cluster is cut at a column farther than one convex object's
    #: visible faces allow, by more than ``convex_split_m`` and
    #: ``convex_split_rel`` of the depth there, at least ``convex_min_depth_m``
    #: away, into parts of at least ``convex_min_px`` pixels (at 320 x 160;
    #: :func:`_split_not_convex`): two cars side by side in the image at different
    #: depths, the network's depth ramping between them (and the background in
    #: the gap), were chained into one box between them that matched neither.
    #: Nearer, a car's own depth profile is too ragged (its windows, the far side
    #: seen through them): cut there too, near cars fell apart. Chosen on the
    #: tuning set (seed 2000; 2.5 m, 0.2, 15 m, 80 px), vehicles within 30 m,
    #: recall / precision 0.885 / 0.885 -> 0.910 / 0.897 (from 0 m: 0.907 /
    #: 0.884); held out, seed 1002 0.754 / 0.805 -> 0.758 / 0.803 (0.773 / 0.797
    #: from 0 m), seed 1000 0.892 / 0.917 -> 0.900 / 0.917 (0.900 / 0.904),
    #: Town01/02 unchanged, 0.687 / 0.635 (0.694 / 0.614). None: not cut
    convex_split_m: float | None = 2.5
    convex_split_rel: float = 0.2
    convex_min_depth_m: float = 15.0
    convex_min_px: int = 80
    #: m: a vehicle cluster whose top by image column (its points' highest, ego z)
    #: reaches at least ``cabin_min_m`` on both sides of a column and dips there by
    #: more than this below the lower of the two is cut at that column
    #: (:func:`_split_two_cabins`), into parts of at least ``cabin_min_px`` pixels
    #: (at 320 x 160), the dip at least ``cabin_edge_cols`` columns in from either
    #: end. One car's top rises once, to its cabin (a truck's steps up from its cab
    #: to its cargo box); two cars nose to tail, crossing ahead or queued in the
    #: next lane, rise twice with the bonnet, boot and gap between, and were one
    #: box between them, 8-10 m long, that matched neither (seed 1002, a junction's
    #: queue). Chosen on the tuning set (seed 2000; 1.2 m, 0.45 m, 40 px, 2; a dip of
    #: 0.35 m or a cabin of 1.0 m split more single cars), with ``convex_split_m``
    #: run on a lone cluster too, vehicles within 30 m, recall / precision 0.914 /
    #: 0.898 unchanged (true segmentation and depth 0.975 / 0.978 -> 0.982 /
    #: 0.982); held out: seed 1000 0.900 / 0.917 -> 0.914 / 0.925, seed 1002
    #: 0.764 / 0.804 -> 0.775 / 0.809 (0.908 / 0.947 -> 0.934 / 0.961), Town01/02
    #: 0.687 / 0.635 -> 0.691 / 0.636 (0.925 / 0.957 -> 0.928 / 0.957). None: not cut
    cabin_split_m: float | None = 0.45
    cabin_min_m: float = 1.2
    cabin_min_px: int = 40
    cabin_edge_cols: int = 2
    #: points above this height (m, ego z) are ignored (sky-depth bleed, bridges)
    max_height_m: float = 4.5
    #: per label, a cluster whose points rise less than this (m) above the ground
    #: is a patch of ground (grass, a painted area, a kerb) the network took for an
    #: object, or the foot of a pole taken for a pedestrian. An object's top is seen
    #: whatever hides the rest (a car's roof, a walker's head), and no vehicle is
    #: lower than 0.8 m nor a walker than 0.9 m (CARLA's lowest cars are about
    #: 1.1 m, its child walkers about 1.1 m tall). Of the network's detections lower
    #: than that, on the tuning set and the three held-out sets: vehicles within 30
    #: m, 3 of 30 were a car (precision 0.871 -> 0.874, 0.900 -> 0.917, 0.785 ->
    #: 0.799, 0.605 -> 0.628; recall the same but 0.754 -> 0.749 on seed 1002);
    #: pedestrians within 20 m, none of 8 was a walker (precision 0.821 -> 0.889,
    #: 0.800 -> 0.821, 0.852 -> 0.874, 0.883 -> 0.889; recall the same). Where
    #: leaderboard route 4 starts (Town01), a 0.72 m high "car" on the far corner
    #: and the foot of the light's pole (0.86 m) held the car on a green for 10 s
    min_height_m: dict[str, float] = field(default_factory=lambda: {"vehicle": 0.8,
                                                                    "pedestrian": 0.9})
    #: per label, a cluster clear of the image's left and right edges with fewer
    #: points than this share of the pixels that the label's prior front (width x
    #: height, :data:`PRIOR_SIZE`) covers at the cluster's median depth z (fx fy w
    #: h / z^2) is no object: many of the network's false cars on Town01/02 are
    #: 10-20 pixels of its 160 x 80 map at 12-28 m, where a car's back alone
    #: covers 25-130. Chosen on the tuning set
    #: (seed 2000; 0.2 and 0.3 tie), vehicles within 30 m, recall / precision
    #: 0.914 / 0.898 -> 0.914 / 0.901 (0.4: 0.914 / 0.907, but on seed 1000 it
    #: dropped a car 26 m ahead in the ego lane that the network covered with 10
    #: pixels); held out: seed 1000 0.914 / 0.925 -> 0.914 / 0.929, seed 1002 0.775
    #: / 0.809 -> 0.775 / 0.814, Town01/02 0.691 / 0.636 -> 0.691 / 0.667; of the
    #: vehicles found before on the four sets none was lost (with the true
    #: segmentation and depth one car of 533 on seed 1002, 0.934 -> 0.932, 15 m
    #: away and mostly hidden by a nearer one; the tuning set 0.982 / 0.982 ->
    #: 0.982 / 0.989)
    min_fill: dict[str, float] = field(default_factory=lambda: {"vehicle": 0.3})
    #: outline pixels whose depth is outside [1/f, f] x the median depth of their
    #: image blob (8-connected pixels of the class) are dropped: a network's depth at
    #: an object's outline blends into the background behind it and would smear the
    #: object along the viewing ray. Inner pixels are kept whatever their depth (a
    #: car seen behind another is part of the same blob)
    blob_depth_factor: float = 1.3
    #: a vehicle blob's column is one depth: each pixel (after the outline filter
    #: above) gets the median depth of its column of its 8-connected blob
    #: (:func:`_column_median_depth`). A vehicle's faces are vertical, so a column
    #: of its pixels lies at about one distance (its roof a little farther); the
    #: network's depth scatters them along the viewing ray, and the box fitted to
    #: the scattered points grew along it (built-in maps, held out, the weights
    #: of c8bd36e: vehicles 10-20 m away placed a median 1.4 m too far in boxes
    #: 9.8 m long; with the median, 4.6 m long). Vehicles within 30 m, recall /
    #: precision, held out, the shipped weights: 0.34 / 0.40 -> 0.60 / 0.64 on the
    #: built-in maps, 0.34 / 0.39 -> 0.42 / 0.44 on Town01/02. It also makes a
    #: network's false car a solid box the planner stops for where the scattered
    #: depth smeared it into a long low one it ignored: with weights that saw
    #: every junction arm with a zebra, empty junction asphalt on Town01 blocked
    #: leaderboard routes 4 and 5 (hence ``collect --drop-crosswalks``). Keeping
    #: the pixels more than 2x their column's median apart (a car seen over the
    #: roof of a nearer one) lost precision on both (0.43, 0.30 with c8bd36e's
    #: weights): they are mostly the background's depth bled in; so did splitting
    #: a column at its largest depth step (0.44, 0.38). The price: a vehicle seen
    #: only over the roof of a nearer one, in no column of its own, joins the
    #: nearer one (the nearer one is the one to brake for). Pedestrians are thin and
    #: flattened whole (``flatten_pedestrians``); a column median cost them
    #: precision (0.64 -> 0.59 within 20 m)
    column_median: bool = True
    #: distance of a blob from where it meets the ground (flat ground at ego z = 0):
    #: the ray through the blob's bottom edge (sub-pixel from ``probs``) hits the
    #: ground at its contact distance. Its error grows with the distance squared (a
    #: row is d / (fy h) of d, h the camera's height), the depth map's is about a
    #: fixed fraction, so the two are fused by their variances (in log depth:
    #: ``contact_px_sigma`` rows of edge error, ``depth_rel_sigma`` relative depth
    #: error) and the blob's depths scaled so that its foot (the two bottom rows)
    #: lies at the fused distance, keeping its shape. Not used (the depth map is)
    #: when the bottom touches the image edge, another obstacle covers it, or the
    #: blob's depths spread more than ``contact_max_spread`` (p95 / p5: two
    #: objects in one blob). For the labels listed: pedestrians (recall within
    #: 20 m 0.62 -> 0.82 on the built-in maps, held out). Vehicles, their columns
    #: at their median depth (``column_median``), are placed better by their depth
    #: alone: within 30 m, recall / precision 0.51 / 0.45 with their contact and
    #: 0.49 / 0.45 without on the built-in maps, 0.36 / 0.34 and 0.44 / 0.42 on
    #: Town01/02 (c8bd36e's weights)
    ground_contact: tuple[str, ...] = ("pedestrian",)
    contact_max_spread: float = 1.6
    contact_px_sigma: float = 0.5
    depth_rel_sigma: float = 0.12
    #: a pedestrian is thin, so all its pixels are at one depth: a pedestrian blob
    #: whose contact is seen gets the fused distance at every pixel, whatever its
    #: spread (a wide spread there is the background's depth bleeding into a blob
    #: a few pixels wide, which is when the contact distance matters most: the
    #: network put a pedestrian 14 m away at 29 m)
    flatten_pedestrians: bool = True
    #: m: the farthest contact taken under a pedestrian's "legs" (obstacle pixels of
    #: another class right under it, :func:`_legs_bottom`) when they are wider than
    #: the pedestrian; a contact under legs is taken only where nearer than its
    #: depth. Farther, the pixels under a pedestrian blob are as often a car in
    #: front of it: at 15 m, pedestrians 20-40 m away were pulled near (built-in
    #: maps, held out: recall there 0.33 -> 0.28 with the shipped weights, 0.20 ->
    #: 0.09 with a fine-tune that labels more walkers' legs vehicle, whose walker
    #: 12 m away in the scene test, seed 11, is then placed by its depth)
    legs_max_m: float = 10.0
    #: m: the same for legs no wider than the pedestrian, its own more likely (a car
    #: in front is wider): the scene test's walker 12 m away before a car at 22 m,
    #: its legs labelled vehicle, was more than 1.5 m off in 24 of 32 seeds, most
    #: at the car's depth (s16far weights), and in 8 with this. Not farther: at
    #: 20-40 m recall fell 0.39 -> 0.37 without a limit (built-in maps, held out)
    legs_narrow_max_m: float = 16.0
    #: per label, each detection's centre is moved along the camera's ray to it
    #: (ego x-y), last, by a factor that depends on its distance from the camera
    #: (:data:`RangeCurve`): a calibration of the weights, fitted on their training
    #: data by ``drivestack calibrate`` (:mod:`perception.calibrate`) and carried
    #: in the weights file. Measured at the object, corrected at the object: a
    #: near pedestrian's distance is mostly its ground contact, whose blob the
    #: network draws a little below the foot (class weighting fattens small
    #: classes), a far one's its depth, which the contact's growing error weighs
    #: less. The shipped weights, on their training data, median true / detected
    #: distance: 1.11 within 5 m, 1.06-1.07 at 5-20 m, 1.03, 1.01 and 0.97 at
    #: 20-25, 25-30 and 30-40 m (held out, built-in maps: 0.81 m near at 10-20 m,
    #: where the true segmentation's contact is 0.37 m near). A factor on the
    #: network's depth, before the contact fusion, moved them by a fraction of it
    range_scale: dict[str, RangeCurve] = field(default_factory=dict)
    #: vehicles placed where they meet the road in the camera image itself
    #: (``vehicle_score`` of :func:`detect_objects`; :func:`_fine_contact_depth`,
    #: whose doc says what the ``fine_*`` settings below are). Vehicles within 30 m,
    #: recall / precision on the tuning set (built-in maps, seed 2000; vehicle
    #: calibration fitted anew on set1): 0.69 / 0.71 -> 0.79 / 0.75; searching
    #: from ``fine_up_rows`` map rows above the foot down to the first edge (not
    #: the lowest one), 0.875 / 0.844
    fine_contact: bool = True
    fine_px_sigma: float = 0.5
    fine_max_ratio: float = 1.5
    fine_max_spread: float = 2.0
    #: a walker's legs labelled vehicle: a blob's columns with a pedestrian pixel
    #: up to this many map rows straight above one of their pixels, and this many
    #: columns either side, keep their depth (:func:`_fine_contact_depth`). Was:
    #: any blob within 2 px of a pedestrian pixel kept all of its depth, 198 of
    #: 716 vehicle blobs nearer than 30 m on set B (half of them beside stray
    #: walker pixels at a car's edge); recall / precision within 30 m, set B 0.749
    #: / 0.749 -> 0.787 / 0.780, set A 0.855 / 0.834 -> 0.867 / 0.845; the scene
    #: test passes 18 of seeds 1-32 (14)
    fine_walker_px: int = 1
    fine_edge_px: float = 1.0
    fine_up_rows: int = 2
    #: a faint fall (the score drops by less than this across its camera row) is
    #: found again at ``fine_faint_level`` of the way from the column's lowest
    #: score in the search rows to its highest (:func:`_fine_contact_depth`): in
    #: fog, rain or on a car the colour of the road the score on the body hovers
    #: at 0.5-0.7 and first falls through 0.5 part-way up it, placing the car
    #: far (held out, seed 1002: columns 15-40 m away whose score peaks under
    #: 0.69, a fifth of them, put their contact 15 % off at the median, the
    #: others 1.5 %). Chosen on sets never trained on, drawn like the training
    #: data (setA, setB of session 27: 1916 vehicles within 30 m), 0.828 / 0.811
    #: and 0.731 / 0.740 -> 0.855 / 0.834 and 0.749 / 0.749; 0 turns it off
    fine_faint_drop: float = 0.1
    fine_faint_level: float = 0.6
    #: m, per label clustered on the x-y grid: image blobs (8-connected pixels of
    #: the label) of one cluster whose centres (ego x-y) lie farther apart than
    #: this are separate objects (:func:`_split_by_blob`). The grid's link (1.2 x
    #: 0.6 m, a cell of slack either side) joins walkers up to about 2.8 m apart
    #: along ego x and 2.0 m across; walkers in a row on a pavement, apart in
    #: the image, became one box between them (Town01/02: 14 of 34 misses within
    #: 20 m). Blobs whose image columns overlap stay together (a walker's upper
    #: body and legs parted by a car's bonnet, placed apart by their depths), and
    #: a blob smaller than the label's ``min_pixels`` (a leg, an arm cut off by a
    #: pole) goes with the nearest bigger blob of its cluster
    split_blobs_m: dict[str, float] = field(default_factory=lambda: {"pedestrian": 1.0})
    #: see ``split_blobs_m``: nor does a blob smaller than this share of its
    #: cluster's biggest blob split off; it goes with the nearest bigger one.
    #: The network's specks of walker class on the road beside a walker (6-19
    #: pixels of its 160 x 80 map, against the walker's 44-113) became a second
    #: walker 1 m aside (held out, seed 1002: 3 of 3 split false positives)
    split_min_share: float = 0.25


@dataclass
class Detection:
    """One clustered object in the ego frame (metres, degrees)."""

    label: str
    position: np.ndarray  # (3,) centre x, y, z
    size: np.ndarray  # (3,) length, width, height
    yaw: float
    confidence: float
    pixels: int

    def to_message(self, track_id: int = -1,
                   velocity: tuple[float, float] = (0.0, 0.0)) -> DetectedObject:
        p, s = self.position, self.size
        return DetectedObject(
            track_id=track_id, label=self.label,
            position=Vector3(float(p[0]), float(p[1]), float(p[2])),
            size=Vector3(float(s[0]), float(s[1]), float(s[2])), yaw=float(self.yaw),
            velocity=Vector3(float(velocity[0]), float(velocity[1]), 0.0),
            confidence=float(min(max(self.confidence, 0.0), 1.0)))


def scale_intrinsics(K: CameraIntrinsics, width: int, height: int) -> CameraIntrinsics:
    """The intrinsics of the same camera with its image resized to width x height."""
    sx, sy = width / K.width, height / K.height
    # pixel centres: (u + 0.5) scales, so the principal point maps as (c + .5) s - .5
    return CameraIntrinsics(width, height, K.fx * sx, K.fy * sy,
                            (K.cx + 0.5) * sx - 0.5, (K.cy + 0.5) * sy - 0.5)


def _fit_heading(xy: np.ndarray, cfg: ObjectsConfig) -> float:
    """Heading (rad, in [0, pi/2): a rectangle's axes are this and +90 deg) of the
    rectangle that best fits a vehicle's bird's-eye points, by L-shape fitting with
    the closeness criterion (Zhang et al., "Efficient L-Shape Fitting for Vehicle
    Detection Using Laser Scanners", 2017): for each candidate heading, each point's
    distance to the nearer edge of the points' bounding rectangle along either axis,
    the least of the two, scores ``sum 1 / max(d, d0)``; the best score wins. A
    camera sees the near faces of a car, which lie on two edges of its box (an L) or
    one (an I); the criterion rewards headings that put the points on the edges."""
    if len(xy) > cfg.fit_max_points:  # an even subsample keeps the shape
        xy = xy[np.linspace(0, len(xy) - 1, cfg.fit_max_points).astype(np.int64)]
    theta = np.radians(np.arange(0.0, 90.0, cfg.fit_step_deg))
    c, s = np.cos(theta), np.sin(theta)
    u = xy[:, :1] * c + xy[:, 1:] * s  # (N, T) along the heading
    v = -xy[:, :1] * s + xy[:, 1:] * c  # (N, T) across it
    du = np.minimum(u.max(0) - u, u - u.min(0))
    dv = np.minimum(v.max(0) - v, v - v.min(0))
    score = (1.0 / np.maximum(np.minimum(du, dv), cfg.fit_d0_m)).sum(0)
    return float(theta[int(np.argmax(score))])


def _extent(lo: float, hi: float, prior: float, direction: float) -> tuple[float, float]:
    """Centre and full size along one box axis: the observed [lo, hi] grown to
    ``prior`` towards hi (``direction`` > 0), towards lo (< 0) or both ways (0)."""
    size = hi - lo
    if size >= prior:
        return (lo + hi) / 2, size
    if direction > 0:
        return lo + prior / 2, prior
    if direction < 0:
        return hi - prior / 2, prior
    return (lo + hi) / 2, prior


def _column_percentiles(a: np.ndarray, qs: tuple[float, ...]) -> list[np.ndarray]:
    """Percentiles ``qs`` (0..100) of each column of ``a`` (N, C), numpy's default
    (linear) interpolation, from one sort: ``np.percentile``'s own overhead is most
    of its cost on the few hundred points of a cluster."""
    srt = np.sort(a, axis=0)
    out = []
    for q in qs:
        index = q / 100.0 * (len(srt) - 1)
        below = int(index)
        above = min(below + 1, len(srt) - 1)
        out.append(srt[below] + (srt[above] - srt[below]) * (index - below))
    return out


@dataclass(frozen=True)
class Silhouette:
    """Where a cluster lies in the image it was seen in: the columns it spans
    (pixel edges, ``left`` < ``right``) and whether each side is the object's own
    outline (``*_free``) or cut there by the image's edge or a nearer object."""

    K: CameraIntrinsics
    mount: Transform
    left: float
    right: float
    left_free: bool
    right_free: bool


def _silhouette_error(box: tuple[np.ndarray, np.ndarray, float], sil: Silhouette) -> float:
    """Pixels by which the columns a box projects to (its 8 corners, ego frame,
    yaw in degrees) miss the cluster's: on a free side by any amount, on a cut
    side only where the box stops short of it. 0 for a box reaching behind the
    camera (no outline to compare)."""
    centre, size, yaw = box
    corners = box_corners(np.array([[centre[0], centre[1], yaw, size[0] / 2, size[1] / 2]]))[0]
    pts = np.vstack([np.column_stack([corners, np.zeros(4)]),
                     np.column_stack([corners, np.full(4, size[2])])])
    px, in_front = project(ego_to_camera(pts, sil.mount), sil.K)
    if not in_front.all():
        return 0.0
    left, right = float(px[:, 0].min()), float(px[:, 0].max())
    error = abs(left - sil.left) if sil.left_free else max(0.0, left - sil.left)
    error += abs(right - sil.right) if sil.right_free else max(0.0, sil.right - right)
    return error


def _silhouette(depth: np.ndarray, vs: np.ndarray, us: np.ndarray, K: CameraIntrinsics,
                mount: Transform, cfg: ObjectsConfig) -> Silhouette:
    """The :class:`Silhouette` of the cluster of pixels (``vs``, ``us``) of a depth
    map (m; the network's, not a column's)."""
    w = depth.shape[1]
    near = float(np.median(depth[vs, us])) * cfg.silhouette_nearer
    gap = max(1, round(cfg.silhouette_gap_px * w / REFERENCE_MAP_WIDTH))
    free = []
    for side, step in ((int(us.min()), -1), (int(us.max()), 1)):
        beyond = side + step * np.arange(1, gap + 1)
        if not ((beyond >= 0) & (beyond < w)).all():
            free.append(False)  # at the image's edge
            continue
        rows = vs[us == side]
        ahead = depth[rows[:, None], beyond] < near
        free.append(not ahead.any())
    return Silhouette(K, mount, us.min() - 0.5, us.max() + 0.5, free[0], free[1])


def _box(points: np.ndarray, label: str, cam_xy: np.ndarray, cfg: ObjectsConfig,
         beyond: np.ndarray | None = None, at_edge: np.ndarray | None = None,
         silhouette: Silhouette | None = None
         ) -> tuple[np.ndarray, np.ndarray, float]:
    """Centre (ego x, y, z), size (length, width, height) and yaw (deg, folded to
    (-90, 90]) of the box of one cluster's points (see the module doc).
    ``beyond``: the cluster touches the image's left or right edge, so its length
    may run on outside the view, which lies this way (a unit vector in the ego
    x-y plane, across the edge's ray: :func:`_outward_normals`); ``at_edge``, with
    it, which points lie in the image's edge column; ``silhouette``: where the
    cluster lies in the image, for a vehicle's length axis (``silhouette_px``)."""
    xy = points[:, :2]
    if label == "vehicle":
        box = _oriented_box(points, label, cam_xy, cfg, beyond, _fit_heading(xy, cfg),
                            at_edge, silhouette)
        if box[1][1] <= cfg.max_width_m:
            return box
        # wider than any vehicle: several in a row (a queue beside the lane) that
        # the L-shape fit turned into one diagonal box reaching across lanes. Their
        # principal axis runs along the row
        centred = xy - xy.mean(0)
        _, vecs = np.linalg.eigh(centred.T @ centred)
        return _oriented_box(points, label, cam_xy, cfg, beyond,
                             math.atan2(vecs[1, -1], vecs[0, -1]) % math.pi, at_edge,
                             silhouette)
    d = xy.mean(0) - cam_xy  # a pedestrian's box is square: grown along the viewing ray
    return _oriented_box(points, label, cam_xy, cfg, beyond, math.atan2(d[1], d[0]))


def _oriented_box(points: np.ndarray, label: str, cam_xy: np.ndarray, cfg: ObjectsConfig,
                  beyond: np.ndarray | None, angle: float, at_edge: np.ndarray | None = None,
                  silhouette: Silhouette | None = None
                  ) -> tuple[np.ndarray, np.ndarray, float]:
    """:func:`_box` for the rectangle's heading ``angle`` (rad, ego frame)."""
    xy = points[:, :2]
    prior = PRIOR_SIZE[label]
    c, s = math.cos(angle), math.sin(angle)
    axes = np.array([[c, s], [-s, c]])  # rows: the fitted rectangle's two directions
    local = xy @ axes.T
    cam = axes @ cam_xy
    # 2nd and 98th percentiles along both axes and of the height, one sort
    (lo_u, lo_v, _), (hi_u, hi_v, top) = _column_percentiles(
        np.column_stack([local, points[:, 2]]), (2.0, 98.0))
    seen = (hi_u - lo_u, hi_v - lo_v)
    if max(seen) > cfg.side_min_m or (beyond is not None
                                      and max(seen) > cfg.front_max_m):
        long_axis = int(seen[1] > seen[0])  # a side is in view: the longer face
    elif beyond is not None and at_edge is not None and cfg.edge_face and at_edge.any():
        # cut off by the image's edge: the face the edge cuts runs on out of view,
        # so the length runs along it. Where the edge cuts it (the edge column's
        # lower half: a car's faces are vertical there, its roof set back), a face
        # along either axis could pass; the one along which the points run on
        # (their spread along it, within ``edge_face_m`` of its line) is the face
        low = at_edge & (points[:, 2] <= median(points[at_edge, 2]))
        cut = np.median(local[low], axis=0)
        spread = []
        for k in (0, 1):  # the face along axis 1 - k lies at local[k] = cut[k]
            along = local[np.abs(local[:, k] - cut[k]) <= cfg.edge_face_m, 1 - k]
            # none within reach when the edge column's points lie apart (its median
            # between them): no face runs on there
            spread.append(float(along.max() - along.min()) if len(along) else 0.0)
        long_axis = 1 - int(np.argmax(spread))
    else:
        # one short face (a car's front or back) or a fragment: the car's length
        # runs along the axis nearer the viewing ray
        ray = xy.mean(0) - cam_xy
        long_axis = int(abs(float(axes[1] @ ray)) > abs(float(axes[0] @ ray)))
    height = max(float(top), 0.3)

    def grown(long_axis: int) -> tuple[np.ndarray, np.ndarray, float]:
        grow = (prior[0], prior[1]) if long_axis == 0 else (prior[1], prior[0])
        # away from the camera, but the length towards the edge's far side when cut
        away = [float(np.sign(lo - c) + np.sign(hi - c)) for lo, hi, c in
                ((lo_u, hi_u, cam[0]), (lo_v, hi_v, cam[1]))]
        if beyond is not None:
            away[long_axis] = float(axes[long_axis] @ beyond)
        cu, size_u = _extent(lo_u, hi_u, grow[0], away[0])
        cv, size_v = _extent(lo_v, hi_v, grow[1], away[1])
        centre_xy = axes.T @ np.array([cu, cv])
        length, width = (size_u, size_v) if long_axis == 0 else (size_v, size_u)
        yaw = math.degrees(angle) + 90.0 * long_axis
        if yaw > 90.0:
            yaw -= 180.0
        return (np.array([centre_xy[0], centre_xy[1], height / 2]),
                np.array([length, width, height]), yaw)

    box = grown(long_axis)
    if silhouette is not None and cfg.silhouette_px is not None:
        other = grown(1 - long_axis)
        margin = cfg.silhouette_px * silhouette.K.width / REFERENCE_MAP_WIDTH
        if _silhouette_error(other, silhouette) + margin < _silhouette_error(box, silhouette):
            box = other
    return box


def _consistent_depth(mask: np.ndarray, depth: np.ndarray, factor: float) -> np.ndarray:
    """``mask`` without the outline pixels whose depth is not within ``factor`` of
    the median depth of their 8-connected blob (``ObjectsConfig.blob_depth_factor``)."""
    m8 = mask.astype(np.uint8)
    n, blobs = cv2.connectedComponents(m8, connectivity=8)
    if n <= 1:
        return mask
    ids = blobs[mask]
    d = depth[mask]
    (med,) = _group_percentiles(ids, d, n, (50.0,))
    ratio = d / med[ids]
    outline = (mask & ~cv2.erode(m8, np.ones((3, 3), np.uint8),
                                 borderType=cv2.BORDER_CONSTANT, borderValue=0).astype(bool))
    keep = mask.copy()
    keep[mask] = ~outline[mask] | ((ratio <= factor) & (ratio >= 1.0 / factor))
    return keep


def _column_median_depth(mask: np.ndarray, depth: np.ndarray) -> np.ndarray:
    """``depth`` with each pixel of ``mask`` set to the median depth of its column
    of its 8-connected blob (``ObjectsConfig.column_median``); all columns of all
    blobs in one sort."""
    n, blobs = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    if n <= 1:
        return depth
    vs, us = np.nonzero(mask)
    groups = blobs[vs, us] * mask.shape[1] + us
    (med,) = _group_percentiles(groups, depth[vs, us], n * mask.shape[1], (50.0,))
    out = depth.copy()
    out[vs, us] = med[groups]
    return out


def _fuse_contact(contact: float | np.ndarray, measured: float | np.ndarray, px_sigma: float,
                  rays: _GroundRays, rel_sigma: float) -> np.ndarray:
    """Inverse-variance fusion in log depth (m; floats or arrays) of a ground contact,
    which errs by ``px_sigma`` rows of the image ``rays`` are for (a row spans d /
    (fy h) of d), and a depth, which errs by the fraction ``rel_sigma``."""
    var_c = (px_sigma * contact / (rays.K.fy * rays.height)) ** 2
    var_d = rel_sigma ** 2
    return np.exp((np.log(contact) * var_d + np.log(measured) * var_c) / (var_c + var_d))


def _first_fall(window: np.ndarray, inside: np.ndarray, level: float | np.ndarray
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per column of ``window`` (a score, rows x columns), where the score first
    falls through ``level`` (one, or one per column) below where it first reaches
    it, within the ``inside`` rows: whether it does, the fall's row (from the
    window's first row, interpolated between pixel centres) and how much the score
    drops across it. The first fall, not the lowest: a painted line or the car's
    shadow under a car makes one lower down."""
    body = (window >= level) & inside
    started = np.cumsum(body, 0) > 0
    cross = body[:-1] & ~body[1:] & inside[1:] & started[:-1]
    i = np.argmax(cross, 0)
    j = np.arange(window.shape[1])
    upper, lower = window[i, j], window[np.minimum(i + 1, window.shape[0] - 1), j]
    with np.errstate(divide="ignore", invalid="ignore"):
        row = i + (upper - level) / (upper - lower)
    return cross.any(0), row, upper - lower


def _fine_contact_depth(seg: np.ndarray, depth: np.ndarray, raw: np.ndarray,
                        mask: np.ndarray, region: np.ndarray, score: GuidedScore,
                        rays: _GroundRays, cfg: ObjectsConfig) -> np.ndarray:
    """``depth`` with each blob of ``mask`` whose foot is in view moved to where it
    meets the ground in the camera image, fused with its depth
    (``ObjectsConfig.fine_contact``).

    A map column's foot is the bottom of the class's pixels (``region``) under the
    blob's lowest pixel there, when the pixel below it is in the image and no
    obstacle. In the camera image (``score``: the class's guided score at its
    pixels; ``rays``: its ground rays) the foot's edge is where the score, searched
    down from ``fine_up_rows`` map rows above the foot to two under it, first falls
    below 0.5 after reaching it, interpolated between pixel centres and raised by
    ``fine_edge_px`` (the guided edge lies a camera row below a car's foot: on the
    training data the contact read 2.5, 3.4 and 5.5 % near at 5-15, 15-25 and
    25-40 m). Not the lowest fall: a painted line or dash under the car, or dark
    road the filter scored vehicle, makes one lower down, and the map's foot row is
    itself such road now and then (a car 21 m ahead was placed 4 m near). A faint
    fall (``fine_faint_drop``: a car in fog) is found again at a level between the
    column's lowest and highest score (``fine_faint_level``). Its ray
    meets the ground at the contact depth of that
    camera column, and a map column with two or more gets their median. The
    network's depth errs by a fraction of itself, the contact by a row of the
    camera image (``fine_px_sigma``), which spans more the farther (d^2 / (fy h)):
    the two are fused by their variances in log depth, per map column, and the
    columns without a foot in view move by their blob's median factor (one blob's
    columns moved apart would split it). At 320 x 160 (a 160 x 80 map) a map row
    spans 3.5 m where a car 21 m away meets the road, a row of a 640 x 360 camera
    0.8 m: on the training data (set1, 300 samples), per column, the fused depth
    errs by 1.2, 2.3 and 3.6 % (p50) and 4.3, 5.8 and 13.5 % (p80) at 5-15, 15-25
    and 25-40 m (the lowest fall from the foot row: 1.6, 2.7, 4.0 and 5.5, 7.6, 15
    %), the network's column depth by 4.9, 7.1, 9.1 and 10, 15, 18 %.

    Not taken: a contact farther from the depth than ``fine_max_ratio``, a column
    whose own depths (``raw``, before the column median) spread more than
    ``fine_max_spread`` (two objects), and a walker's legs: the blob's columns
    with a pixel under a walker (a pedestrian pixel up to ``fine_walker_px`` rows
    straight above it), and ``fine_walker_px`` columns either side. A walker before
    a car, its legs labelled vehicle, pulled the car to its feet (the scene test:
    5.8 m near). Those columns keep their depth, and the rest of such a blob moves
    by one factor, the median of its columns' (per column, a contact beside the
    legs bridged the walker's depth and the car's, and the two became one box).
    Stray pedestrian pixels beside a car's edge do not stop its contact."""
    h, w = seg.shape
    big_h, big_w = score.image.shape[:2]
    sy, sx = big_h / h, big_w / w
    n, blobs = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    out = depth
    walker = seg == int(TrainClass.PEDESTRIAN)
    under_walker = np.zeros_like(walker)
    for dv in range(1, cfg.fine_walker_px + 1):
        under_walker[dv:] |= walker[:-dv]
    aside = np.ones(2 * cfg.fine_walker_px + 1)
    for k in range(1, n):
        vs, us = np.nonzero(blobs == k)
        legs = np.zeros(w, bool)  # map columns of a walker standing before the blob
        legs[us[under_walker[vs, us]]] = True
        legs = np.convolve(legs, aside, "same") > 0
        lowest = np.full(w, -1)
        np.maximum.at(lowest, us, vs)
        fu = np.flatnonzero(lowest >= 0)
        fv = lowest[fu]
        for _ in range(h):  # down through the class's pixels under the blob
            down = (fv + 1 < h) & region[np.minimum(fv + 1, h - 1), fu]
            if not down.any():
                break
            fv = fv + down
        seen = (fv + 1 < h) & ~_IS_OBSTACLE[seg[np.minimum(fv + 1, h - 1), fu]]
        if not seen.any():
            continue
        fu, fv = fu[seen], fv[seen]
        # the camera columns of those map columns, each with its rows to search
        c0, c1 = math.floor(fu.min() * sx), math.ceil((fu.max() + 1) * sx)
        cols = np.arange(c0, min(c1, big_w))
        of = np.full(w, -1)
        of[fu] = fv
        col_u = np.minimum(((cols + 0.5) / sx).astype(np.int64), w - 1)
        foot = of[col_u]
        cols, col_u, foot = cols[foot >= 0], col_u[foot >= 0], foot[foot >= 0]
        top = np.floor((foot - cfg.fine_up_rows) * sy).astype(np.int64) - 1
        bottom = np.minimum(np.ceil((foot + 2) * sy).astype(np.int64), big_h - 1)
        r0 = max(int(top.min()), 0)
        window = score.window((r0, int(bottom.max()) + 1), (int(cols[0]), int(cols[-1]) + 1))
        window = window[:, cols - cols[0]]
        rows = np.arange(r0, r0 + window.shape[0])[:, None]
        inside = (rows >= top) & (rows <= bottom)
        found, edge, drop = _first_fall(window, inside, 0.5)
        faint = found & (drop < cfg.fine_faint_drop)
        if faint.any():
            lo = np.where(inside, window, np.inf).min(0)
            hi = np.where(inside, window, -np.inf).max(0)
            again, edge_again, _ = _first_fall(window, inside,
                                               lo + cfg.fine_faint_level * (hi - lo))
            edge = np.where(faint & again, edge_again, edge)
        z = rays.depths(cols.astype(np.float64), r0 + edge + 0.5 - cfg.fine_edge_px)
        ok = found & np.isfinite(z)
        if not ok.any():
            continue
        near, far = np.full(w, np.inf), np.zeros(w)
        np.minimum.at(near, us, raw[vs, us])
        np.maximum.at(far, us, raw[vs, us])
        (contact,) = _group_percentiles(col_u[ok], z[ok], w, (50.0,))
        measured = np.where(lowest >= 0, depth[np.maximum(lowest, 0), np.arange(w)], np.nan)
        with np.errstate(divide="ignore", invalid="ignore"):
            taken = ((np.bincount(col_u[ok], minlength=w) >= 2)
                     & (far <= cfg.fine_max_spread * near)
                     & (contact >= measured / cfg.fine_max_ratio)
                     & (contact <= measured * cfg.fine_max_ratio))
            fused = _fuse_contact(contact, measured, cfg.fine_px_sigma, rays,
                                  cfg.depth_rel_sigma)
        ratios = np.where(taken & ~legs, fused / measured, np.nan)
        known = np.isfinite(ratios)
        if not known.any():
            continue
        factor = float(np.median(ratios[known]))
        if legs.any():  # one factor for the car, the walker's columns as they are
            ratios = np.where(legs, 1.0, factor)
        else:
            ratios[~known] = factor
        if out is depth:
            out = depth.copy()
        out[vs, us] = depth[vs, us] * ratios[us]
    return out


def _group_bounds(ids: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Per group id in [0, n): how many of ``ids`` it has and where its slice starts
    once they are sorted by group (a stable sort keeps each group's own order)."""
    counts = np.bincount(ids, minlength=n)
    return counts, np.concatenate([[0], np.cumsum(counts)[:-1]])


def _group_percentiles(ids: np.ndarray, values: np.ndarray, n: int,
                       qs: tuple[float, ...]) -> list[np.ndarray]:
    """Per group id in [0, n), the percentiles ``qs`` (0..100) of ``values``, each
    as an array over the groups (0 for an empty group), all groups in one sort;
    numpy's default (linear) interpolation: the value at index q/100 (count - 1)
    of the group's sorted values."""
    ordered = values[np.lexsort((values, ids))]
    counts, starts = _group_bounds(ids, n)
    present = counts > 0
    last = np.maximum(counts - 1, 0)
    out = []
    for q in qs:
        index = q / 100.0 * last
        below = np.floor(index).astype(np.int64)
        above = np.minimum(below + 1, last)
        t = index - below
        a = ordered[np.where(present, starts + below, 0)]
        b = ordered[np.where(present, starts + above, 0)]
        out.append(np.where(present, a + (b - a) * t, 0.0))
    return out


def _outward_normals(K: CameraIntrinsics, mount: Transform) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors in the ego x-y plane across the rays of the image's left and
    right edges (columns 0 and W - 1, at the principal row), out of the view."""
    ends = camera_to_ego(unproject(np.array([[0.0, K.cy], [K.width - 1.0, K.cy]]),
                                   np.array([10.0, 10.0]), K), mount)[:, :2]
    left, right = ends - np.array([mount.location.x, mount.location.y])

    def out_of_view(edge: np.ndarray, other: np.ndarray) -> np.ndarray:
        n = np.array([-edge[1], edge[0]]) / float(np.hypot(*edge))
        return n if n @ other < 0 else -n  # the other edge's ray is inside

    return out_of_view(left, right), out_of_view(right, left)


class _GroundRays:
    """Where rays of one camera (intrinsics ``K``, pose ``mount`` in the ego frame)
    meet flat ground at ego z = 0: the camera-to-ego rotation is worked out once per
    map, not once per blob."""

    def __init__(self, K: CameraIntrinsics, mount: Transform) -> None:
        basis = camera_to_ego(np.vstack([np.zeros(3), np.eye(3)]), mount)
        self.up = basis[1:, 2] - basis[0, 2]  # ego z of each camera axis
        self.K = K
        self.height = mount.location.z

    def depth(self, u: float, v: float) -> float | None:
        """Camera-z depth (m) at which the ray through pixel (u, v) meets the
        ground, or None at or above the horizon."""
        d = float(self.depths(np.array([u]), np.array([v]))[0])
        return d if math.isfinite(d) else None

    def depths(self, us: np.ndarray, vs: np.ndarray) -> np.ndarray:
        """:meth:`depth` of many pixels: NaN at or above the horizon."""
        K = self.K
        dz = (self.up[0] * (us - K.cx) / K.fx + self.up[1] * (vs - K.cy) / K.fy
              + self.up[2])  # ego z change per metre of camera depth
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(dz < -1e-3, -self.height / dz, np.nan)


#: where a blob's ground contact was taken (:func:`_contact_depth`): under its own
#: bottom, under "legs" no wider than it, or under wider ones
Contact = tuple[float, Literal["foot", "legs", "wide legs"]]  # camera-z depth (m), where


def _contact_depth(seg: np.ndarray, vs: np.ndarray, us: np.ndarray, cls: int,
                   rays: _GroundRays, probs: np.ndarray | None,
                   through_legs: bool = False) -> Contact | None:
    """Camera-z depth (m) of the point where a blob (its pixels' rows ``vs`` and
    columns ``us``) meets the ground, and where it was taken (:data:`Contact`);
    None when that cannot be seen (see ``ObjectsConfig.ground_contact``).
    ``through_legs``: obstacle pixels of another class right under the blob, at
    most the blob's own height, are its lower part (:func:`_legs_bottom`), and the
    contact is under them."""
    vb = int(vs.max())
    if vb >= seg.shape[0] - 1:
        return None  # cut off by the image's bottom edge
    cols = us[vs == vb]
    below = seg[vb + 1, cols]
    if _IS_OBSTACLE[below].any():
        if not through_legs:
            return None  # something stands in front of its foot
        legs = _legs_bottom(seg, vb, cols, int(vb - vs.min()) + 1,
                            (int(us.min()), int(us.max())))
        if legs is None:
            return None
        vb, cols, narrow = legs
        contact = rays.depth(float(cols.mean()), vb + 0.5)
        return None if contact is None else (contact, "legs" if narrow else "wide legs")
    v_edge = vb + 0.5
    if probs is not None:  # where the class probability crosses 0.5, between rows
        p_in = float(np.asarray(probs)[cls, vb, cols].mean())
        p_out = float(np.asarray(probs)[cls, vb + 1, cols].mean())
        if p_in > p_out:
            v_edge = vb + min(max((p_in - 0.5) / (p_in - p_out), 0.0), 1.0)
    contact = rays.depth(float(cols.mean()), v_edge)
    return None if contact is None else (contact, "foot")


def _legs_bottom(seg: np.ndarray, vb: int, cols: np.ndarray, height: int,
                 span: tuple[int, int]) -> tuple[int, np.ndarray, bool] | None:
    """The bottom row and its columns of the obstacle pixels that continue a blob
    (bottom row ``vb`` at columns ``cols``, ``height`` rows tall, columns ``span``
    first to last) straight down, and whether they are no wider than the blob (no
    obstacle pixel on their rows within the blob's width beyond either side of it,
    a pixel's slack allowed); None when they run on for more than ``height`` rows
    (something in front of it, such as a car before a pedestrian's upper body) or
    to the image's bottom. The network labels a walker's legs "vehicle" now and
    then: Town02 route 15's walker 7.7 m away, its legs so labelled, was placed at
    13 m and hit. The pixels under a blob are its own legs or something in front of
    it, so the contact under them is never farther than the object: it is taken
    only where it is nearer than the blob's depth, and within
    ``ObjectsConfig.legs_max_m`` when they are wider than the blob, else
    ``legs_narrow_max_m``
    (:func:`_ground_contact_depth`)."""
    free = ~_IS_OBSTACLE[seg[vb + 1:vb + 2 + height, cols]]  # (rows, columns) under it
    # rows of obstacle under each column before its first free pixel (columns
    # with none within ``height + 1`` rows, the image's bottom included, count as
    # too long)
    depth = np.where(free.any(axis=0), free.argmax(axis=0), height + 1)
    lowest = int(depth.max())
    if lowest > height:
        return None
    u0, u1 = span
    width = u1 - u0 + 1
    rows = seg[vb + 1:vb + lowest + 1]
    beside = np.concatenate([rows[:, max(u0 - 1 - width, 0):max(u0 - 1, 0)],
                             rows[:, u1 + 2:u1 + 2 + width]], axis=1)
    return vb + lowest, cols[depth == lowest], not _IS_OBSTACLE[beside].any()


def _ground_contact_depth(seg: np.ndarray, depth: np.ndarray, mask: np.ndarray,
                          region: np.ndarray, cls: int, rays: _GroundRays,
                          probs: np.ndarray | None, cfg: ObjectsConfig,
                          min_area: int) -> np.ndarray:
    """``depth`` with each blob of ``mask`` whose ground contact is seen moved to
    its contact depth fused with its own (see ``ObjectsConfig.ground_contact``).
    A pedestrian's contact is where its blob in ``region`` (the class's pixels
    before the depth-consistency filter made ``mask``) meets the ground: the filter
    drops outline pixels whose depth differs from their blob's, and a pedestrian is
    all outline, whose feet, in front of a far background, are the pixels with the
    right depth (its recall within 20 m went from 0.27 to 0.86 on the built-in
    maps). A vehicle's is its blob's own bottom: the class's blob there often joins
    cars one behind the other (measured: no better, precision a little worse).
    Blobs under ``min_area`` pixels keep their depth (specks, or scraps of an object
    whose bigger part is moved). Each blob is worked on in its bounding box: most
    are a few pixels of a 51 200 pixel map."""
    n, blobs, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8),
                                                          connectivity=8)
    out = depth
    if n <= 1:
        return out
    lo, hi = _group_percentiles(blobs[mask], depth[mask], n, (5.0, 95.0))
    # blob 0, the background, has no pixels in the mask: lo 0, never taken
    candidates = (stats[:, cv2.CC_STAT_AREA] >= min_area) & (lo > 0)
    flatten = cfg.flatten_pedestrians and OBSTACLE_CLASSES.get(cls) == "pedestrian"
    if not flatten:
        candidates &= hi <= cfg.contact_max_spread * lo
    if not candidates.any():
        return out
    if flatten:
        _, whole, whole_stats, _ = cv2.connectedComponentsWithStats(
            region.astype(np.uint8), connectivity=8)
    contacts: dict[int, Contact | None] = {}  # per blob of region
    for k in np.flatnonzero(candidates):
        x0, y0, bw, bh = (int(v) for v in stats[k, :4])
        box = (slice(y0, y0 + bh), slice(x0, x0 + bw))
        blob = blobs[box] == k
        vs, us = np.nonzero(blob)
        vs, us = vs + y0, us + x0
        if flatten:  # the pedestrian's whole blob: the filter may have cut its feet off
            j = int(whole[vs[0], us[0]])
            if j not in contacts:
                wx, wy, ww, wh = (int(v) for v in whole_stats[j, :4])
                wvs, wus = np.nonzero(whole[wy:wy + wh, wx:wx + ww] == j)
                contacts[j] = _contact_depth(seg, wvs + wy, wus + wx, cls, rays, probs,
                                             through_legs=True)
            found = contacts[j]
        else:
            found = _contact_depth(seg, vs, us, cls, rays, probs)
        if found is None:
            continue
        contact, under = found
        foot = blob & (np.arange(y0, y0 + bh)[:, None] >= vs.max() - 1)
        measured = median(depth[box][foot])
        if under != "foot" and (contact >= measured or contact > (
                cfg.legs_max_m if under == "wide legs" else cfg.legs_narrow_max_m)):
            continue  # the legs may be something in front of it: only ever nearer
        if under == "foot":
            fused = float(_fuse_contact(contact, measured, cfg.contact_px_sigma, rays,
                                        cfg.depth_rel_sigma))
        else:  # its depth is the background's, bled in (farther than its legs): not fused
            fused = contact
        if out is depth:
            out = depth.copy()
        out[box][blob] = fused if flatten else depth[box][blob] * (fused / measured)
    return out


def detect_objects(seg: np.ndarray, depth: np.ndarray, K: CameraIntrinsics,
                   mount: Transform, probs: np.ndarray | None = None,
                   config: ObjectsConfig | None = None,
                   vehicle_score: GuidedScore | None = None) -> list[Detection]:
    """Clustered vehicles and pedestrians in the ego frame (see the module doc).

    ``seg``: (H, W) integer class ids; ``depth``: (H, W) metres along the camera z
    axis; ``K``: intrinsics of an H x W image; ``mount``: the camera pose in the ego
    frame; ``probs``: optional (C, H, W) class probabilities
    (softmax of the network's logits); ``vehicle_score``: optional, the vehicle
    class's guided score at the pixels of the camera image the maps were made from
    (``vehicle_score`` of :meth:`perception.inference.PredictorBase.finish`; any
    size at least H x W, its intrinsics ``K`` scaled), where vehicles (with
    ``ObjectsConfig.fine_contact``) are placed by where they meet the road
    (:func:`_fine_contact_depth`). Sorted by distance."""
    cfg = config or ObjectsConfig()
    seg = np.asarray(seg)
    depth = np.asarray(depth, dtype=np.float64)
    if seg.shape != depth.shape or seg.ndim != 2:
        raise ValueError(f"seg {seg.shape} and depth {depth.shape} must be the same (H, W)")
    h, w = seg.shape
    if (K.width, K.height) != (w, h):
        raise ValueError(f"intrinsics are for {K.width}x{K.height}, the maps are {w}x{h} "
                         "(use scale_intrinsics)")
    valid = np.isfinite(depth) & (depth >= cfg.min_depth_m) & (depth <= cfg.max_range_m)
    area = h * w / REFERENCE_MAP_AREA
    min_pixels = {k: max(2, round(v * area)) for k, v in cfg.min_pixels.items()}
    cam_xy = np.array([mount.location.x, mount.location.y])
    rays = _GroundRays(K, mount)
    outward = _outward_normals(K, mount)
    out: list[Detection] = []
    for cls, label in OBSTACLE_CLASSES.items():
        region = (seg == cls) & valid
        if int(region.sum()) < min_pixels[label]:
            continue
        mask = region & _consistent_depth(region, depth, cfg.blob_depth_factor)
        raw = depth
        if cfg.column_median and label == "vehicle":
            depth = _column_median_depth(mask, depth)
        if label == "vehicle" and cfg.fine_contact and vehicle_score is not None:
            big_h, big_w = vehicle_score.image.shape[:2]
            depth = _fine_contact_depth(seg, depth, raw, mask, region, vehicle_score,
                                        _GroundRays(scale_intrinsics(K, big_w, big_h), mount),
                                        cfg)
        if label in cfg.ground_contact:
            depth = _ground_contact_depth(seg, depth, mask, region, cls, rays, probs, cfg,
                                          max(2, min_pixels[label] // 2))
        vs, us = np.nonzero(mask)
        if len(us) < min_pixels[label]:
            continue
        point_depth = depth[vs, us]
        pts = camera_to_ego(unproject(np.stack([us, vs], -1), point_depth, K), mount)
        keep = pts[:, 2] <= cfg.max_height_m
        pts, us, vs, point_depth = pts[keep], us[keep], vs[keep], point_depth[keep]
        if len(pts) < min_pixels[label]:
            continue
        cell = cfg.cell_m[label]
        rx = round(cfg.link_m[0] / cell)
        if label in cfg.column_clusters:  # (depth cell, image column), a column's link
            ij = np.column_stack([np.floor(point_depth / cell).astype(np.int64), us])
            ry = 1
        else:  # (ego x cell, ego y cell)
            ij = np.floor(pts[:, :2] / cell).astype(np.int64)
            ry = round(cfg.link_m[1] / cell)
        ij -= ij.min(0)
        gh, gw = ij.max(0) + 1
        grid = np.zeros((int(gh), int(gw)), np.uint8)
        grid[ij[:, 0], ij[:, 1]] = 1
        linked = cv2.dilate(grid, np.ones((2 * rx + 1, 2 * ry + 1), np.uint8),
                            borderType=cv2.BORDER_CONSTANT, borderValue=0)
        n, comp = cv2.connectedComponents(linked, connectivity=8)
        cluster = comp[ij[:, 0], ij[:, 1]]
        if label in cfg.column_clusters:
            if n > 2:
                cluster = _join_side_slivers(cluster, n, us, point_depth,
                                             PRIOR_SIZE[label][0] + cfg.link_m[0],
                                             cfg.sliver_max_px * area)
            if cfg.convex_split_m is not None:
                cluster, n = _split_not_convex(cluster, n, us, point_depth,
                                               cfg.convex_split_m, cfg.convex_split_rel,
                                               cfg.convex_min_depth_m,
                                               round(cfg.convex_min_px * area))
            if cfg.cabin_split_m is not None:
                cluster, n = _split_two_cabins(cluster, n, us, pts[:, 2], cfg.cabin_min_m,
                                               cfg.cabin_split_m,
                                               round(cfg.cabin_min_px * area),
                                               cfg.cabin_edge_cols)
        elif label in cfg.split_blobs_m:
            _, blobs = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
            cluster, n = _split_by_blob(cluster, n, blobs[vs, us], us, pts[:, :2],
                                        cfg.split_blobs_m[label], min_pixels[label],
                                        cfg.split_min_share)
        # the points grouped by cluster once (slices of one sort), not a mask per cluster
        order = np.argsort(cluster, kind="stable")
        counts, starts = _group_bounds(cluster, n)
        mean_p = (np.bincount(cluster, weights=np.asarray(probs)[cls, vs, us], minlength=n)
                  / np.maximum(counts, 1)) if probs is not None else None
        for k in np.flatnonzero(counts >= min_pixels[label]):
            if k == 0:
                continue  # no point is in component 0 (the grid's empty cells)
            count = int(counts[k])
            conf = 1.0 - math.exp(-count / (cfg.pixel_scale * area))
            if mean_p is not None:
                conf *= float(mean_p[k])
            if conf < cfg.min_confidence:
                continue  # before the box fit: most clusters end here
            sel = order[starts[k]:starts[k] + counts[k]]
            cols = us[sel]
            beyond = (outward[0] if cols.min() == 0 else
                      outward[1] if cols.max() == w - 1 else None)
            at_edge = None if beyond is None else (cols == 0) | (cols == w - 1)
            fill = cfg.min_fill.get(label)
            if fill and beyond is None:
                _, pw, ph = PRIOR_SIZE[label]
                z_med = float(np.median(point_depth[sel]))
                if count < fill * K.fx * K.fy * pw * ph / (z_med * z_med):
                    continue
            silhouette = (_silhouette(raw, vs[sel], cols, K, mount, cfg)
                          if label == "vehicle" and cfg.silhouette_px is not None else None)
            position, size, yaw = _box(pts[sel], label, cam_xy, cfg, beyond, at_edge,
                                       silhouette)
            if size[2] < cfg.min_height_m[label]:
                continue  # flat: a patch of ground taken for an object
            curve = cfg.range_scale.get(label)
            if curve:
                ray = position[:2] - cam_xy
                position[:2] = cam_xy + range_factor(curve, float(np.hypot(*ray))) * ray
            out.append(Detection(label, position, size, yaw, conf, count))
    out.sort(key=lambda d: float(np.hypot(d.position[0], d.position[1])))
    return out


def _upper_hull(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The upper concave hull of the points (``x`` increasing) evaluated at each x
    (Andrew's monotone chain, upper half)."""
    hull: list[int] = []
    for i in range(len(x)):
        while len(hull) >= 2:
            a, b = hull[-2], hull[-1]
            if (x[b] - x[a]) * (y[i] - y[a]) - (y[b] - y[a]) * (x[i] - x[a]) >= 0:
                hull.pop()  # b lies on or under the chord a-i
            else:
                break
        hull.append(i)
    return np.interp(x, x[hull], y[hull])


#: given a part of a cluster (its points' indices, its sorted distinct image
#: columns, each point's index into them), the index of the column to cut it at,
#: or None
ColumnCut = Callable[[np.ndarray, np.ndarray, np.ndarray], int | None]


def _cut_at_columns(cluster: np.ndarray, n: int, us: np.ndarray, min_px: int,
                    cut_of: ColumnCut) -> tuple[np.ndarray, int]:
    """``cluster`` (each point's cluster id; 0 is none) with each cluster cut at
    the image column (``us``) that ``cut_of`` names: the column's points go with
    neither part, when each part has ``min_px`` points (else a fringe at the end,
    no second object), and each part is checked again. Returns the new ids and
    their count."""
    out = cluster.copy()
    # the points grouped by cluster once (slices of one sort), not a mask per cluster
    order = np.argsort(cluster, kind="stable")
    counts, starts = _group_bounds(cluster, n)
    for k in range(1, n):
        todo = [order[starts[k]:starts[k] + counts[k]]]
        while todo:
            idx = todo.pop()
            if len(idx) < 2 * min_px:
                continue
            cols, inv = np.unique(us[idx], return_inverse=True)
            c = cut_of(idx, cols, inv)
            if c is None:
                continue
            cut = cols[c]
            left, right = idx[us[idx] < cut], idx[us[idx] > cut]
            if len(left) < min_px or len(right) < min_px:
                continue
            out[left] = n  # the right part keeps the id k
            out[idx[us[idx] == cut]] = 0
            todo += [left, right]
            n += 1
    return out, n


def _split_not_convex(cluster: np.ndarray, n: int, us: np.ndarray, depth: np.ndarray,
                      min_gap_m: float, min_rel: float, min_depth_m: float, min_px: int
                      ) -> tuple[np.ndarray, int]:
    """``cluster`` with each cluster split where its columns' depth profile could
    not be one convex object's (``ObjectsConfig.convex_split_m``): a convex
    object's visible surface hit by the rays of one image row is the nearest of
    its faces, and the inverse depth along a face is linear in the column, so
    its inverse depth by column is concave (the least of linear functions). A
    column farther than the profile's concave hull allows, by more than
    ``min_gap_m`` and ``min_rel`` of it, where the hull is at least
    ``min_depth_m`` away, lies between two objects (or is the background
    between them): the cluster is cut there (:func:`_cut_at_columns`; the
    farthest beyond the hull first), into parts of ``min_px`` points.
    Returns the new ids and their count."""

    def cut_of(idx: np.ndarray, cols: np.ndarray, inv: np.ndarray) -> int | None:
        if len(cols) < 3:
            return None
        (z,) = _group_percentiles(inv, depth[idx], len(cols), (50.0,))
        z_hull = 1.0 / _upper_hull(cols.astype(np.float64), 1.0 / z)
        gap = z - z_hull
        bad = (gap > min_gap_m) & (gap > min_rel * z_hull) & (z_hull >= min_depth_m)
        return int(np.argmax(np.where(bad, gap, -np.inf))) if bad.any() else None

    return _cut_at_columns(cluster, n, us, min_px, cut_of)


def _split_two_cabins(cluster: np.ndarray, n: int, us: np.ndarray, z: np.ndarray,
                      min_top_m: float, min_dip_m: float, min_px: int, edge_cols: int
                      ) -> tuple[np.ndarray, int]:
    """``cluster`` with each cluster cut where its top dips between two cabins
    (``ObjectsConfig.cabin_split_m``): per image column (``us``) the highest of
    its points' heights ``z`` (m, ego frame); at each column the lower of the
    highest tops on its left and on its right is the shoulder, and where the
    column's top lies more than ``min_dip_m`` below a shoulder at least
    ``min_top_m`` high (the deepest such column, ``edge_cols`` or more in from
    either end) the cluster is cut (:func:`_cut_at_columns`; the column's points
    are a bonnet, a boot or the gap), into parts of ``min_px`` points. A profile
    that rises and falls once (one car, a van, a truck's cab then its box) has
    no such column: every column's shoulder is its own height or the lower
    side's. Returns the new ids and their count."""

    def cut_of(idx: np.ndarray, cols: np.ndarray, inv: np.ndarray) -> int | None:
        if len(cols) < 2 * edge_cols + 1:
            return None
        top = np.full(len(cols), -np.inf)
        np.maximum.at(top, inv, z[idx])
        shoulder = np.minimum(np.maximum.accumulate(top),
                              np.maximum.accumulate(top[::-1])[::-1])
        dip = np.where(shoulder >= min_top_m, shoulder - top, 0.0)
        dip[:edge_cols] = dip[len(dip) - edge_cols:] = 0.0
        c = int(np.argmax(dip))
        return c if dip[c] > min_dip_m else None

    return _cut_at_columns(cluster, n, us, min_px, cut_of)


def _join_side_slivers(cluster: np.ndarray, n: int, us: np.ndarray, depth: np.ndarray,
                       reach_m: float, max_px: float) -> np.ndarray:
    """``cluster`` (the cluster id of each point; 0 is no cluster) with each
    cluster of at most ``max_px`` points that lies in the image columns (``us``)
    of a bigger one or next to them, and farther than it (mean ``depth``, m) by
    less than ``reach_m``, joined to the biggest such one
    (``ObjectsConfig.sliver_max_px``)."""
    counts = np.bincount(cluster, minlength=n)
    c0 = np.full(n, np.iinfo(np.int64).max)
    c1 = np.full(n, -1)
    np.minimum.at(c0, cluster, us)
    np.maximum.at(c1, cluster, us)
    d_sum = np.bincount(cluster, weights=depth, minlength=n)
    d = d_sum / np.maximum(counts, 1)
    parent = np.arange(n)
    for k in np.argsort(counts):
        if k == 0 or counts[k] == 0 or counts[k] > max_px:
            continue
        near = ((c0 <= c1[k] + 1) & (c1 >= c0[k] - 1) & (counts > counts[k])
                & (d < d[k]) & (d[k] - d < reach_m))
        near[0] = False
        if near.any():
            parent[k] = int(np.flatnonzero(near)[np.argmax(counts[near])])
    for _ in range(n):  # follow chains to their root
        nxt = parent[parent]
        if np.array_equal(nxt, parent):
            break
        parent = nxt
    return parent[cluster]


def _split_by_blob(cluster: np.ndarray, n: int, blob: np.ndarray, us: np.ndarray,
                   xy: np.ndarray, split_m: float, min_px: int,
                   min_share: float) -> tuple[np.ndarray, int]:
    """``cluster`` (the cluster id of each point, ``n`` ids) with each cluster split
    into groups of its image blobs (``blob``: the blob id of each point) linked by
    steps (single linkage) between blobs whose centres (mean ego ``xy``, m) are at
    most ``split_m`` apart or whose image columns (``us``) overlap (one walker's
    upper body and legs, parted by a car's bonnet, are not side by side, whatever
    their depths); a blob of fewer than ``min_px`` points, or than ``min_share``
    of the cluster's biggest blob, joins the group of the nearest bigger blob
    (``ObjectsConfig.split_blobs_m``). Returns the new ids and their count."""
    out = cluster.copy()
    n_out = n
    key = cluster.astype(np.int64) * (int(blob.max()) + 1) + blob
    for k in np.unique(cluster):
        in_k = cluster == k
        blobs, inv, counts = np.unique(key[in_k], return_inverse=True, return_counts=True)
        big = np.flatnonzero(counts >= max(min_px, min_share * counts.max()))
        if len(big) < 2:
            continue
        centres = np.stack([np.bincount(inv, weights=xy[in_k, i]) / counts for i in (0, 1)], 1)
        c0 = np.full(len(blobs), np.iinfo(np.int64).max)
        c1 = np.full(len(blobs), -1)
        np.minimum.at(c0, inv, us[in_k])
        np.maximum.at(c1, inv, us[in_k])
        gap = np.hypot(*(centres[:, None, :] - centres[None, big, :]).transpose(2, 0, 1))
        linked = ((gap[big] <= split_m)
                  | ((c0[big, None] <= c1[None, big]) & (c0[None, big] <= c1[big, None])))
        group = np.full(len(blobs), -1)
        for a in range(len(big)):  # single linkage of the big blobs
            if group[big[a]] >= 0:
                continue
            group[big[a]] = big[a]
            stack = [a]
            while stack:
                b = stack.pop()
                for m in np.flatnonzero(linked[b] & (group[big] < 0)):
                    group[big[m]] = big[a]
                    stack.append(int(m))
        small = group < 0  # to the nearest big blob's group
        group[small] = group[big[np.argmin(gap[small], axis=1)]]
        roots = np.unique(group)
        if len(roots) < 2:
            continue
        ids = np.searchsorted(roots, group)  # 0: keeps id k, the rest new ids
        new = np.where(ids == 0, k, n_out + ids - 1)
        out[in_k] = new[inv]
        n_out += len(roots) - 1
    return out, n_out


def merge_detections(dets: list[Detection], merge_m: float = 1.0) -> list[Detection]:
    """One detection per object when several cameras see it: of two detections of
    one label whose centres (ego x-y) are closer than ``merge_m``, the one with more
    pixels is kept. Sorted by distance."""
    kept: list[Detection] = []
    for d in sorted(dets, key=lambda d: -d.pixels):
        if not any(k.label == d.label and float(np.hypot(*(k.position[:2] - d.position[:2])))
                   < merge_m for k in kept):
            kept.append(d)
    kept.sort(key=lambda d: float(np.hypot(d.position[0], d.position[1])))
    return kept
