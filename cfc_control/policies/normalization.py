"""Observation normalisation stored with a policy: (obs - mean) / std, clipped.

Kept as plain float64 numpy arrays (the statistics are data, not parameters), fitted once from
demonstrations or updated as running statistics during RL, and saved in config.json.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Optional

import numpy as np


@dataclass
class ObsNormalizer:
    """Per-feature affine normalisation with clipping.

    ``mean`` and ``std`` have shape (n_obs,); ``clip`` bounds the normalised value (the SB3
    VecNormalize default is 10). ``count`` is the number of samples the statistics came from.
    """

    mean: np.ndarray
    std: np.ndarray
    clip: float = 10.0
    count: float = 0.0
    eps: float = field(default=1e-8, repr=False)

    def __post_init__(self) -> None:
        self.mean = np.asarray(self.mean, dtype=np.float64).reshape(-1)
        self.std = np.asarray(self.std, dtype=np.float64).reshape(-1)
        if self.mean.shape != self.std.shape:
            raise ValueError(f"normalisation mean {self.mean.shape} and std {self.std.shape} differ in shape")
        if not (np.all(np.isfinite(self.mean)) and np.all(np.isfinite(self.std)) and np.all(self.std >= 0)):
            raise ValueError("normalisation mean/std must be finite and std non-negative")
        # The policy keeps them in float32: larger magnitudes would become inf there.
        if np.any(np.abs(self.mean) > 1e30) or np.any(self.std > 1e30):
            raise ValueError("normalisation mean/std must lie within +-1e30")
        if not 0 < self.clip <= 1e30:
            raise ValueError(f"normalisation clip must be positive and at most 1e30, got {self.clip}")

    @classmethod
    def identity(cls, n_obs: int) -> "ObsNormalizer":
        # A finite clip keeps config.json standard JSON (no Infinity).
        return cls(np.zeros(n_obs), np.ones(n_obs), clip=1e6)

    @classmethod
    def fit(cls, observations: np.ndarray, clip: float = 10.0, min_std: float = 1e-3) -> "ObsNormalizer":
        """Statistics of ``observations`` (N, n_obs). Features that never vary get std ``min_std``
        so that a constant input does not blow up when it moves at run time."""
        obs = np.asarray(observations, dtype=np.float64)
        if obs.ndim != 2 or obs.shape[0] == 0:
            raise ValueError(f"fit needs observations of shape (N, n_obs) with N > 0, got {obs.shape}")
        return cls(obs.mean(0), np.maximum(obs.std(0), min_std), clip=clip, count=float(obs.shape[0]))

    @property
    def size(self) -> int:
        return int(self.mean.shape[0])

    def update(self, batch: np.ndarray) -> None:
        """Merge the statistics of ``batch`` (N, n_obs) (parallel variance, as SB3's RunningMeanStd)."""
        x = np.asarray(batch, dtype=np.float64).reshape(-1, self.size)
        n = x.shape[0]
        if n == 0:
            return
        b_mean, b_var = x.mean(0), x.var(0)
        total = self.count + n
        delta = b_mean - self.mean
        var = self.std**2 * self.count + b_var * n + delta**2 * self.count * n / total
        self.mean = self.mean + delta * n / total
        self.std = np.sqrt(var / total)
        self.count = total

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        z = (np.asarray(obs, dtype=np.float64) - self.mean) / (self.std + self.eps)
        return np.clip(z, -self.clip, self.clip)

    def to_config(self) -> Dict[str, Any]:
        return {"mean": self.mean.tolist(), "std": self.std.tolist(), "clip": float(self.clip), "count": float(self.count)}

    @classmethod
    def from_config(cls, cfg: Optional[Dict[str, Any]], n_obs: int) -> "ObsNormalizer":
        if cfg is None:
            return cls.identity(n_obs)
        norm = cls(np.asarray(cfg["mean"]), np.asarray(cfg["std"]), clip=float(cfg.get("clip", 10.0)),
                   count=float(cfg.get("count", 0.0)))
        if norm.size != n_obs:
            raise ValueError(f"normalisation has {norm.size} features, the policy observes {n_obs}")
        return norm
