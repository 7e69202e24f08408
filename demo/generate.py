"""Synthetic demo data: NTU RGB+D ``.skeleton`` files and NW-UCLA json files of simple actions.

Why: the real datasets are large and licensed; the demo pipeline and the tests need files in the
exact released formats, covering every protocol split, with classes a small CNN can learn but not
trivially.

How: a performer is a rest pose and bone lengths (measured once from the real samples in
../shared/data and hard-coded below; nothing is read at run time), scaled per performer. An action
is one function mapping the phase ``p`` in [0, 1] of every frame to a ``Motion``: pelvis path, trunk
bend, body turn, and targets for the wrists and ankles. Two-bone inverse kinematics places elbows
and knees, so limb lengths stay exact. A take is filmed by every camera of its dataset (as in the
real recordings): facing, distance, tilt, Gaussian sensor noise, a pinhole projection, and now and
then a spurious extra body.

Coordinates before a camera sees them are (left, up, forward) of the person or scene, in metres.
``python -m demo --out data/demo`` writes ``ntu/txt60skel/*.skeleton`` and ``ucla/*.json``;
``--format coco17`` writes the NTU actions as a custom dataset of COCO-17 2D keypoints instead.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from common.atomic import write_text_atomic
from skeletons.custom import write_custom_dataset

from .coco import ntu_to_coco2d
from skeletons.datasets import (NTU60_CSUB_TRAIN_PERFORMERS, get_dataset, ntu120_class_names,
                       official_missing, parse_ntu_name, parse_ucla_name)
from skeletons.layouts import NTU, UCLA, Layout

SIDE = np.array([1.0, -1.0])  # lateral sign of the left (0) and right (1) limbs
LEFT, RIGHT = 0, 1


# --------------------------------------------------------------------------------------------
# Bodies: rest poses and limb lengths of the two Kinect layouts (medians over the real samples)
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class BodyModel:
    layout: Layout
    trunk: tuple[tuple[int, float, float, float], ...]
    """(joint, left, up, forward): rest offset of each rigid trunk joint from the pelvis (joint 0)."""
    upper_trunk: tuple[int, ...]
    """Trunk joints that bend with the spine; the rest (pelvis, hips) stay upright."""
    head: int
    chest: int
    arms: tuple[tuple[int, int, int, int], ...]
    """(shoulder, elbow, wrist, hand) of the left and the right arm."""
    legs: tuple[tuple[int, int, int, int], ...]
    """(hip, knee, ankle, foot) of the left and the right leg."""
    hand_extras: tuple[tuple[int, int], ...]
    """(hand tip, thumb) per arm; NTU (Kinect v2) only."""
    lengths: dict[str, float]


NTU_BODY = BodyModel(
    layout=NTU,
    # Symmetrised median of standing frames of S001C001P001R001A008/A023/A024/A027, S002C001P003R001A003.
    trunk=((0, 0, 0, 0), (1, 0, .262, 0), (20, 0, .458, 0), (2, 0, .524, .005), (3, 0, .643, .012),
           (4, .13, .435, .015), (8, -.13, .435, .015), (12, .06, .01, .025), (16, -.06, .01, .025)),
    upper_trunk=(1, 20, 2, 3, 4, 8),
    head=3, chest=20,
    arms=((4, 5, 6, 7), (8, 9, 10, 11)),
    legs=((12, 13, 14, 15), (16, 17, 18, 19)),
    hand_extras=((21, 22), (23, 24)),
    # Median bone lengths over the 35 real NTU files (left/right averaged).
    lengths=dict(upper_arm=.236, forearm=.217, hand=.063, tip=.054, thumb=.036,
                 thigh=.331, shank=.341, foot=.104),
)

UCLA_BODY = BodyModel(
    layout=UCLA,
    # Symmetrised median of the first frames of the 36 real a01/a02/a05/a06 files.
    trunk=((0, 0, 0, 0), (1, 0, .069, 0), (2, 0, .405, 0), (3, 0, .59, .04),
           (4, .16, .30, -.005), (8, -.16, .30, -.005), (12, .07, -.065, 0), (16, -.07, -.065, 0)),
    upper_trunk=(1, 2, 3, 4, 8),
    head=3, chest=2,
    arms=((4, 5, 6, 7), (8, 9, 10, 11)),
    legs=((12, 13, 14, 15), (16, 17, 18, 19)),
    hand_extras=(),
    # Median bone lengths over the 63 real NW-UCLA files.
    lengths=dict(upper_arm=.252, forearm=.234, hand=.078, thigh=.472, shank=.37, foot=.088),
)


@dataclass(frozen=True)
class Body:
    """One performer: a body model scaled to their size."""
    model: BodyModel
    rest: np.ndarray          # (J, 3) trunk rest offsets (zeros for limb joints)
    lengths: dict[str, float]

    @property
    def reach(self) -> float:
        return self.lengths["upper_arm"] + self.lengths["forearm"]

    @property
    def leg(self) -> float:
        return self.lengths["thigh"] + self.lengths["shank"]

    @property
    def shoulders(self) -> np.ndarray:
        return self.rest[[a[0] for a in self.model.arms]]

    @property
    def hips(self) -> np.ndarray:
        return self.rest[[g[0] for g in self.model.legs]]

    @property
    def ankles(self) -> np.ndarray:
        """(2, 3) standing ankle positions: legs almost straight, feet slightly behind the hips."""
        return self.hips + np.array([0.0, -0.97 * self.leg, -0.02])

    def trunk(self, pitch: np.ndarray) -> np.ndarray:
        """(T, J, 3) pose of the trunk joints with the spine bent forward by ``pitch`` (rad)."""
        joints = np.broadcast_to(self.rest, (len(pitch),) + self.rest.shape).copy()
        upper = list(self.model.upper_trunk)
        joints[:, upper] = np.einsum("tij,kj->tki", rotation(pitch, axis=0), self.rest[upper])
        return joints

    def points(self, pitch: np.ndarray, joints) -> np.ndarray:
        return self.trunk(pitch)[:, list(joints)]


def make_body(model: BodyModel, rng: np.random.Generator) -> Body:
    """A performer: overall size ~ N(1, 6%), limb proportions and shoulder width +-5%."""
    size = float(np.clip(rng.normal(1.0, 0.06), 0.85, 1.15))
    lengths = {name: size * length * rng.uniform(0.95, 1.05) for name, length in model.lengths.items()}
    rest = np.zeros((model.layout.num_joints, 3))
    table = np.array(model.trunk)
    rest[table[:, 0].astype(int)] = size * table[:, 1:] * [rng.uniform(0.92, 1.08), 1.0, 1.0]
    return Body(model, rest, lengths)


# --------------------------------------------------------------------------------------------
# Geometry helpers (vectorised over frames and limbs)
# --------------------------------------------------------------------------------------------

def rotation(angle: np.ndarray, axis: int) -> np.ndarray:
    """(T, 3, 3) right-handed rotations by ``angle`` about coordinate ``axis`` (0 left, 1 up, 2 fwd)."""
    angle = np.asarray(angle, dtype=float)
    c, s = np.cos(angle), np.sin(angle)
    i, j = [k for k in range(3) if k != axis]
    R = np.zeros(angle.shape + (3, 3))
    R[..., axis, axis] = 1.0
    R[..., i, i], R[..., i, j], R[..., j, i], R[..., j, j] = c, -s, s, c
    if axis == 1:  # keep the right-hand rule about "up": (fwd, left) ordering
        R[..., i, j], R[..., j, i] = s, -s
    return R


def unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-9)


def two_bone_ik(root: np.ndarray, target: np.ndarray, l1: float, l2: float,
                pole: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Middle and end joints of a two-bone limb reaching from ``root`` toward ``target``.

    The end stops short of targets out of reach; the middle joint bends toward ``pole``.
    """
    axis = target - root
    dist = np.clip(np.linalg.norm(axis, axis=-1, keepdims=True), abs(l1 - l2) + 1e-3, 0.995 * (l1 + l2))
    u = unit(axis)
    along = (l1 ** 2 - l2 ** 2 + dist ** 2) / (2 * dist)
    across = np.sqrt(np.maximum(l1 ** 2 - along ** 2, 0.0))
    bend = unit(pole - np.sum(pole * u, axis=-1, keepdims=True) * u)
    return root + along * u + across * bend, root + dist * u


def smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def ramp(p: np.ndarray, a: float, b: float) -> np.ndarray:
    """0 before a, 1 after b, smooth in between."""
    return smoothstep((p - a) / max(b - a, 1e-9))


def hold(p: np.ndarray, a: float, b: float, rise: float = 0.2) -> np.ndarray:
    """0 -> 1 -> 0 over [a, b], spending ``rise`` of the window on each edge."""
    edge = rise * (b - a)
    return ramp(p, a, a + edge) * (1 - ramp(p, b - edge, b))


def bump(p: np.ndarray, a: float, b: float) -> np.ndarray:
    """A smooth 0 -> 1 -> 0 pulse over [a, b]."""
    return np.sin(np.pi * np.clip((p - a) / (b - a), 0, 1)) ** 2


def keyed(p: np.ndarray, keys) -> np.ndarray:
    """Eased interpolation through (time, value) keyframes; values scalars or 3-vectors."""
    times = np.array([k[0] for k in keys], dtype=float)
    values = np.array([k[1] for k in keys], dtype=float)
    seg = np.clip(np.searchsorted(times, p, side="right") - 1, 0, len(times) - 2)
    w = smoothstep((p - times[seg]) / (times[seg + 1] - times[seg]))
    w = w.reshape(w.shape + (1,) * (values.ndim - 1))
    return values[seg] + (values[seg + 1] - values[seg]) * w


def lerp(a: np.ndarray, b: np.ndarray, w: np.ndarray) -> np.ndarray:
    w = np.asarray(w).reshape(np.shape(w) + (1,) * (np.ndim(a) - np.ndim(w)))
    return a + (b - a) * w


def wobble(rng: np.random.Generator, p: np.ndarray, scale: float, dims: int = 3) -> np.ndarray:
    """(T, dims) slow random drift (a few sinusoids over the clip): sway, posture changes."""
    freq = rng.uniform(0.3, 2.0, (3, dims))
    phase = rng.uniform(0, 2 * np.pi, (3, dims))
    amp = rng.normal(0, scale / np.sqrt(3), (3, dims))
    return np.sum(amp * np.sin(2 * np.pi * freq * p[:, None, None] + phase), axis=1)


# --------------------------------------------------------------------------------------------
# Motions: what an action asks of a body, frame by frame
# --------------------------------------------------------------------------------------------

HANG = (0.09, -0.96, 0.1)  # wrist under the shoulder, in reach units (outward, up, forward)


@dataclass
class Motion:
    root: np.ndarray        # (T, 3) pelvis position
    yaw: np.ndarray         # (T,) turn of the whole body about "up"
    pitch: np.ndarray       # (T,) forward bend of the spine
    wrists: np.ndarray      # (T, 2, 3) targets, pelvis-relative, before the turn
    ankles: np.ndarray      # (T, 2, 3) targets, pelvis-relative, before the turn
    elbow_pole: np.ndarray = field(default_factory=lambda: np.array([[0.3, -0.2, -1.0], [-0.3, -0.2, -1.0]]))
    knee_pole: np.ndarray = field(default_factory=lambda: np.array([[0.1, 0.0, 1.0], [-0.1, 0.0, 1.0]]))


@dataclass
class Style:
    """Per-take variation shared by the actions: amplitude, active window, a random stream."""
    amp: float
    start: float
    end: float
    rng: np.random.Generator
    scene: dict = field(default_factory=dict)  # two-person actions: distances shared by both people

    def q(self, p: np.ndarray) -> np.ndarray:
        """Phase inside the active window, 0..1."""
        return np.clip((p - self.start) / (self.end - self.start), 0.0, 1.0)


def standing(body: Body, T: int) -> Motion:
    zeros = np.zeros(T)
    return Motion(root=np.zeros((T, 3)), yaw=zeros, pitch=zeros.copy(),
                  wrists=arm_targets(body, zeros, [(0, HANG), (1, HANG)], np.zeros(T)),
                  ankles=np.broadcast_to(body.ankles, (T, 2, 3)).copy())


def arm_targets(body: Body, q: np.ndarray, keys, pitch: np.ndarray, sides=(LEFT, RIGHT),
                extra: np.ndarray | float = 0.0) -> np.ndarray:
    """(T, len(sides), 3) wrist targets from keyframes in reach units (outward, up, forward)
    relative to each shoulder of the bent trunk; ``extra`` adds an offset in the same units."""
    extra = np.asarray(extra, dtype=float)
    path = keyed(q, keys)[:, None, :] + (extra[:, None, :] if extra.ndim == 2 else extra)
    shoulders = body.points(pitch, [body.model.arms[s][0] for s in sides])
    mirror = np.array([[SIDE[s], 1.0, 1.0] for s in sides])
    return shoulders + path * body.reach * mirror


def planted(body: Body, root: np.ndarray, lift: np.ndarray | None = None) -> np.ndarray:
    """(T, 2, 3) ankle targets of feet that stay where they are on the ground while the pelvis
    moves by ``root``; ``lift`` (T, 2) raises the feet off the ground."""
    ankles = body.ankles[None] - root[:, None, :]
    if lift is not None:
        ankles[..., 1] += lift
    return ankles


def stepping(body: Body, q: np.ndarray, steps: int, stride: float) -> tuple[np.ndarray, np.ndarray]:
    """Walking in place relative to the pelvis: (forward distance (T,), ankle targets (T, 2, 3)).

    Each foot swings forward (lifted) while the other carries the body, half a cycle apart.
    """
    phase = np.pi * steps * q[:, None] + np.array([0.0, np.pi])  # (T, 2)
    swing = 0.5 * stride * np.sin(phase)
    lift = 0.07 * body.leg * np.maximum(np.cos(phase), 0.0) * ((q > 0) & (q < 1))[:, None]
    ankles = body.ankles[None] + np.stack([np.zeros_like(swing), lift, swing], axis=-1)
    return stride * steps * q, ankles


def walk(body: Body, p: np.ndarray, style: Style, turn: float = 0.0, steps: int | None = None) -> Motion:
    """Walk through the active window, turning by ``turn`` (rad), arms swinging."""
    q = style.q(p)
    steps = steps or int(style.rng.integers(4, 8))
    stride = 0.45 * body.leg * style.amp
    distance, ankles = stepping(body, q, steps, stride)
    yaw = turn * q
    heading = np.stack([np.sin(yaw), np.zeros_like(yaw), np.cos(yaw)], axis=-1)
    speed = np.gradient(distance)
    root = np.cumsum(heading * speed[:, None], axis=0)
    root[:, 1] += 0.015 * body.leg * np.abs(np.sin(np.pi * steps * q))
    pitch = np.full_like(q, 0.05)
    # Each arm swings with the opposite leg.
    swing = np.zeros((len(q), 2, 3))
    swing[..., 2] = 0.7 * (ankles[:, ::-1, 2] - body.ankles[None, ::-1, 2]) / body.reach
    wrists = arm_targets(body, q, [(0, HANG), (1, HANG)], pitch, extra=swing)
    return Motion(root=root, yaw=yaw, pitch=pitch, wrists=wrists, ankles=ankles)


def approach(body: Body, q: np.ndarray, distance: float, a: float, b: float) -> tuple[np.ndarray, np.ndarray]:
    """Two steps forward over [a, b]: pelvis forward offset (T,) and ankle targets (T, 2, 3)."""
    feet = distance * np.stack([ramp(q, a, (a + b) / 2), ramp(q, (a + b) / 2, b)], axis=1)
    lift = 0.06 * body.leg * np.stack([bump(q, a, (a + b) / 2), bump(q, (a + b) / 2, b)], axis=1)
    forward = feet.mean(axis=1)
    root = np.stack([0 * q, 0 * q, forward], axis=-1)
    ankles = planted(body, root, lift)
    ankles[..., 2] += feet
    return forward, ankles


# --------------------------------------------------------------------------------------------
# Actions: one function each, (body, p, style) -> Motion
# --------------------------------------------------------------------------------------------

def sitting(body: Body, seated: np.ndarray, style: Style) -> Motion:
    """Sit on a chair by ``seated`` (0 standing .. 1 seated): hips back and down, feet planted,
    the trunk leaning forward while the weight moves, hands coming to rest on the thighs."""
    T = len(seated)
    thigh = body.lengths["thigh"]
    root = np.stack([np.zeros(T), -0.85 * thigh * style.amp * seated, -0.8 * thigh * seated], axis=-1)
    pitch = 0.5 * np.sin(np.pi * seated) + 0.12 * seated
    on_thighs = body.hips + [0.0, 0.1 * thigh, 0.6 * thigh]
    hang = arm_targets(body, seated, [(0, HANG), (1, HANG)], pitch)
    return Motion(root=root, yaw=np.zeros(T), pitch=pitch, wrists=lerp(hang, on_thighs[None], seated),
                  ankles=planted(body, root))


def sitting_down(body: Body, p: np.ndarray, style: Style) -> Motion:
    return sitting(body, ramp(p, style.start, style.end), style)


def standing_up(body: Body, p: np.ndarray, style: Style) -> Motion:
    return sitting(body, 1 - ramp(p, style.start, style.end), style)


def hand_waving(body: Body, p: np.ndarray, style: Style) -> Motion:
    q, m = style.q(p), standing(body, len(p))
    raised = hold(q, 0, 1, 0.15)
    wave = 0.22 * style.amp * np.sin(2 * np.pi * style.rng.integers(2, 5) * q) * raised
    m.wrists[:, RIGHT] = arm_targets(body, raised, [(0, HANG), (1, (0.5, 0.5, 0.25))], m.pitch, [RIGHT],
                                     extra=np.stack([wave, 0 * q, 0 * q], -1))[:, 0]
    m.elbow_pole = np.array([[0.3, -0.2, -1.0], [-1.0, -0.4, 0.2]])
    return m


def salute(body: Body, p: np.ndarray, style: Style) -> Motion:
    q, m = style.q(p), standing(body, len(p))
    m.wrists[:, RIGHT] = arm_targets(body, hold(q, 0, 1, 0.25), [(0, HANG), (1, (-0.2, 0.58 * style.amp, 0.3))],
                                     m.pitch, [RIGHT])[:, 0]
    m.elbow_pole = np.array([[0.3, -0.2, -1.0], [-1.0, 0.1, 0.3]])
    return m


def cross_hands(body: Body, p: np.ndarray, style: Style) -> Motion:
    q, m = style.q(p), standing(body, len(p))
    crossed = (-0.45, -0.05 + 0.2 * (style.amp - 1), 0.65)   # in front of the chest, past the midline
    m.wrists = arm_targets(body, hold(q, 0, 1, 0.25), [(0, HANG), (1, crossed)], m.pitch)
    m.wrists[:, RIGHT, 2] += 0.03  # right forearm in front of the left
    m.elbow_pole = np.array([[1.0, -0.5, 0.0], [-1.0, -0.5, 0.0]])
    return m


def kicking(body: Body, p: np.ndarray, style: Style) -> Motion:
    q, m = style.q(p), standing(body, len(p))
    leg = body.leg * style.amp
    kick = keyed(q, [(0, (0, 0, 0)), (0.3, (0, 0.12, -0.3)), (0.55, (0, 0.45, 0.75)), (0.8, (0, 0.05, 0.1)),
                     (1, (0, 0, 0))])
    m.ankles[:, RIGHT] += kick * leg
    balance = hold(q, 0.1, 0.9)
    m.root[:, 0] += 0.06 * balance            # weight over the standing (left) leg
    m.ankles[:, LEFT, 0] -= 0.06 * balance
    m.pitch = -0.2 * bump(q, 0.35, 0.8)
    m.wrists[:, LEFT] += np.outer(balance, [0.1, 0.15, 0.1]) * body.reach
    return m


def hopping(body: Body, p: np.ndarray, style: Style) -> Motion:
    q, m = style.q(p), standing(body, len(p))
    raised = hold(q, 0, 1, 0.12)
    hops = int(style.rng.integers(3, 7))
    air = np.abs(np.sin(np.pi * hops * q)) * ((q > 0.1) & (q < 0.9))
    m.root[:, 1] = (0.14 * style.amp * air - 0.05 * (1 - air)) * raised
    feet = np.maximum(m.root[:, 1], 0.0)
    m.ankles = planted(body, m.root, np.stack([feet, feet], axis=1))
    m.ankles[:, LEFT] += np.outer(raised, [0, 0.35, -0.25]) * body.leg   # left foot tucked up behind
    m.wrists += np.outer(raised, [0.15, 0.1, 0.05])[:, None] * [[1, 1, 1], [-1, 1, 1]] * body.reach
    return m


def jump_up(body: Body, p: np.ndarray, style: Style) -> Motion:
    q, m = style.q(p), standing(body, len(p))
    jumps = int(style.rng.integers(1, 3))
    u = (jumps * q) % 1.0
    crouch = bump(u, 0.0, 0.42) + 0.7 * bump(u, 0.66, 1.0)
    flight = np.clip(1 - ((u - 0.54) / 0.13) ** 2, 0, 1)
    m.root[:, 1] = -0.17 * crouch + 0.3 * style.amp * flight
    feet = np.maximum(m.root[:, 1], 0.0)
    m.ankles = planted(body, m.root, np.stack([feet, feet], axis=1))
    m.pitch = 0.45 * crouch
    swing = np.outer(crouch, [0.05, 0.1, -0.4]) + np.outer(flight, [0.1, 1.2, 0.6])
    m.wrists = arm_targets(body, q, [(0, HANG), (1, HANG)], m.pitch, extra=swing)
    return m


def meeting(body: Body, p: np.ndarray, style: Style) -> tuple[np.ndarray, Motion, float]:
    """Start of the two-person actions: both step toward each other until their pelvises are
    ``near`` apart. Returns (phase in the window, motion so far, near)."""
    q, m = style.q(p), standing(body, len(p))
    near = style.scene["near"]
    m.root[:, 2], m.ankles = approach(body, q, (style.scene["gap"] - near) / 2, 0.0, 0.3)
    return q, m, near


def hugging(body: Body, p: np.ndarray, style: Style) -> Motion:
    q, m, near = meeting(body, p, style)
    wrap = hold(q, 0.25, 0.9, 0.2)
    m.pitch = 0.2 * wrap
    # Wrists behind the partner's back (their pelvis `near` ahead), past the midline: left low, right high.
    behind = np.array([[-0.1, -0.35, near + 0.08], [0.12, -0.05, near + 0.08]])
    shoulder_y = body.points(m.pitch, [body.model.arms[RIGHT][0]])[:, 0, 1]
    around = behind[None] + shoulder_y[:, None, None] * [0.0, 1.0, 0.0]
    m.wrists = lerp(m.wrists, around, wrap)
    m.elbow_pole = np.array([[1.0, 0.0, -0.3], [-1.0, 0.0, -0.3]])
    return m


def handshaking(body: Body, p: np.ndarray, style: Style) -> Motion:
    q, m, near = meeting(body, p, style)
    shake = hold(q, 0.25, 0.9, 0.15)
    bob = 0.035 * style.amp * np.sin(2 * np.pi * style.scene["shakes"] * q) * hold(q, 0.4, 0.8)
    meet = np.stack([0 * q, style.scene["height"] * body.leg + bob, 0 * q + near / 2], -1)
    m.wrists[:, RIGHT] = lerp(m.wrists[:, RIGHT], meet, shake)
    m.pitch = 0.08 * shake
    return m


def picking_up(body: Body, p: np.ndarray, style: Style, sides=(RIGHT,), squat: float = 0.3) -> Motion:
    """Bend and squat to reach the floor in front with the hands of ``sides``."""
    q, m = style.q(p), standing(body, len(p))
    down = hold(q, 0, 1, 0.35)
    m.pitch = np.minimum(1.2 * style.amp, 1.4) * down
    m.root[:, 1] = -squat * body.leg * down
    m.root[:, 2] = -0.1 * body.leg * down
    m.ankles = planted(body, m.root)
    floor = np.stack([0 * q, body.ankles[0, 1] - m.root[:, 1], 0 * q + 0.3 * body.leg], -1)
    for s in sides:
        m.wrists[:, s] = lerp(m.wrists[:, s], floor + [SIDE[s] * 0.12, 0, 0], down)
    return m


def pick_up_one_hand(body: Body, p: np.ndarray, style: Style) -> Motion:
    return picking_up(body, p, style, (RIGHT,), squat=0.25)


def pick_up_two_hands(body: Body, p: np.ndarray, style: Style) -> Motion:
    return picking_up(body, p, style, (LEFT, RIGHT), squat=0.4)


def drop_trash(body: Body, p: np.ndarray, style: Style) -> Motion:
    """Walk a few steps, then hold the right hand out over a bin and let go."""
    walking = replace(style, end=style.start + 0.5 * (style.end - style.start))
    m = walk(body, p, walking, steps=int(style.rng.integers(2, 4)))
    q = np.clip((p - walking.end) / (style.end - walking.end), 0, 1)
    m.wrists[:, RIGHT] = lerp(m.wrists[:, RIGHT], arm_targets(
        body, q, [(0, (0.1, -0.4, 0.7)), (0.6, (0.1, -0.4, 0.7)), (0.75, (0.1, -0.55, 0.6)), (1, (0.1, -0.55, 0.6))],
        m.pitch, [RIGHT])[:, 0], hold(q, 0, 1, 0.3))
    m.pitch = m.pitch + 0.25 * hold(q, 0, 1, 0.3)
    return m


def walk_around(body: Body, p: np.ndarray, style: Style) -> Motion:
    return walk(body, p, style, turn=style.rng.choice([-1, 1]) * style.rng.uniform(1.5, 3.2))


def carrying(body: Body, p: np.ndarray, style: Style) -> Motion:
    m = walk(body, p, style, turn=style.rng.uniform(-0.8, 0.8))
    box = (-0.35, -0.75, 0.55)  # both hands holding a box in front of the belly
    m.wrists = arm_targets(body, style.q(p), [(0, box), (1, box)], m.pitch)
    m.pitch = m.pitch - 0.12
    return m


def retime(keys, a: float, b: float) -> list:
    """Keyframes of a 0..1 gesture moved into the window [a, b] of the clip."""
    return [(a + (b - a) * t, v) for t, v in keys]


# One arm pushed back, out and up into a sleeve, then brought forward (reach units).
SLEEVE = [(0, HANG), (0.25, (0.25, -0.75, -0.45)), (0.55, (0.5, -0.3, -0.45)), (0.8, (0.35, -0.3, 0.1)),
          (1, HANG)]
# Both hands at the collar, then one arm pulled back and down out of its sleeve.
COLLAR = (-0.35, 0.05, 0.35)
PULL = [(0, COLLAR), (0.5, (0.3, -0.7, -0.45)), (1, HANG)]


def dressing(body: Body, p: np.ndarray, style: Style, paths: dict, busy: tuple) -> Motion:
    """Arms following keyframe paths (per side, reach units), the trunk turning toward the arm
    busy in each of the two ``busy`` windows (right-turn window, left-turn window)."""
    q, m = style.q(p), standing(body, len(p))
    for s, keys in paths.items():
        m.wrists[:, s] = arm_targets(body, q, keys, m.pitch, [s])[:, 0]
    m.yaw = 0.3 * style.amp * (bump(q, *busy[0]) - bump(q, *busy[1]))
    return m


def donning(body: Body, p: np.ndarray, style: Style) -> Motion:
    zip_up = [(0.82, HANG), (0.9, (-0.3, -0.75, 0.4)), (1, (-0.3, -0.35, 0.4))]
    paths = {RIGHT: retime(SLEEVE, 0, 0.4) + zip_up,                                # right arm first
             LEFT: [(0, HANG)] + retime(SLEEVE, 0.4, 0.8) + zip_up}
    return dressing(body, p, style, paths, ((0, 0.4), (0.4, 0.8)))


def doffing(body: Body, p: np.ndarray, style: Style) -> Motion:
    paths = {LEFT: [(0, HANG), (0.15, COLLAR)] + retime(PULL, 0.3, 0.65) + [(1, HANG)],
             RIGHT: [(0, HANG), (0.15, COLLAR)] + retime(PULL, 0.6, 0.95) + [(1, HANG)]}
    return dressing(body, p, style, paths, ((0.3, 0.65), (0.6, 0.95)))


def throwing(body: Body, p: np.ndarray, style: Style) -> Motion:
    q, m = style.q(p), standing(body, len(p))
    a = style.amp
    m.wrists[:, RIGHT] = arm_targets(body, q, [(0, HANG), (0.35, (0.4, 0.55 * a, -0.55)), (0.5, (0.4, 0.65 * a, -0.5)),
                                               (0.6, (0.1, 0.35, 0.9)), (0.72, (-0.1, -0.5, 0.6)), (1, HANG)],
                                     m.pitch, [RIGHT])[:, 0]
    m.pitch = keyed(q, [(0, 0), (0.45, -0.15), (0.7, 0.4), (1, 0)])
    m.elbow_pole = np.array([[0.3, -0.2, -1.0], [-1.0, -0.3, -0.3]])
    forward, m.ankles = approach(body, q, 0.12 * body.leg, 0.35, 0.6)   # step into the throw
    m.root[:, 2] = forward
    return m


@dataclass(frozen=True)
class Action:
    name: str
    make: Callable[[Body, np.ndarray, Style], Motion]
    frames: int        # typical clip length at the dataset's frame rate
    persons: int = 1
    near: tuple[float, float] = (0.0, 0.0)   # two persons: range of their closest pelvis distance


NTU_ACTIONS: dict[int, Action] = {
    8: Action("sitting down", sitting_down, 75),
    9: Action("standing up", standing_up, 70),
    23: Action("hand waving", hand_waving, 70),
    24: Action("kicking something", kicking, 60),
    26: Action("hopping", hopping, 80),
    27: Action("jump up", jump_up, 60),
    38: Action("salute", salute, 55),
    40: Action("cross hands in front", cross_hands, 60),
    55: Action("hugging other person", hugging, 85, persons=2, near=(0.3, 0.4)),
    58: Action("handshaking", handshaking, 75, persons=2, near=(0.7, 0.9)),
}
DEMO_NTU_ACTIONS = tuple(sorted(NTU_ACTIONS))

UCLA_ACTION_TABLE: dict[int, Action] = {
    1: Action("pick up with one hand", pick_up_one_hand, 45),
    2: Action("pick up with two hands", pick_up_two_hands, 50),
    3: Action("drop trash", drop_trash, 55),
    4: Action("walk around", walk_around, 60),
    5: Action("sit down", sitting_down, 35),
    6: Action("stand up", standing_up, 35),
    8: Action("donning", donning, 90),
    9: Action("doffing", doffing, 80),
    11: Action("throw", throwing, 35),
    12: Action("carry", carrying, 60),
}


# --------------------------------------------------------------------------------------------
# Performing: motion -> joints; scene -> camera; noise; file text
# --------------------------------------------------------------------------------------------

def perform(body: Body, motion: Motion) -> np.ndarray:
    """(T, J, 3) joints of ``body`` doing ``motion``, in the person's starting frame."""
    model, L = body.model, body.lengths
    joints = body.trunk(motion.pitch)
    arms, legs = np.array(model.arms), np.array(model.legs)
    elbows, wrists = two_bone_ik(joints[:, arms[:, 0]], motion.wrists, L["upper_arm"], L["forearm"],
                                 np.broadcast_to(motion.elbow_pole, motion.wrists.shape))
    forearm = unit(wrists - elbows)
    hands = wrists + L["hand"] * forearm
    joints[:, arms[:, 1]], joints[:, arms[:, 2]], joints[:, arms[:, 3]] = elbows, wrists, hands
    if model.hand_extras:
        extras = np.array(model.hand_extras)
        forward = np.array([0.0, 0.0, 1.0])
        joints[:, extras[:, 0]] = hands + L["tip"] * forearm
        joints[:, extras[:, 1]] = hands + L["thumb"] * unit(forearm + forward - SIDE[:, None] * [0.5, 0, 0])
    knees, ankles = two_bone_ik(joints[:, legs[:, 0]], motion.ankles, L["thigh"], L["shank"],
                                np.broadcast_to(motion.knee_pole, motion.ankles.shape))
    feet = ankles + L["foot"] * unit(np.array([0.0, 0.0, 1.0]) + 0.35 * unit(ankles - knees))
    joints[:, legs[:, 1]], joints[:, legs[:, 2]], joints[:, legs[:, 3]] = knees, ankles, feet
    return np.einsum("tij,tkj->tki", rotation(motion.yaw, axis=1), joints) + motion.root[:, None, :]


def place(joints: np.ndarray, facing: float, at) -> np.ndarray:
    """Turn a person by ``facing`` (rad, about up) and put their pelvis at ``at`` in the scene."""
    return joints @ rotation(facing, axis=1).T + np.asarray(at, dtype=float)


@dataclass(frozen=True)
class Camera:
    """Where a Kinect sees the scene from: the scene turned by ``yaw`` (0 = people facing the
    sensor), tilted by ``tilt``, its origin at (x, y, distance) in camera coordinates."""
    yaw: float
    tilt: float
    x: float
    y: float
    distance: float


# Scene (left, up, forward) -> Kinect camera (x, y, z) for a person facing the sensor: their left
# is the camera's -x (as in the real files) and forward is toward the sensor (-z).
SCENE_TO_CAMERA = np.diag([-1.0, 1.0, -1.0])


def to_camera(points: np.ndarray, cam: Camera) -> np.ndarray:
    R = rotation(cam.tilt, axis=0) @ SCENE_TO_CAMERA @ rotation(cam.yaw, axis=1)
    return points @ R.T + [cam.x, cam.y, cam.distance]


# Pinhole fits of (depthX, depthY) and (colorX, colorY) to x/z, y/z on S001C001P001R001A023 (< 1.5 px).
PROJECTIONS = np.array([[366.7, 256.3], [-366.4, 208.5], [1072.2, 973.2], [-1055.5, 567.4]])


def project(xyz: np.ndarray) -> np.ndarray:
    """(..., 3) camera points -> (..., 4) depthX, depthY, colorX, colorY."""
    ratio = xyz[..., [0, 1, 0, 1]] / xyz[..., 2:3]
    return ratio * PROJECTIONS[:, 0] + PROJECTIONS[:, 1]


def sensor_noise(rng: np.random.Generator, joints: np.ndarray, model: BodyModel) -> np.ndarray:
    """Gaussian jitter (hands and feet twice as much) plus a few single-frame glitches."""
    sigma = np.full(joints.shape[1], rng.uniform(0.004, 0.01))
    distal = [a[2:] for a in model.arms] + [g[2:] for g in model.legs] + list(model.hand_extras)
    sigma[np.concatenate(distal)] *= 2.0
    noisy = joints + rng.normal(size=joints.shape) * sigma[:, None]
    glitches = rng.integers(0, 4)
    frames, parts = rng.integers(0, len(joints), glitches), rng.integers(0, joints.shape[1], glitches)
    noisy[frames, parts] += rng.normal(0, 0.08, (glitches, 3))
    return noisy


def performance(model: BodyModel, action: Action, bodies: list[Body], rng: np.random.Generator,
                scene: dict) -> list[np.ndarray]:
    """One take: every person's joints (T, J, 3) in scene coordinates (pair facing each other)."""
    T = int(round(action.frames / rng.uniform(0.8, 1.25)))
    gamma = rng.uniform(0.8, 1.25)
    p = np.linspace(0.0, 1.0, T) ** gamma  # uneven speed through the clip
    people = []
    start, end = rng.uniform(0.05, 0.2), rng.uniform(0.8, 0.95)
    for i, body in enumerate(bodies):
        shift = rng.uniform(-0.03, 0.03) if i else 0.0
        style = Style(amp=rng.uniform(0.8, 1.2), start=start + shift, end=end + shift, rng=rng, scene=scene)
        motion = action.make(body, p, style)
        motion.root = motion.root + wobble(rng, p, 0.015) * [1, 0.2, 1]   # postural sway
        motion.pitch = motion.pitch + wobble(rng, p, 0.03, 1)[:, 0]
        joints = perform(body, motion)
        if action.persons == 2:   # face each other across the scene's left-right axis
            side = 1 - 2 * i
            joints = place(joints, -side * np.pi / 2, [side * scene["gap"] / 2, 0, 0])
        people.append(joints)
    return people


def spurious_body(model: BodyModel, rng: np.random.Generator, T: int) -> np.ndarray:
    """A still, jittery extra 'person' beside the performer (Kinect false positives, cf. real A024)."""
    body = make_body(model, rng)
    still = standing(body, T)
    still.root = still.root + wobble(rng, np.linspace(0, 1, T), 0.03)
    joints = perform(body, still) + rng.normal(0, 0.015, (T, model.layout.num_joints, 3))
    side = rng.choice([-1.0, 1.0]) * rng.uniform(1.2, 2.2)
    return place(joints, rng.uniform(-np.pi, np.pi), [side, rng.uniform(-0.15, 0.05), rng.uniform(-0.6, 0.6)])


def film(rng: np.random.Generator, people: list[np.ndarray], cam: Camera, model: BodyModel,
         spurious: bool) -> list[np.ndarray]:
    """What one camera records of a take: trimmed ends, sensor noise, maybe an extra body."""
    T = len(people[0])
    first, last = rng.integers(0, 4), T - rng.integers(0, 4)
    bodies = [person[first:last] for person in people]
    if spurious:
        bodies.append(spurious_body(model, rng, last - first))
    return [to_camera(sensor_noise(rng, b, model), cam) for b in bodies]


NTU_JOINT_LINE = "%.7g %.7g %.7g %.7g %.7g %.7g %.7g 0 0 0 0 2\r\n"


def ntu_text(bodies: list[np.ndarray], body_ids: list[int]) -> str:
    """A .skeleton file: one template for the whole file, filled in one formatting call.

    Numbers are printed like the Kinect SDK's floats (7 significant digits, 'E-05' exponents).
    """
    T = len(bodies[0])
    values = []
    for xyz in bodies:
        spine = unit(xyz[:, NTU_BODY.chest] - xyz[:, 0])
        lean = np.stack([spine[:, 0], -spine[:, 2]], axis=-1)
        per_joint = np.concatenate([xyz, project(xyz)], axis=-1).reshape(T, -1)
        values.append(np.concatenate([lean, per_joint], axis=1))
    flat = np.stack(values, axis=1).ravel() + 0.0   # + 0.0: no "-0"
    body_fmt = "".join(f"{bid} 0 1 1 1 1 0 %.7g %.7g 2\r\n25\r\n" + NTU_JOINT_LINE * 25 for bid in body_ids)
    template = f"{T}\r\n" + (f"{len(bodies)}\r\n" + body_fmt) * T
    return (template % tuple(flat.tolist())).replace("e", "E")


def ucla_text(name: str, xyz: np.ndarray, label: int) -> str:
    """An all_sqe json file, formatted like the real ones (6 significant digits, no final newline)."""
    frame = "[" + ", ".join(["[%.6g, %.6g, %.6g]"] * xyz.shape[1]) + "]"
    body = ", ".join([frame] * len(xyz)) % tuple((xyz.ravel() + 0.0).tolist())
    return f'{{"file_name": "{name}", "skeletons": [{body}], "label": {label}}}'


# --------------------------------------------------------------------------------------------
# Datasets: who performs what where, so that every protocol split holds every class
# --------------------------------------------------------------------------------------------

SIZES = {"small": {"ntu": 2, "ucla": 2}, "full": {"ntu": 10, "ucla": 7}}   # takes per class
FORMATS = ("ntu-ucla", "coco17")   # the real datasets' file formats, or the NTU actions as COCO-17 2D keypoints
NTU_CAMERAS = (1, 2, 3)
UCLA_VIEWS = (1, 2, 3)
NTU60_TEST_PERFORMERS = tuple(p for p in range(1, 41) if p not in NTU60_CSUB_TRAIN_PERFORMERS)
NTU60_SETUPS = range(1, 18)
# NTU: cameras at 0 and +-45 degrees; in replication 1 the performer faces camera 3, in 2 camera 2,
# so camera 1 always sees 45-degree views and cameras 2, 3 front and side views.
NTU_CAMERA_ANGLE = {1: 0.0, 2: -45.0, 3: 45.0}
NTU_FACING = {1: 45.0, 2: -45.0}
UCLA_VIEW_ANGLE = {1: 30.0, 2: -5.0, 3: -40.0}
SPURIOUS_RATE = 0.2
FIRST_BODY_ID = 72057594037927936  # Kinect v2 body ids start at 2**56


def seeded(seed: int, *key: int) -> np.random.Generator:
    """Independent random stream per (seed, purpose, ...): a file never depends on another's draws."""
    return np.random.default_rng([seed, *key])


def ntu_take_meta(j: int, rng: np.random.Generator) -> tuple[int, int, int]:
    """(setup, performer, replication) of take j: alternating cross-subject halves and setup
    parities (in a pattern that does not tie one to the other), so every split has every class."""
    train = j % 2 == 0
    even = (j + j // 2) % 2 == 0
    performer = int(rng.choice(NTU60_CSUB_TRAIN_PERFORMERS if train else NTU60_TEST_PERFORMERS))
    setup = int(rng.choice([s for s in NTU60_SETUPS if (s % 2 == 0) == even]))
    return setup, performer, int(rng.integers(1, 3))


def ntu_name(setup: int, camera: int, performer: int, replication: int, action: int) -> str:
    return f"S{setup:03d}C{camera:03d}P{performer:03d}R{replication:03d}A{action:03d}"


def ntu_camera(seed: int, setup: int, camera: int, replication: int, rng: np.random.Generator) -> Camera:
    """Camera geometry fixed per (setup, camera) like a studio layout, facing jittered per take."""
    layout = seeded(seed, 3, setup, camera)
    yaw = np.deg2rad(NTU_FACING[replication] - NTU_CAMERA_ANGLE[camera] + rng.uniform(-8, 8))
    return Camera(yaw=yaw, tilt=np.deg2rad(layout.uniform(-8, 8)), x=layout.uniform(-0.4, 0.4) + rng.uniform(-0.2, 0.2),
                  y=layout.uniform(-0.1, 0.35), distance=layout.uniform(2.6, 3.8) + rng.uniform(-0.2, 0.2))


def ntu_recordings(seed: int, takes: int) -> Iterator[tuple[str, list[np.ndarray], list[int], bool]]:
    """(sample name, camera-space bodies (T, 25, 3), Kinect body ids, spurious extra body?) of every
    file of the NTU demo, in the order they are made (the random draws do not depend on the format)."""
    missing = official_missing("ntu60")
    used: set[tuple[int, int, int, int]] = set()
    for action_id, action in NTU_ACTIONS.items():
        for j in range(takes):
            rng = seeded(seed, 0, action_id, j)
            while True:   # redraw on a clash with an earlier take or the official missing list
                setup, performer, rep = ntu_take_meta(j, rng)
                names = [ntu_name(setup, c, performer, rep, action_id) for c in NTU_CAMERAS]
                if (setup, performer, rep, action_id) not in used and not missing.intersection(names):
                    break
            used.add((setup, performer, rep, action_id))
            cast = [performer] + ([int(rng.choice([p for p in NTU60_CSUB_TRAIN_PERFORMERS + NTU60_TEST_PERFORMERS
                                                   if p != performer]))] if action.persons == 2 else [])
            bodies = [make_body(NTU_BODY, seeded(seed, 1, pid)) for pid in cast]   # same body in every take
            scene = dict(gap=rng.uniform(1.2, 1.6), near=rng.uniform(*action.near),
                         height=rng.uniform(0.2, 0.35), shakes=int(rng.integers(2, 5)))
            people = performance(NTU_BODY, action, bodies, rng, scene)
            ids = [FIRST_BODY_ID + int(i) for i in rng.choice(np.arange(3000, 20000), 3, replace=False)]
            for camera, name in zip(NTU_CAMERAS, names):
                spurious = action.persons == 1 and rng.random() < SPURIOUS_RATE
                bodies_xyz = film(rng, people, ntu_camera(seed, setup, camera, rep, rng), NTU_BODY, spurious)
                parse_ntu_name(name)   # the name must be one the readers accept
                yield name, bodies_xyz, ids[:len(bodies_xyz)], spurious


def generate_ntu(out_dir: Path, seed: int, takes: int) -> Counter:
    out_dir.mkdir(parents=True, exist_ok=True)
    counts: Counter = Counter()
    for name, bodies_xyz, ids, spurious in ntu_recordings(seed, takes):
        write_text_atomic(out_dir / f"{name}.skeleton", ntu_text(bodies_xyz, ids), newline="")   # CRLF kept
        counts["ntu"] += 1
        counts["ntu_two_body"] += len(bodies_xyz) == 2
        counts["ntu_spurious"] += spurious
    return counts


def generate_ucla(out_dir: Path, seed: int, takes: int) -> Counter:
    out_dir.mkdir(parents=True, exist_ok=True)
    counts: Counter = Counter()
    for k, (action_id, action) in enumerate(UCLA_ACTION_TABLE.items()):
        for j in range(takes):
            rng = seeded(seed, 2, action_id, j)
            subject, episode = 1 + (j + 3 * k) % 10, j // 10
            body = make_body(UCLA_BODY, seeded(seed, 4, subject))
            people = performance(UCLA_BODY, action, [body], rng, {})
            facing = rng.uniform(-20, 20)   # where the subject faces in this take, seen by all views
            for view in UCLA_VIEWS:
                name = f"a{action_id:02d}_s{subject:02d}_e{episode:02d}_v{view:02d}"
                cam = Camera(yaw=np.deg2rad(UCLA_VIEW_ANGLE[view] + facing + rng.uniform(-8, 8)),
                             tilt=np.deg2rad(rng.uniform(-10, 5)), x=rng.uniform(-0.6, 0.6),
                             y=rng.uniform(-0.1, 0.4), distance=rng.uniform(2.0, 3.4))
                (xyz,) = film(rng, people, cam, UCLA_BODY, spurious=False)
                write_text_atomic(out_dir / f"{name}.json", ucla_text(name, xyz, parse_ucla_name(name).label))
                counts["ucla"] += 1
    return counts


def generate_demo(out_dir: str | Path, seed: int = 0, size: str = "full") -> dict:
    """Write ``out_dir/ntu/txt60skel/*.skeleton`` and ``out_dir/ucla/*.json``; return file counts.

    The same (seed, size) always gives the same bytes; "small" is the first takes of "full".
    """
    if size not in SIZES:
        raise ValueError(f"unknown demo size {size!r}; choose from {', '.join(SIZES)}")
    out_dir = Path(out_dir)
    counts = generate_ntu(out_dir / "ntu" / "txt60skel", seed, SIZES[size]["ntu"])
    counts += generate_ucla(out_dir / "ucla", seed, SIZES[size]["ucla"])
    return dict(counts, ntu_dir=str(out_dir / "ntu" / "txt60skel"), ucla_dir=str(out_dir / "ucla"))


def generate_coco17(out_dir: str | Path, seed: int = 0, size: str = "full") -> dict:
    """The NTU demo's recordings as a custom dataset of COCO-17 2D keypoints in ``out_dir`` (its
    root: skeletons/<NTU name>.npy, labels.csv, classes.txt; README: Your own skeletons).

    Each body's camera-space joints (before any centring: projection needs the depth) become image
    keypoints through ``ntu_to_coco2d``; labels are the 10 actions in NTU order, named as NTU names
    them; the split is NTU-60's cross-subject one. The same (seed, size) gives the same files.
    """
    if size not in SIZES:
        raise ValueError(f"unknown demo size {size!r}; choose from {', '.join(SIZES)}")
    ntu60 = get_dataset("ntu60")
    arrays, labels, splits = {}, {}, {}
    for name, bodies_xyz, _, _ in ntu_recordings(seed, SIZES[size]["ntu"]):
        keypoints = ntu_to_coco2d(np.stack(bodies_xyz)).astype(np.float32)   # (M, T, 17, 2) pixels
        arrays[name] = keypoints[0] if len(keypoints) == 1 else keypoints
        labels[name] = DEMO_NTU_ACTIONS.index(parse_ntu_name(name).action) + 1
        splits[name] = "train" if ntu60.is_train(name, "csub") else "test"
    classes = [ntu120_class_names()[action - 1] for action in DEMO_NTU_ACTIONS]
    write_custom_dataset(out_dir, arrays, labels, splits, classes)
    return {"coco17": len(arrays), "coco17_dir": str(out_dir)}
