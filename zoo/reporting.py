"""What every experiment report shares: seed statistics, paired tests, the code version, number formats, figures.

Small pure functions over plain numbers and dicts (zoo.report, the fixed-versus-learned report, and
zoo.memory_horizon's reports both use them):

- :func:`mean_std`: mean and sample standard deviation (ddof = 1) over the finite values, with their count.
- :func:`paired_comparison`: the paired difference d_i = learned_i - fixed_i over seeds, with a paired
  t-test (scipy.stats.ttest_rel) and a Wilcoxon signed-rank test (scipy.stats.wilcoxon, computed when at
  least 3 differences are nonzero; its smallest attainable two-sided p-value with n nonzero differences is
  2 / 2**n).
- :func:`code_version`: the git commit the numbers came from.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from scipy import stats

MIN_WILCOXON_NONZERO = 3


def mean_std(values) -> dict:
    """{"mean", "std" (sample std, ddof=1; 0 for one value), "n"} over the finite entries; None when empty."""
    x = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=np.float64)
    if x.size == 0:
        return {"mean": None, "std": None, "n": 0}
    return {"mean": float(x.mean()), "std": float(x.std(ddof=1)) if x.size > 1 else 0.0, "n": int(x.size)}


def paired_comparison(fixed, learned) -> dict:
    """Paired difference learned - fixed over seeds, with a paired t-test and a Wilcoxon signed-rank test.

    Args:
        fixed, learned: equal-length sequences, entry i from seed i of each setting.

    Returns:
        {"n", "differences", "mean", "std", "t_statistic", "t_pvalue", "wilcoxon_statistic",
        "wilcoxon_pvalue", "wilcoxon_min_pvalue", "wins", "ties", "losses", "note"}; tests that are undefined
        (n < 2, all differences equal, fewer than 3 nonzero differences for Wilcoxon) give None and say why
        in ``note``. wins/ties/losses count seeds where learned is above/equal to/below fixed.
    """
    fixed = np.asarray(fixed, dtype=np.float64)
    learned = np.asarray(learned, dtype=np.float64)
    if fixed.shape != learned.shape or fixed.ndim != 1:
        raise ValueError(f"fixed and learned must be 1-D of equal length, got {fixed.shape} and {learned.shape}.")
    diff = learned - fixed
    n = int(diff.size)
    out = {"n": n, "differences": diff.tolist(), **{k: v for k, v in mean_std(diff).items() if k != "n"},
           "t_statistic": None, "t_pvalue": None, "wilcoxon_statistic": None, "wilcoxon_pvalue": None,
           "wilcoxon_min_pvalue": None, "wins": int(np.sum(diff > 0)), "ties": int(np.sum(diff == 0)),
           "losses": int(np.sum(diff < 0)), "note": []}
    if n < 2:
        out["note"].append("paired t-test needs n >= 2")
    elif np.all(diff == diff[0]):
        out["note"].append("paired t-test undefined: all differences are equal")
    else:
        result = stats.ttest_rel(learned, fixed)
        out["t_statistic"], out["t_pvalue"] = float(result.statistic), float(result.pvalue)
    nonzero = int(np.sum(diff != 0))
    if nonzero >= MIN_WILCOXON_NONZERO:
        result = stats.wilcoxon(diff)
        out["wilcoxon_statistic"], out["wilcoxon_pvalue"] = float(result.statistic), float(result.pvalue)
        out["wilcoxon_min_pvalue"] = 2.0 / 2**nonzero
    else:
        out["note"].append(f"Wilcoxon not computed: {nonzero} nonzero difference(s), needs >= {MIN_WILCOXON_NONZERO}")
    out["note"] = "; ".join(out["note"])
    return out


def code_version() -> dict:
    """{"commit": short git commit of the repository holding this file, "dirty": uncommitted changes?};
    None values when git or the repository is unavailable."""
    root = Path(__file__).resolve().parents[1]

    def git(*args):
        try:
            done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "--short", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no") if commit else None
    return {"commit": commit, "dirty": None if status is None else bool(status)}


def code_version_label(version: dict | None = None) -> str:
    """:func:`code_version` as text: the commit, "+dirty" with uncommitted changes to tracked files."""
    version = code_version() if version is None else version
    if version["commit"] is None:
        return "unknown (not a git checkout)"
    return version["commit"] + ("+dirty" if version["dirty"] else "")


def format_stat(stat, digits=3, scale=1.0, missing="n/a"):
    """A mean_std / paired_comparison dict as "mean ± std" (just the mean for one value); ``missing`` when
    there is none."""
    if stat is None or stat.get("mean") is None:
        return missing
    mean = f"{stat['mean'] * scale:.{digits}f}"
    return mean if stat["n"] < 2 else f"{mean} ± {stat['std'] * scale:.{digits}f}"


def format_p(value):
    """A p-value, 3 significant digits; n/a when missing."""
    return "n/a" if value is None else f"{value:.3g}"


def format_number(value, digits=4):
    """Fixed-point, or scientific notation for small nonzero values (MF at long lags is ~1e-6); n/a when missing."""
    if value is None:
        return "n/a"
    return f"{value:.1e}" if value != 0 and abs(value) < 10 ** -(digits - 1) else f"{value:.{digits}f}"


def figure(width, height):
    """A matplotlib Figure of ``width`` x ``height`` inches with constrained layout (no pyplot state)."""
    return Figure(figsize=(width, height), layout="constrained")
