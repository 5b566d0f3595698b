"""Fitting the models with scikit-learn (the ``learn`` extra): ``cuewire segment`` and ``cuewire
train``. Only the CLI imports this module; the server reads the JSON it writes (models.py)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from ..errors import ConfigError
from . import features
from .dataset import Row
from .models import FORMAT_VERSION, PROPENSITY, SEGMENTS, model_id

try:
    import numpy as np
    from sklearn.cluster import MiniBatchKMeans
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler
except ImportError as exc:  # pragma: no cover - depends on the install
    raise ConfigError("training needs scikit-learn: pip install 'cuewire[learn]'") from exc

# How a segment is named after a feature far above (first) or below (second) the average.
LABELS: dict[str, tuple[str, str]] = {
    "pages": ("many pages", "one page"),
    "duration": ("long visit", "short visit"),
    "active": ("attentive", "inattentive"),
    "scroll": ("reads to the end", "no scrolling"),
    "products": ("many products", "no products"),
    "cart_adds": ("adds to cart", "no cart"),
    "cart_value": ("big cart", "no cart value"),
    "checkout": ("checks out", "no checkout"),
    "hesitations": ("hesitates", "no hesitation"),
    "rage_clicks": ("rage clicks", "calm clicks"),
    "exit_intents": ("about to leave", "no exit intent"),
    "sessions": ("frequent visitor", "first visits"),
    "recency": ("long absent", "recent visitor"),
    "past_purchases": ("bought before", "never bought"),
    "mobile": ("mobile", "desktop"),
    "search": ("from search", "not from search"),
    "campaign": ("from a campaign", "no campaign"),
}
DISTINCTIVE = 0.5  # a feature names a segment when its centroid is this many deviations away


def _matrix(rows: Sequence[Row]) -> Any:
    if len(rows) < 2:
        raise ConfigError(f"{len(rows)} sessions: training needs at least 2")
    return np.array([r.x for r in rows], dtype=float)


def _scaler(x: Any) -> tuple[Any, dict[str, list[float]]]:
    scaler = StandardScaler().fit(x)
    scale = [float(s) if s > 0 else 1.0 for s in scaler.scale_]
    mean = [float(m) for m in scaler.mean_]
    return (x - np.array(mean)) / np.array(scale), {"mean": mean, "scale": scale}


def _distinctive(centroid: Sequence[float]) -> dict[str, float]:
    order = sorted(range(len(centroid)), key=lambda i: -abs(centroid[i]))
    return {features.NAMES[i]: round(float(centroid[i]), 3) for i in order[:4]}


def segment_name(centroid: Sequence[float], taken: set[str]) -> str:
    """A readable name from the centroid's most distinctive features, unique among ``taken``."""
    order = sorted(range(len(centroid)), key=lambda i: -abs(centroid[i]))
    words = [
        LABELS[features.NAMES[i]][0 if centroid[i] > 0 else 1]
        for i in order
        if abs(centroid[i]) >= DISTINCTIVE
    ] or ["average"]
    for size in range(2, len(words) + 1):
        name = ", ".join(words[:size])
        if name not in taken:
            return name
    name, n = ", ".join(words[:2]), 2
    while f"{name} ({n})" in taken:
        n += 1
    return f"{name} ({n})" if name in taken else name


def fit_segments(rows: Sequence[Row], k: int, seed: int = 0) -> dict[str, Any]:
    """k-means on the standardised features; the segments file (models.SegmentsFile)."""
    x, scaler = _scaler(_matrix(rows))
    if k < 1 or k > len(rows):
        raise ConfigError(f"--k {k}: give between 1 and the number of sessions ({len(rows)})")
    km = MiniBatchKMeans(n_clusters=k, random_state=seed, n_init=10, batch_size=1024).fit(x)
    sizes = np.bincount(km.labels_, minlength=k)
    taken: set[str] = set()
    segments = []
    for i in np.argsort(-sizes):
        centroid = [round(float(c), 6) for c in km.cluster_centers_[i]]
        name = segment_name(centroid, taken)
        taken.add(name)
        distinctive = _distinctive(centroid)
        segments.append(
            {"name": name, "size": int(sizes[i]), "centroid": centroid, "distinctive": distinctive}
        )
    params = {"scaler": scaler, "segments": segments}
    return {
        "format": SEGMENTS,
        "version": FORMAT_VERSION,
        "id": model_id("segments", params),
        "features": {"version": features.VERSION, "names": list(features.NAMES)},
        **params,
        "metrics": {"sessions": len(rows), "k": k, "inertia": round(float(km.inertia_), 3)},
    }


def fit_propensity(
    rows: Sequence[Row], target: str = features.PURCHASE, seed: int = 0, held_out: float = 0.25
) -> dict[str, Any]:
    """Logistic regression of conversion on the standardised features, fitted on a split and
    judged on the rest (ROC AUC beside the constant baseline's 0.5); the propensity file."""
    x_all = _matrix(rows)
    y = np.array([r.converted for r in rows], dtype=int)
    if y.min() == y.max():
        raise ConfigError(
            f"every one of the {len(rows)} sessions {'did' if y[0] else 'did not'} reach "
            f"{target!r}: training needs both kinds"
        )
    x_train, x_test, y_train, y_test = train_test_split(
        x_all, y, test_size=held_out, random_state=seed, stratify=y
    )
    z_train, scaler = _scaler(x_train)
    model = LogisticRegression(max_iter=1000).fit(z_train, y_train)
    z_test = (x_test - np.array(scaler["mean"])) / np.array(scaler["scale"])
    auc = float(roc_auc_score(y_test, model.predict_proba(z_test)[:, 1]))
    baseline = float(roc_auc_score(y_test, np.full(len(y_test), y_train.mean())))
    params = {
        "target": target,
        "scaler": scaler,
        "coef": [round(float(c), 6) for c in model.coef_[0]],
        "intercept": round(float(model.intercept_[0]), 6),
    }
    return {
        "format": PROPENSITY,
        "version": FORMAT_VERSION,
        "id": model_id("propensity", params),
        "features": {"version": features.VERSION, "names": list(features.NAMES)},
        **params,
        "metrics": {
            "auc": round(auc, 4),
            "baseline_auc": baseline,
            "sessions": len(rows),
            "held_out": len(y_test),
            "conversion_rate": round(float(y.mean()), 4),
            "trained_at": int(time.time()),
        },
    }
