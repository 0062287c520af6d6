"""The perception network: a light multi-task encoder-decoder in plain PyTorch.

Architecture (``PerceptionNet``), input (B, 3, H, W) normalised RGB, H and W
multiples of 32 (default 160 x 320, a 640 x 360 camera resized):

- encoder: a strided 3x3 stem (1/2) then stages of depthwise-separable inverted
  residual blocks (MobileNetV2-style: 1x1 expand, 3x3 depthwise, 1x1 project,
  residual when the shape allows) down to 1/4, 1/8, 1/16 and 1/32;
- decoder: FPN/U-Net top-down path: each level is a 1x1 lateral of the encoder
  skip plus the bilinearly upsampled coarser level, refined by a depthwise-separable
  conv, down to 1/4 resolution; with ``head_stride`` 2 (the default) one more,
  narrower (``fine_decoder`` channels) level at 1/2 on the stem's features, so that
  a pedestrian 20 m away, 4 px wide at 320 x 160, is still two output cells wide;
- heads, upsampled bilinearly to the input size (or not, for inference:
  ``forward(x, full_size=False)``):
  ``seg``: per-pixel logits over the 7 classes of :mod:`perception.classes`, at
  1/``head_stride``;
  ``depth``: per-pixel log-depth (metres), at 1/2 with ``fine_depth`` (the default:
  at 1/4 the depth of a small object blends into the background behind it), else
  at 1/4; ``exp`` gives the positive depth;
- traffic-light head: the finest decoder features pooled with the predicted
  traffic-light probability as weights (attention on the light's pixels), plus
  the globally pooled 1/32 features, into a small MLP -> red/yellow/green/none.

Losses: :func:`segmentation_loss` (weighted cross-entropy; :func:`class_weights`
from pixel counts), :func:`depth_loss` (L1 or scale-invariant on log-depth, sky
and other depth >= ``max_depth`` masked out; obstacle pixels weighted up),
:func:`depth_gradient_loss` (multi-scale gradient matching of log-depth: sharp
depth steps at outlines), :func:`light_loss` (weighted per state,
:func:`light_state_weights`), and
:func:`multitask_loss` summing them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from perception.classes import LIGHT_STATES, NUM_CLASSES

DEFAULT_INPUT_SIZE = (320, 160)  # (width, height)
MAX_DEPTH = 1000.0  # sky / far plane: excluded from the depth loss
MIN_DEPTH = 0.1
#: Default class weights (background, road, road line, sidewalk, vehicle,
#: pedestrian, traffic light): small classes count more.
DEFAULT_CLASS_WEIGHTS = (0.5, 0.5, 2.0, 1.0, 2.0, 4.0, 4.0)
#: How much more a vehicle or pedestrian pixel counts in the depth loss.
OBSTACLE_DEPTH_WEIGHT = 5.0
#: m: with ``far_obstacles_m``, an obstacle pixel farther than this counts more,
#: with the square of its distance (see :func:`multitask_loss`)
FAR_OBSTACLES_FROM_M = 10.0
IMAGE_MEAN = (0.485, 0.456, 0.406)  # RGB
IMAGE_STD = (0.229, 0.224, 0.225)


def _act() -> nn.Module:
    return nn.ReLU6(inplace=True)


class ConvBNAct(nn.Sequential):
    def __init__(self, cin: int, cout: int, k: int = 3, stride: int = 1,
                 groups: int = 1, act: bool = True) -> None:
        layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups,
                                             bias=False), nn.BatchNorm2d(cout)]
        if act:
            layers.append(_act())
        super().__init__(*layers)


class InvertedResidual(nn.Module):
    """1x1 expand, 3x3 depthwise (stride s), 1x1 linear project; residual if s == 1
    and cin == cout."""

    def __init__(self, cin: int, cout: int, stride: int = 1, expand: int = 4) -> None:
        super().__init__()
        mid = cin * expand
        self.use_res = stride == 1 and cin == cout
        self.block = nn.Sequential(
            ConvBNAct(cin, mid, 1),
            ConvBNAct(mid, mid, 3, stride, groups=mid),
            ConvBNAct(mid, cout, 1, act=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.block(x)
        return x + y if self.use_res else y


class SepConv(nn.Sequential):
    """Depthwise-separable 3x3 conv: depthwise 3x3 then pointwise 1x1."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(ConvBNAct(cin, cin, 3, groups=cin), ConvBNAct(cin, cout, 1))


@dataclass(frozen=True)
class ModelConfig:
    num_classes: int = NUM_CLASSES
    stem: int = 12
    #: (channels, blocks, expand) per stage at 1/4, 1/8, 1/16, 1/32
    stages: tuple[tuple[int, int, int], ...] = ((16, 1, 2), (32, 2, 4), (64, 3, 4),
                                                (160, 2, 4))
    decoder: int = 32
    head_stride: int = 2  # segmentation at 1/2 (a fine decoder level on the stem) or 1/4
    fine_decoder: int = 16  # channels of the 1/2 level
    fine_depth: bool = True  # depth from the 1/2 level too (else from 1/4)
    light_head: bool = True
    input_size: tuple[int, int] = DEFAULT_INPUT_SIZE  # (width, height)


#: Network sizes by name (``drivestack train --model``; the input size is chosen
#: apart, ``--input-size``). ``small`` (0.40 M parameters) is the CPU network the
#: project ships: 8 ms for a 320 x 160 image on 2 CPU threads. ``large`` (1.86 M)
#: is for training on a GPU at the camera's own resolution (640 x 352): each
#: encoder stage wider and deeper, a 64-channel decoder. At 320 x 160 the network
#: sees a car 25 m away as about 12 x 6 pixels and the rows where cars 20-30 m
#: away meet the road 3-5 m apart: the small network's depth of vehicle pixels
#: 10-40 m away errs by a median 8-10 % (held out), more than the 1.5 m a
#: detection may be off at 25 m.
MODEL_PRESETS: dict[str, ModelConfig] = {
    "small": ModelConfig(),
    "large": ModelConfig(stem=16, stages=((24, 2, 2), (48, 3, 4), (128, 4, 4), (256, 3, 4)),
                         decoder=64, fine_decoder=32),
}


class PerceptionNet(nn.Module):
    """Segmentation + depth (+ traffic-light state) network; see the module doc."""

    def __init__(self, config: ModelConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or ModelConfig()
        if cfg.head_stride not in (2, 4):
            raise ValueError(f"head_stride must be 2 or 4, not {cfg.head_stride}")
        self.stem = ConvBNAct(3, cfg.stem, 3, 2)
        stages, cin = [], cfg.stem
        for cout, blocks, expand in cfg.stages:
            layers = [InvertedResidual(cin, cout, 2, expand)]
            layers += [InvertedResidual(cout, cout, 1, expand) for _ in range(blocks - 1)]
            stages.append(nn.Sequential(*layers))
            cin = cout
        self.stages = nn.ModuleList(stages)
        d = cfg.decoder
        self.laterals = nn.ModuleList(ConvBNAct(c, d, 1) for c, _, _ in cfg.stages)
        self.refine = nn.ModuleList(SepConv(d, d) for _ in cfg.stages[:-1])
        fine = cfg.head_stride == 2
        df = cfg.fine_decoder if fine else d
        self.fine_lateral = ConvBNAct(cfg.stem, df, 1) if fine else None
        self.fine_reduce = ConvBNAct(d, df, 1) if fine else None
        self.fine_refine = SepConv(df, df) if fine else None
        self.seg_head = nn.Sequential(SepConv(df, df), nn.Conv2d(df, cfg.num_classes, 1))
        self.depth_fine = fine and cfg.fine_depth
        dd = df if self.depth_fine else d
        self.depth_head = nn.Sequential(SepConv(dd, dd), nn.Conv2d(dd, 1, 1))
        nn.init.constant_(self.depth_head[-1].bias, math.log(10.0))
        self.light_head = (nn.Sequential(
            nn.Linear(df + cfg.stages[-1][0], 64), nn.ReLU(inplace=True),
            nn.Linear(64, len(LIGHT_STATES))) if cfg.light_head else None)

    def forward(self, x: torch.Tensor, full_size: bool = True) -> dict[str, torch.Tensor]:
        """``x``: (B, 3, H, W), H and W multiples of 32. Returns ``seg`` logits
        (B, C, H, W), ``log_depth`` (B, H, W), ``depth`` (B, H, W) metres > 0, and
        ``light`` logits (B, 4) when the light head is on. ``full_size=False``: seg
        and depth at the heads' resolution, H / head_stride x W / head_stride."""
        h, w = x.shape[-2:]
        if h % 32 or w % 32:
            raise ValueError(f"input height and width must be multiples of 32, got {h}x{w}")
        feats = []
        y = stem = self.stem(x)
        for stage in self.stages:
            y = stage(y)
            feats.append(y)
        top = self.laterals[-1](feats[-1])
        for i in range(len(feats) - 2, -1, -1):
            skip = self.laterals[i](feats[i])
            top = self.refine[i](skip + F.interpolate(top, size=skip.shape[-2:],
                                                      mode="bilinear", align_corners=False))
        if not self.depth_fine:
            log_depth_q = self.depth_head(top)
        if (self.fine_lateral is not None and self.fine_reduce is not None
                and self.fine_refine is not None):
            skip = self.fine_lateral(stem)
            top = self.fine_refine(skip + F.interpolate(
                self.fine_reduce(top), size=skip.shape[-2:], mode="bilinear",
                align_corners=False))
        seg_q = self.seg_head(top)
        if self.depth_fine:
            log_depth_q = self.depth_head(top)
        if full_size:
            seg = F.interpolate(seg_q, size=(h, w), mode="bilinear", align_corners=False)
            log_depth = F.interpolate(log_depth_q, size=(h, w), mode="bilinear",
                                      align_corners=False)[:, 0]
        else:
            seg = seg_q
            log_depth = log_depth_q[:, 0] if log_depth_q.shape[-2:] == seg_q.shape[-2:] \
                else F.interpolate(log_depth_q, size=seg_q.shape[-2:], mode="bilinear",
                                   align_corners=False)[:, 0]
        log_depth = log_depth.clamp(math.log(MIN_DEPTH), math.log(MAX_DEPTH))
        out = {"seg": seg, "log_depth": log_depth, "depth": log_depth.exp()}
        if self.light_head is not None:
            from perception.classes import TrainClass

            att = seg_q.softmax(1)[:, int(TrainClass.TRAFFIC_LIGHT):int(
                TrainClass.TRAFFIC_LIGHT) + 1]
            pooled = (top * att).sum((2, 3)) / (att.sum((2, 3)) + 1e-3)
            glob = feats[-1].mean((2, 3))
            out["light"] = self.light_head(torch.cat([pooled, glob], 1))
        return out


def build_model(config: ModelConfig | None = None) -> PerceptionNet:
    return PerceptionNet(config)


def fuse_batchnorm(model: PerceptionNet) -> PerceptionNet:
    """Fold every BatchNorm into the convolution before it (inference only: the
    model must be in eval mode); the outputs are unchanged up to rounding, one
    normalisation pass per layer fewer."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    if model.training:
        raise ValueError("fuse_batchnorm needs a model in eval mode")
    for module in model.modules():
        if isinstance(module, ConvBNAct) and isinstance(module[1], nn.BatchNorm2d):
            conv = module[0]
            assert isinstance(conv, nn.Conv2d)
            module[0] = fuse_conv_bn_eval(conv, module[1])
            module[1] = nn.Identity()
    return model


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# ------------------------------------------------------------------------ losses
def class_weights(pixel_counts: torch.Tensor, c: float = 1.02) -> torch.Tensor:
    """ENet-style weights 1 / ln(c + share) from per-class pixel counts (small
    classes weigh more), normalised to mean 1."""
    share = pixel_counts.double() / pixel_counts.sum().clamp(min=1)
    w = 1.0 / torch.log(c + share)
    return (w / w.mean()).float()


def segmentation_loss(logits: torch.Tensor, labels: torch.Tensor,
                      weights: torch.Tensor | None = None,
                      ignore_index: int = 255) -> torch.Tensor:
    """Weighted cross-entropy; ``labels`` (B, H, W) long class ids."""
    if weights is None:
        weights = torch.tensor(DEFAULT_CLASS_WEIGHTS, device=logits.device)
    return F.cross_entropy(logits, labels, weight=weights.to(logits.device),
                           ignore_index=ignore_index)


def valid_depth(depth: torch.Tensor, max_depth: float = MAX_DEPTH) -> torch.Tensor:
    """The pixels whose true depth the depth losses learn from: finite, at least
    ``MIN_DEPTH`` and nearer than ``max_depth`` (sky and the far plane excluded)."""
    return (depth >= MIN_DEPTH) & (depth < max_depth) & torch.isfinite(depth)


def depth_loss(log_depth: torch.Tensor, depth: torch.Tensor, kind: str = "l1",
               max_depth: float = MAX_DEPTH, si_lambda: float = 0.85,
               pixel_weights: torch.Tensor | None = None) -> torch.Tensor:
    """Loss on log-depth over pixels with ``MIN_DEPTH <= depth < max_depth`` (sky
    and the far plane masked). ``kind``: 'l1' (mean |log d_pred - log d|, weighted by
    ``pixel_weights`` when given) or 'silog' (scale-invariant, Eigen et al. 2014:
    sqrt(mean g^2 - lambda mean(g)^2))."""
    mask = valid_depth(depth, max_depth)
    if not bool(mask.any()):
        return log_depth.sum() * 0.0
    g = log_depth[mask] - torch.log(depth[mask])
    if kind == "l1":
        if pixel_weights is not None:
            w = pixel_weights[mask]
            return (g.abs() * w).sum() / w.sum()
        return g.abs().mean()
    if kind == "silog":
        return torch.sqrt((g * g).mean() - si_lambda * g.mean() ** 2 + 1e-8)
    raise ValueError(f"depth loss kind must be 'l1' or 'silog', not {kind!r}")


def depth_gradient_loss(log_depth: torch.Tensor, depth: torch.Tensor,
                        max_depth: float = MAX_DEPTH, scales: int = 4,
                        pixel_weights: torch.Tensor | None = None) -> torch.Tensor:
    """Multi-scale gradient matching on log-depth (Li and Snavely, "MegaDepth",
    2018): with the residual ``R = log d_pred - log d``, the mean of ``|dR/dx| +
    |dR/dy|`` over neighbouring pixel pairs that both have a valid depth, on the
    map subsampled by 1, 2, 4, ... (``scales`` levels), averaged over the levels.
    A per-pixel loss is content to blur a depth step over a few pixels (the mean
    error there is small); this term is zero only where the predicted steps have
    the truth's height and place, which is what keeps two cars one behind the
    other, or a car and the road behind it, apart once unprojected. A pair weighs
    the larger of its two ``pixel_weights`` (obstacle outlines count more)."""
    mask = valid_depth(depth, max_depth)
    r = torch.where(mask, log_depth - torch.log(depth.clamp(min=MIN_DEPTH)),
                    torch.zeros_like(log_depth))
    w = mask.float() if pixel_weights is None else pixel_weights * mask.float()
    # levels without a valid pair add nothing and are not counted; no host sync
    total, levels = log_depth.sum() * 0.0, log_depth.new_zeros(())
    for k in range(scales):
        s = 2 ** k
        rs, ms, ws = r[:, ::s, ::s], mask[:, ::s, ::s], w[:, ::s, ::s]
        if rs.shape[-1] < 2 or rs.shape[-2] < 2:
            break
        terms, weight_sum = rs.new_zeros(()), rs.new_zeros(())
        for dim in (-1, -2):
            n = rs.shape[dim] - 1
            pair = ms.narrow(dim, 1, n) & ms.narrow(dim, 0, n)
            pw = torch.maximum(ws.narrow(dim, 1, n), ws.narrow(dim, 0, n)) * pair.float()
            grad = (rs.narrow(dim, 1, n) - rs.narrow(dim, 0, n)).abs()
            terms = terms + (grad * pw).sum()
            weight_sum = weight_sum + pw.sum()
        total = total + terms / weight_sum.clamp(min=1e-12)
        levels = levels + (weight_sum > 0).float()
    return total / levels.clamp(min=1.0)


def light_state_weights(counts: torch.Tensor) -> torch.Tensor:
    """Per-state weights 1 / sqrt(share) from the training samples' light-state
    counts, normalised to mean 1: a data set driven through towns is mostly "none"
    and red (waiting), with few green and yellow samples."""
    share = counts.double() / counts.sum().clamp(min=1)
    w = 1.0 / torch.sqrt(share.clamp(min=1e-3))
    return (w / w.mean()).float()


def light_loss(logits: torch.Tensor, states: torch.Tensor,
               weights: torch.Tensor | None = None) -> torch.Tensor:
    """Cross-entropy over LIGHT_STATES, optionally weighted per state
    (:func:`light_state_weights`); ``states`` (B,) long, -1 = unlabelled."""
    valid = states >= 0
    if not bool(valid.any()):
        return logits.sum() * 0.0
    return F.cross_entropy(logits[valid], states[valid], weight=weights)


def multitask_loss(out: dict[str, torch.Tensor], labels: torch.Tensor,
                   depth: torch.Tensor, light: torch.Tensor | None = None,
                   weights: torch.Tensor | None = None, depth_kind: str = "l1",
                   depth_weight: float = 1.0, light_weight: float = 0.2,
                   obstacle_depth_weight: float = OBSTACLE_DEPTH_WEIGHT,
                   light_weights: torch.Tensor | None = None,
                   depth_grad_weight: float = 0.0, far_obstacles_m: float = 0.0,
                   ) -> tuple[torch.Tensor, dict[str, float]]:
    """Total loss and its parts (floats, for logging). Vehicle and pedestrian pixels
    count ``obstacle_depth_weight`` times in the depth loss (and its gradient term,
    :func:`depth_gradient_loss`, weighted by ``depth_grad_weight``): they are a few
    percent of the pixels, and their distance is what the planner acts on.

    ``far_obstacles_m`` > 0: an obstacle pixel at true depth d also counts (d /
    :data:`FAR_OBSTACLES_FROM_M`)^2 times, up to ``far_obstacles_m``: an object's
    pixel count falls with the square of its distance, so each object then weighs
    about the same out to that distance. A car 25 m away is a few dozen pixels,
    and its depth is what places it: a relative error of 4 % is already 1 m."""
    from perception.classes import TrainClass

    seg = segmentation_loss(out["seg"], labels, weights)
    obstacle = (labels == int(TrainClass.VEHICLE)) | (labels == int(TrainClass.PEDESTRIAN))
    boost = obstacle.float()
    if far_obstacles_m > 0:
        top = max(far_obstacles_m / FAR_OBSTACLES_FROM_M, 1.0) ** 2
        boost = boost * (depth / FAR_OBSTACLES_FROM_M).square().clamp(1.0, top)
    pixel_weights = 1.0 + (obstacle_depth_weight - 1.0) * boost
    dep = depth_loss(out["log_depth"], depth, depth_kind, pixel_weights=pixel_weights)
    total = seg + depth_weight * dep
    parts = {"seg": float(seg.detach()), "depth": float(dep.detach())}
    if depth_grad_weight > 0:
        grad = depth_gradient_loss(out["log_depth"], depth, pixel_weights=pixel_weights)
        total = total + depth_grad_weight * grad
        parts["depth_grad"] = float(grad.detach())
    if light is not None and "light" in out:
        li = light_loss(out["light"], light, light_weights)
        total = total + light_weight * li
        parts["light"] = float(li.detach())
    parts["total"] = float(total.detach())
    return total, parts
