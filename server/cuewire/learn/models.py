"""Learned models as the server uses them: JSON files read once per (re)load and evaluated in
pure Python, so the hot path never imports numpy or scikit-learn (training.py writes them).

Both files carry ``format``, ``version`` (of the file format), ``id`` (names the trained
parameters: every audit record says which models decided it) and ``features`` (the feature
vector's version and names, features.py). A file of another format version, or trained on
another feature version, is refused with a message naming the file.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypeVar

import msgspec

from ..errors import ModelError, Problem
from ..protocol import error_reason
from ..settings import Settings
from . import features

FORMAT_VERSION: Final = 1
SEGMENTS: Final = "cuewire.segments"
PROPENSITY: Final = "cuewire.propensity"


class FeatureSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    version: int
    names: list[str]


class Scaler(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    mean: list[float]
    scale: list[float]


class Segment(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: str
    size: int
    centroid: list[float]  # in the standardised space
    distinctive: dict[str, float] = {}  # the features furthest from the mean (z-scores)


class SegmentsFile(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    format: str
    version: int
    id: str
    features: FeatureSpec
    scaler: Scaler
    segments: list[Segment]
    metrics: dict[str, float] = {}


class PropensityFile(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    format: str
    version: int
    id: str
    target: str
    features: FeatureSpec
    scaler: Scaler
    coef: list[float]
    intercept: float
    metrics: dict[str, float] = {}


_Spec = TypeVar("_Spec", SegmentsFile, PropensityFile)


def model_id(kind: str, params: Any) -> str:
    """``<kind>-<12 hex>``: names the trained parameters (the same fit, the same id)."""
    digest = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()
    return f"{kind}-{digest[:12]}"


class _Scaled:
    """A model on standardised features: ``(x - mean) / scale``, as ``x * inv - off``."""

    def __init__(self, scaler: Scaler) -> None:
        self._inv = tuple(1.0 / s for s in scaler.scale)
        self._off = tuple(m / s for m, s in zip(scaler.mean, scaler.scale, strict=True))

    def standardised(self, x: Sequence[float]) -> list[float]:
        return [v * i - o for v, i, o in zip(x, self._inv, self._off, strict=True)]


class SegmentModel(_Scaled):
    def __init__(self, spec: SegmentsFile) -> None:
        super().__init__(spec.scaler)
        self.spec = spec
        self.id = spec.id
        self._centroids = [(s.name, tuple(s.centroid)) for s in spec.segments]

    def assign(self, x: Sequence[float]) -> str:
        """The name of the segment whose centroid is nearest to ``x`` (standardised)."""
        z = self.standardised(x)
        best, best_d = "", math.inf
        for name, centroid in self._centroids:
            d = sum((a - b) * (a - b) for a, b in zip(z, centroid, strict=True))
            if d < best_d:
                best, best_d = name, d
        return best


class PropensityModel(_Scaled):
    def __init__(self, spec: PropensityFile) -> None:
        super().__init__(spec.scaler)
        self.spec = spec
        self.id = spec.id
        self._coef = tuple(spec.coef)

    def score(self, x: Sequence[float]) -> float:
        """The probability of the target (a logistic regression: sigmoid of a dot product)."""
        z = self.standardised(x)
        t = self.spec.intercept + sum(c * v for c, v in zip(self._coef, z, strict=True))
        if t < -30:
            return 0.0
        return 1.0 / (1.0 + math.exp(-t))


@dataclass(frozen=True)
class Models:
    """The models the rules' learned facts use; either may be absent (the fact is then missing
    and a condition on it false)."""

    segments: SegmentModel | None = None
    propensity: PropensityModel | None = None

    @property
    def version(self) -> str:
        """What every audit record's ``model`` field holds: the ids of the loaded models."""
        return ",".join(m.id for m in (self.segments, self.propensity) if m is not None)


NO_MODELS: Final = Models()


def _problem(path: Path, message: str) -> ModelError:
    return ModelError([Problem(path, 1, 1, message)])


def _decode(path: Path, raw: bytes, kind: str, cls: type[_Spec]) -> _Spec:
    try:
        head = json.loads(raw)
    except ValueError as exc:
        raise _problem(path, f"not JSON: {exc}") from exc
    if not isinstance(head, dict) or head.get("format") != kind:
        found = head.get("format") if isinstance(head, dict) else None
        raise _problem(path, f"not a {kind} model file (format: {found!r})")
    if head.get("version") != FORMAT_VERSION:
        raise _problem(
            path,
            f"{kind} format version {head.get('version')!r}; this Cuewire reads version "
            f"{FORMAT_VERSION}: train the model again with this Cuewire",
        )
    try:
        spec = msgspec.convert(head, cls)
    except msgspec.ValidationError as exc:
        raise _problem(path, error_reason(exc)) from exc
    names = spec.features
    if names.version != features.VERSION or tuple(names.names) != features.NAMES:
        raise _problem(
            path,
            f"trained on features version {names.version}; this Cuewire computes version "
            f"{features.VERSION} ({len(features.NAMES)} features): train the model again",
        )
    return spec


def _check_lengths(path: Path, scaler: Scaler, vectors: list[list[float]]) -> None:
    n = len(features.NAMES)
    if len(scaler.mean) != n or len(scaler.scale) != n or any(len(v) != n for v in vectors):
        raise _problem(path, f"every vector must have {n} values, one per feature")
    if any(s <= 0 or not math.isfinite(s) for s in scaler.scale):
        raise _problem(path, "scaler.scale: every value must be a positive number")


def load_segments(path: Path) -> SegmentModel:
    spec = _decode(path, _read(path), SEGMENTS, SegmentsFile)
    if not spec.segments:
        raise _problem(path, "segments: at least one segment")
    _check_lengths(path, spec.scaler, [s.centroid for s in spec.segments])
    return SegmentModel(spec)


def load_propensity(path: Path) -> PropensityModel:
    spec = _decode(path, _read(path), PROPENSITY, PropensityFile)
    _check_lengths(path, spec.scaler, [spec.coef])
    return PropensityModel(spec)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise _problem(path, f"cannot read the model: {exc.strerror}") from exc


@dataclass(frozen=True)
class ModelFiles:
    """Where the models are: set paths (settings), or by default ``<rules dir>/models/``, where
    a missing file means no model (and one added later is loaded with the next reload)."""

    segments: Path | None = None
    propensity: Path | None = None
    optional: tuple[Path, ...] = ()  # the defaults: loaded when they exist

    @classmethod
    def beside(
        cls, rules_dir: Path, segments: Path | None = None, propensity: Path | None = None
    ) -> ModelFiles:
        default = rules_dir / "models"
        seg = segments or default / "segments.json"
        prop = propensity or default / "propensity.json"
        optional = tuple(p for p, given in ((seg, segments), (prop, propensity)) if not given)
        return cls(seg, prop, optional)

    @classmethod
    def of(cls, settings: Settings) -> ModelFiles:
        return cls.beside(settings.rules_dir, settings.segments_model, settings.propensity_model)

    def paths(self) -> list[Path]:
        """The files whose changes reload the rules (runtime.py)."""
        return [p for p in (self.segments, self.propensity) if p is not None]

    def _wanted(self, path: Path | None) -> Path | None:
        if path is None or (path in self.optional and not path.exists()):
            return None
        return path

    def load(self) -> Models:
        """Both models, or ModelError naming the file that cannot be used."""
        segments, propensity = self._wanted(self.segments), self._wanted(self.propensity)
        return Models(
            load_segments(segments) if segments else None,
            load_propensity(propensity) if propensity else None,
        )
