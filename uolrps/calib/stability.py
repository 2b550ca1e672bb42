"""Is this calibration set large enough? The measure `uolrps calib` prints, and its warning.

w* is a dataset-level direction: a few images give a noisy one. Measured with
``benchmarks/calib_stability.py`` (efflite0 at 224, 3000 ImageNet photos of 10 classes; docs/calib.md):
the cosine between the w* of n random images and the w* of all 3000, and the split-half cosine (w* of one
random half of the n images against the other half's), which a run can compute on the user's own images.
Below ``MIN_IMAGES`` the warning fires, for every backbone until measured for it.
"""

from __future__ import annotations

import numpy as np

# n -> (mean cosine to the 3000-image w*, 5th percentile, mean split-half cosine), over 200 random subsets
# (50 for 200-500, 20 above): `python benchmarks/calib_stability.py`, table in docs/calib.md
MEASURED = {5: (0.643, 0.506, 0.264), 10: (0.762, 0.679, 0.420), 20: (0.855, 0.798, 0.581),
            50: (0.938, 0.919, 0.784), 100: (0.968, 0.959, 0.875), 200: (0.984, 0.980, 0.935),
            500: (0.994, 0.993, 0.973), 1500: (0.999, 0.999, 0.991), 3000: (1.0, 1.0, 0.995)}
MIN_IMAGES = 100  # the smallest measured n whose w* keeps cosine >= 0.95 to the full-set w* in 95% of draws
MEASURED_ON = "efflite0, 3000 ImageNet photos"


def split_half_cosine(v_halves: np.ndarray, u_halves: np.ndarray) -> float | None:
    """Cosine between the w* of the two halves (rows of ``v_halves``/``u_halves``: 2 x C means)."""
    from uolrps.calib.means import wstar_from_means

    if not np.all(np.isfinite(v_halves)) or not np.all(np.isfinite(u_halves)):
        return None
    w = wstar_from_means(np.asarray(v_halves), np.asarray(u_halves))
    return float(w[0] @ w[1])


def expected_cosine(n: int) -> tuple[float, float]:
    """(mean, 5th percentile) cosine to a large-set w* for ``n`` images, interpolated in log n."""
    ns = np.array(sorted(MEASURED), dtype=float)
    x = np.log(np.clip(n, ns[0], ns[-1]))
    mean = np.interp(x, np.log(ns), [MEASURED[int(k)][0] for k in ns])
    p5 = np.interp(x, np.log(ns), [MEASURED[int(k)][1] for k in ns])
    return float(mean), float(p5)


def report(n_own: int, split_half: float | None, n_total: int | None = None) -> tuple[str, str | None]:
    """The line the run prints about its own images, and a warning when they are too few (else None)."""
    mean, p5 = expected_cosine(n_own)
    half = "n/a (fewer than 2 images)" if split_half is None else f"{split_half:.3f}"
    smallest = min(MEASURED)
    if n_own < smallest:  # below the measured range: quoting the 5-image figure would claim more than we know
        expected = (f"fewer than {smallest} images is below what we measured ({smallest} random images already "
                    f"give only {MEASURED[smallest][0]:.3f} on average, 5% below {MEASURED[smallest][1]:.3f})")
    else:
        expected = f"{n_own} random images give a w* with cosine {mean:.3f} on average (5% below {p5:.3f})"
    line = (f"stability: split-half cosine {half} (w* of one random half of your {n_own} images against the "
            f"other's); {expected} to a 3000-image w* ({MEASURED_ON}; docs/calib.md)")
    if n_total is not None and n_total != n_own:
        line += f"; merged with --base: {n_total} images in all"
    if max(n_own, n_total or 0) >= MIN_IMAGES:
        return line, None
    return line, (f"only {n_own} calibration images: fewer than {MIN_IMAGES}, the smallest set that gave a "
                  f"stable w* in our measurement (docs/calib.md); use more images, or start from a general "
                  "calibration with --base (e.g. the shipped one) and add yours")
