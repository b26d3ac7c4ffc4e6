"""Designed eigenvalues (keras_ssm.memory.design_eigenvalues) against S4D-Inv and S4D-Lin.

    python benchmarks/memory_design.py                       # N = 32, 64; horizons 256, 1024, 4096
    python benchmarks/memory_design.py --n 32 --horizons 1024

For every (N, T): the flat design for horizon T (seed 0), and S4D-Inv / S4D-Lin discretised (ZOH) at
dt = 0.01, the step of the README's memory figure, and at their best dt on a log grid (the dt that
maximises their smallest MF up to T). Columns: smallest finite-horizon MF over lags 0..T-1 (the
curve the memory CLI draws), smallest stationary (infinite-horizon) MF over the same lags, the
stationary capacity held by lags 0..T-1 (the rest of N lies beyond T), memory length (lag holding
90% of the finite-horizon MC, as the CLI), and the wall time of the design (numpy/scipy, the BLAS
thread count the design sets). Only numpy and scipy are imported.
"""

import argparse
import os
import platform
import time

import numpy as np

from keras_ssm.memory import design_eigenvalues, discretize_eigenvalues, memory_function, memory_length
from keras_ssm.ops.init import initial_eigenvalues

README_DT = 0.01
DT_GRID = np.geomspace(1e-5, 1.0, 51)


def curves(discrete, horizon):
    finite = memory_function(discrete, horizon=horizon)
    stationary = memory_function(discrete, horizon=horizon, infinite_horizon=True)
    return {
        "min_finite": float(finite.values.min()),
        "min_stationary": float(stationary.values.min()),
        "mc_stationary": float(stationary.capacity),
        "length": int(memory_length(finite)),
    }


def hippo(init, n, horizon, dt):
    return curves(discretize_eigenvalues(initial_eigenvalues(init, n)[0], dt), horizon)


def best_dt(init, n, horizon):
    continuous = initial_eigenvalues(init, n)[0]
    scores = [memory_function(discretize_eigenvalues(continuous, dt), horizon=horizon).values.min() for dt in DT_GRID]
    return float(DT_GRID[int(np.argmax(scores))])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[32, 64])
    parser.add_argument("--horizons", type=int, nargs="+", default=[256, 1024, 4096])
    args = parser.parse_args(argv)
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, load average "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}, numpy {np.__version__}")
    print("| N | T | set | dt | min MF (finite T) | min MF (stationary) | MC in lags < T (stationary) "
          "| length@0.9 | design time (s) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for n in args.n:
        for horizon in args.horizons:
            start = time.perf_counter()
            design = design_eigenvalues(n, horizon)
            seconds = time.perf_counter() - start
            rows = [("memory", "-", curves(design.eigenvalues, horizon), f"{seconds:.1f}")]
            for init in ("inv", "lin"):
                rows.append((init, f"{README_DT:g}", hippo(init, n, horizon, README_DT), "-"))
                dt = best_dt(init, n, horizon)
                rows.append((init, f"{dt:.3g} (best)", hippo(init, n, horizon, dt), "-"))
            for name, dt, c, t in rows:
                print(f"| {n} | {horizon} | {name} | {dt} | {c['min_finite']:.4f} | {c['min_stationary']:.4f} "
                      f"| {c['mc_stationary']:.1f} | {c['length']} | {t} |")
            print(f"<!-- N={n} T={horizon}: bound N/T = {n / horizon:.4f}, match = {design.match:.3f}, "
                  f"converged = {design.converged}, evaluations = {design.evaluations} -->")


if __name__ == "__main__":
    main()
