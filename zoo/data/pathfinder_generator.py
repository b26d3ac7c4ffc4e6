"""Our generator of the Pathfinder distribution (Linsley et al. 2018 "snakes", as used by LRA).

An image holds two *target* snakes and several short *distractor* snakes on a black background, plus
two marker discs. Label 1: the markers sit on the two ends of one target snake; label 0: on one end of
each target snake (so negatives also show two long paths). The task is to tell whether the markers are
connected.

Geometry (continuous pixel coordinates of the ``resolution`` x ``resolution`` image; pixel (i, j) covers
[j, j+1) x [i, i+1)):

* A snake is a chain of ``num_paddles`` *paddles*: capsules (segment of length ``paddle_length``,
  stroke width ``thickness``) separated by a clear gap of about ``gap`` pixels along the chain -- a dashed
  curve. Paddle k+1 starts ``thickness + gap`` after the end of paddle k, turned by an angle
  Delta in {0, +-pi/16, ..., +-pi/4} drawn with probability proportional to
  ``exp(-continuity * |Delta| / (pi / 8))`` among the candidates that are allowed (smooth turns; a larger
  continuity gives straighter snakes). The first paddle has a uniform start point and a uniform
  direction among the 32 multiples of pi/16 (so every paddle direction is one of these 32). Paddle start
  points are snapped to the nearest anti-aliasing sub-pixel centre, so each paddle is drawn from one of 32
  precomputed sub-pixel stamps (this makes the generator fast; the snapping moves a start by at most
  ``0.71 / antialias`` pixels).
* Allowed = inside the canvas (with room for a marker), and the paddle's *touched* pixels (any
  antialiasing sub-sample inked) avoid the occupancy mask: the touched pixels of every other path and of
  the same snake's paddles older than the previous two, dilated by ``margin`` pixels (Chebyshev). The
  touched pixels of consecutive paddles must be 8-adjacent, so each snake is one 8-connected set of
  nonzero pixels while different paths are >= margin + 1 pixels apart (never 8-adjacent).
* Target snakes reserve a disc of ``marker_radius`` at both ends (so distractors keep away from any
  possible marker); the two marker centres are at least ``seed_distance`` apart, for both labels.
* Distractors: ``ceil(distractor_paddles / distractor_length)`` snakes of ``distractor_length =
  max(1, contour_length // 3)`` paddles, placed best-effort after the targets (a distractor that does not
  fit after a few tries is left out; the count of missing distractors is logged per batch).
* Rendering: every path and marker has intensity 1, sampled at ``antialias`` x ``antialias``
  sub-pixels and averaged per pixel (antialiased), stored as uint8 0..255.

At 32 x 32 a marker fully covers at least one pixel (value 255), a 0.5-wide path never does.
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass

import numpy as np

GENERATOR_VERSION = 1
NUM_DIRECTIONS = 32  # paddle directions are multiples of 2 pi / 32 = pi / 16
MAX_TURN_STEPS = 4  # turns up to +-4 pi / 16 = +-pi / 4
CONTINUITY_ANGLE = math.pi / 8
DIFFICULTY_DIRS = {6: "curv_baseline", 9: "curv_contour_length_9", 14: "curv_contour_length_14"}


@dataclass(frozen=True)
class PathfinderParams:
    """Generator parameters; ``for_resolution`` gives the LRA-like presets."""

    resolution: int
    contour_length: int  # paddles per target snake (the LRA "difficulty": 6, 9 or 14)
    paddle_length: float
    thickness: float
    gap: float
    margins: tuple  # the margin of an image is drawn uniformly from these
    marker_radius: float
    seed_distance: float
    continuity: float
    distractor_paddles: int
    antialias: int = 4
    max_image_tries: int = 200
    max_target_tries: int = 200
    max_distractor_tries: int = 8

    @property
    def distractor_length(self) -> int:
        return max(1, self.contour_length // 3)

    @property
    def num_distractors(self) -> int:
        return -(-self.distractor_paddles // self.distractor_length)

    @classmethod
    def for_resolution(cls, resolution: int, contour_length: int) -> "PathfinderParams":
        """Pathfinder-32 / Path-X (128) presets: paddle length, width, margin, marker radius, seed distance
        and continuity follow the LRA Pathfinder data (Tay et al. 2021, "Long Range Arena", made with the
        Pathfinder generator of Linsley et al. 2018); paddle length 5 at 128 and the gaps are our choice."""
        if contour_length not in DIFFICULTY_DIRS:
            raise ValueError(f"difficulty={contour_length!r} is not supported; allowed: {sorted(DIFFICULTY_DIRS)}")
        if resolution == 32:
            return cls(resolution=32, contour_length=contour_length, paddle_length=2.0, thickness=0.5, gap=0.5,
                       margins=(1,), marker_radius=1.5, seed_distance=7.0, continuity=1.0, distractor_paddles=12)
        if resolution == 128:
            return cls(resolution=128, contour_length=contour_length, paddle_length=5.0, thickness=1.5, gap=1.0,
                       margins=(2, 3), marker_radius=3.0, seed_distance=20.0, continuity=1.8,
                       distractor_paddles=150)
        raise ValueError(f"the Pathfinder generator supports resolution 32 or 128, got {resolution!r}")

    def to_dict(self) -> dict:
        return dict(asdict(self), version=GENERATOR_VERSION)


def turn_weights(continuity: float) -> np.ndarray:
    """Unnormalised probabilities of the turns -MAX_TURN_STEPS..MAX_TURN_STEPS (in units of pi / 16)."""
    angles = np.arange(-MAX_TURN_STEPS, MAX_TURN_STEPS + 1) * (2 * math.pi / NUM_DIRECTIONS)
    return np.exp(-continuity * np.abs(angles) / CONTINUITY_ANGLE)


#: (cos, sin) of the NUM_DIRECTIONS paddle directions.
UNIT_VECTORS = tuple(
    (math.cos(2 * math.pi * k / NUM_DIRECTIONS), math.sin(2 * math.pi * k / NUM_DIRECTIONS))
    for k in range(NUM_DIRECTIONS)
)


def _unit(direction: int) -> np.ndarray:
    return np.array(UNIT_VECTORS[direction])


@functools.lru_cache(maxsize=None)
def paddle_stamps(paddle_length: float, thickness: float, s: int):
    """Sub-pixel ink of a paddle starting at a sub-pixel centre, for each of the NUM_DIRECTIONS directions.

    Returns (ink, cells): ``ink[k]`` is (m, 2) (row, col) sub-pixel offsets from the start sub-pixel;
    ``cells[k][fr][fc]`` is (n, 2) pixel offsets of the touched pixels when the start sub-pixel is at
    position (fr, fc) inside its pixel.
    """
    reach = int(math.ceil((paddle_length + thickness) * s)) + 1
    offsets = np.arange(-reach, reach + 1)
    rows, cols = np.meshgrid(offsets, offsets, indexing="ij")
    ys, xs = rows / s, cols / s  # centre offsets in pixels
    ink, cells = [], []
    for k in range(NUM_DIRECTIONS):
        d = paddle_length * _unit(k)
        t = np.clip((xs * d[0] + ys * d[1]) / (d @ d), 0.0, 1.0)
        mask = (xs - t * d[0]) ** 2 + (ys - t * d[1]) ** 2 <= (thickness / 2) ** 2
        sub = np.stack([rows[mask], cols[mask]], axis=1)
        ink.append(sub)
        cells.append([[np.unique((sub + (fr, fc)) // s, axis=0) for fc in range(s)] for fr in range(s)])
    return ink, cells


def disc_ink(center: np.ndarray, radius: float, res: int, s: int) -> np.ndarray:
    """(m, 2) (row, col) indices of the sub-pixels whose centres lie within radius of center (x, y)."""
    low = np.maximum(np.floor((center - radius) * s).astype(int), 0)
    high = np.minimum(np.ceil((center + radius) * s).astype(int) + 1, res * s)
    rows, cols = np.meshgrid(np.arange(low[1], high[1]), np.arange(low[0], high[0]), indexing="ij")
    mask = ((cols + 0.5) / s - center[0]) ** 2 + ((rows + 0.5) / s - center[1]) ** 2 <= radius**2
    return np.stack([rows[mask], cols[mask]], axis=1)


@dataclass
class _Stroke:
    """A drawn shape: its sub-pixel ink (m, 2) and the pixels it touches (n, 2), both (row, col)."""

    ink: np.ndarray
    cells: np.ndarray


class _Canvas:
    """Occupancy and ink of one image under construction."""

    def __init__(self, params: PathfinderParams, margin: int):
        self.p = params
        self.margin = margin
        res, s = params.resolution, params.antialias
        self.blocked = np.zeros((res, res), dtype=bool)  # touched pixels of committed paths, dilated
        self.ink = np.zeros((res * s, res * s), dtype=bool)  # sub-pixel ink
        self.stamps = paddle_stamps(params.paddle_length, params.thickness, s)
        self.turn_weights = turn_weights(params.continuity)

    def image(self) -> np.ndarray:
        """Anti-aliased uint8 image: the fraction of inked sub-pixels of each pixel, times 255, rounded."""
        res, s = self.p.resolution, self.p.antialias
        coverage = self.ink.reshape(res, s, res, s).mean(axis=(1, 3))
        return np.round(coverage * 255.0).astype(np.uint8)


def _dilate_into(target: np.ndarray, cells: np.ndarray, margin: int) -> None:
    """Set every pixel within Chebyshev distance ``margin`` of ``cells`` in ``target``."""
    for r, c in cells.tolist():
        target[max(r - margin, 0) : r + margin + 1, max(c - margin, 0) : c + margin + 1] = True


def _adjacent(a: np.ndarray, b: np.ndarray) -> bool:
    """True if some pixel of ``a`` and some pixel of ``b`` are equal or 8-neighbours."""
    return bool((np.abs(a[:, None, :] - b[None, :, :]).max(axis=-1) <= 1).any())


class _SnakeBuilder:
    """Grows one snake on a canvas; nothing is committed to the canvas until ``commit``."""

    def __init__(self, canvas: _Canvas, rng: np.random.Generator, bound: float):
        self.canvas = canvas
        self.rng = rng
        self.low, self.high = bound, canvas.p.resolution - bound  # paddle end points stay in [low, high]
        self.strokes: list[_Stroke] = []
        self.own_blocked = np.zeros_like(canvas.blocked)  # own paddles older than the last two, dilated
        self.discs: list[_Stroke] = []
        self.start = None
        self.end = None

    def _paddle(self, x: float, y: float, direction: int):
        """(stroke, (start_x, start_y), (end_x, end_y)) of the paddle from (x, y) (snapped to its sub-pixel
        centre) along ``direction`` if it is allowed (see module docstring), else None."""
        p = self.canvas.p
        s = p.antialias
        sub_row, sub_col = math.floor(y * s), math.floor(x * s)
        start_x, start_y = (sub_col + 0.5) / s, (sub_row + 0.5) / s
        ux, uy = UNIT_VECTORS[direction]
        end_x, end_y = start_x + p.paddle_length * ux, start_y + p.paddle_length * uy
        low, high = self.low, self.high
        if not (low <= start_x <= high and low <= start_y <= high and low <= end_x <= high and low <= end_y <= high):
            return None
        ink, cells = self.canvas.stamps
        touched = cells[direction][sub_row % s][sub_col % s] + (sub_row // s, sub_col // s)
        rows, cols = touched[:, 0], touched[:, 1]
        if self.canvas.blocked[rows, cols].any() or self.own_blocked[rows, cols].any():
            return None
        if self.strokes and not _adjacent(touched, self.strokes[-1].cells):
            return None
        return _Stroke(ink[direction] + (sub_row, sub_col), touched), (start_x, start_y), (end_x, end_y)

    def grow(self, num_paddles: int) -> bool:
        """Try to grow a snake of ``num_paddles`` paddles from a random start; True on success.

        Each turn is drawn from the continuity weights restricted to the allowed turns: draw among the
        remaining turns, discard a disallowed one and draw again.
        """
        p, rng = self.canvas.p, self.rng
        direction = int(rng.integers(NUM_DIRECTIONS))
        x, y = rng.uniform(self.low, self.high, size=2).tolist()
        placed = self._paddle(x, y, direction)
        if placed is None:
            return False
        stroke, start, end = placed
        self.strokes = [stroke]
        step = p.thickness + p.gap
        base_weights = self.canvas.turn_weights.tolist()
        for _ in range(num_paddles - 1):
            weights = list(base_weights)
            remaining = sum(weights)
            placed = None
            while placed is None and remaining > 1e-12:
                target, cumulative = rng.random() * remaining, 0.0
                for turn, weight in enumerate(weights):
                    if weight > 0.0:
                        cumulative, chosen = cumulative + weight, turn
                        if target < cumulative:
                            break
                turn = chosen
                remaining -= weights[turn]
                weights[turn] = 0.0
                new_direction = (direction + turn - MAX_TURN_STEPS) % NUM_DIRECTIONS
                ux, uy = UNIT_VECTORS[new_direction]
                placed = self._paddle(end[0] + step * ux, end[1] + step * uy, new_direction)
            if placed is None:
                return False
            stroke, _, end = placed
            direction = new_direction
            if len(self.strokes) >= 2:  # the paddle two back becomes an obstacle for this snake
                _dilate_into(self.own_blocked, self.strokes[-2].cells, self.canvas.margin)
            self.strokes.append(stroke)
        self.start, self.end = np.array(start), np.array(end)
        return True

    def add_end_discs(self, radius: float) -> bool:
        """Reserve marker discs at both ends; False if one would touch another path."""
        p = self.canvas.p
        s = p.antialias
        discs = []
        for point in (self.start, self.end):
            ink = disc_ink(point, radius, p.resolution, s)
            cells = np.unique(ink // s, axis=0)
            if self.canvas.blocked[cells[:, 0], cells[:, 1]].any():
                return False
            discs.append(_Stroke(ink, cells))
        self.discs = discs
        return True

    def commit(self) -> None:
        """Add the snake (and its reserved discs) to the canvas' occupancy, and its paddles to the ink."""
        for stroke in self.strokes + self.discs:
            _dilate_into(self.canvas.blocked, stroke.cells, self.canvas.margin)
        for stroke in self.strokes:
            self.canvas.ink[stroke.ink[:, 0], stroke.ink[:, 1]] = True


def _draw_target(canvas: _Canvas, rng: np.random.Generator) -> _SnakeBuilder | None:
    p = canvas.p
    bound = p.marker_radius + 0.5
    for _ in range(p.max_target_tries):
        snake = _SnakeBuilder(canvas, rng, bound)
        if snake.grow(p.contour_length) and snake.add_end_discs(p.marker_radius):
            snake.commit()
            return snake
    return None


def generate_image(params: PathfinderParams, label: int, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """One (resolution, resolution) uint8 image with the given label, and facts about it.

    Facts: ``markers`` ((x, y) of both marker centres), ``margin``, ``distractors_missing``.
    """
    if label not in (0, 1):
        raise ValueError(f"label must be 0 or 1, got {label!r}")
    p = params
    s, res = p.antialias, p.resolution
    for _ in range(p.max_image_tries):
        margin = int(rng.choice(p.margins))
        canvas = _Canvas(p, margin)
        first = _draw_target(canvas, rng)
        second = _draw_target(canvas, rng) if first is not None else None
        if second is None:
            continue
        if label == 1:
            marked = first if rng.random() < 0.5 else second
            markers = [marked.start, marked.end]
        else:
            markers = [first.start if rng.random() < 0.5 else first.end,
                       second.start if rng.random() < 0.5 else second.end]
        if np.hypot(*(markers[0] - markers[1])) < p.seed_distance:
            continue
        missing = 0
        for _ in range(p.num_distractors):
            placed = False
            for _ in range(p.max_distractor_tries):
                snake = _SnakeBuilder(canvas, rng, p.thickness / 2 + 0.5)
                if snake.grow(p.distractor_length):
                    snake.commit()
                    placed = True
                    break
            missing += not placed
        for point in markers:
            ink = disc_ink(point, p.marker_radius, res, s)
            canvas.ink[ink[:, 0], ink[:, 1]] = True
        return canvas.image(), {"markers": np.array(markers), "margin": margin, "distractors_missing": missing}
    raise RuntimeError(f"could not place two target snakes in {p.max_image_tries} tries with {p}")


def generate_batch(params: PathfinderParams, num_images: int, seed_sequence: np.random.SeedSequence):
    """``num_images`` images with exactly balanced labels in a seeded random order.

    Returns (images (num_images, res, res) uint8, labels (num_images,) int64, facts list).
    """
    rng = np.random.default_rng(seed_sequence)
    labels = rng.permutation(np.arange(num_images) % 2)
    images = np.zeros((num_images, params.resolution, params.resolution), dtype=np.uint8)
    facts = []
    for i, label in enumerate(labels):
        images[i], info = generate_image(params, int(label), rng)
        facts.append(info)
    return images, labels.astype(np.int64), facts
