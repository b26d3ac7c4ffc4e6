"""Time ratios measured side by side in one process: S4 / S4D and fixed / learned eigenvalues.

    python benchmarks/layer_ratios.py                        # the active KERAS_BACKEND, the three layer sizes
    KERAS_BACKEND=tensorflow python benchmarks/layer_ratios.py --sizes 16,256,64,1024 --repeats 7

On a shared machine, separate runs see different loads; here the variants (S4D and S4, each with
learned and with frozen eigenvalues, `trainable_eigenvalues=False`; the whole layer and its kernel
alone) are compiled first and then timed in rounds, one forward+backward pass of each per round
(`s4d_layer.keras_step`: loss = sum of the layer's outputs, gradients for every trainable variable
and the input; or loss = sum of `convolution_kernel(L)`, gradients for every trainable variable), so
every variant sees the same load. Reported: the median over rounds of each time, and the medians of
the per-round ratios.
"""

import argparse
import statistics
import sys

from s4d_layer import DEFAULT_SIZES, REPO_ROOT, interleaved_times, keras_step, parse_size, write_json

sys.path.insert(0, REPO_ROOT)  # time this checkout's keras_ssm

VARIANTS = {  # name: (layer, part, layer arguments)
    "s4d": ("s4d", "layer", {}),
    "s4d-fixed": ("s4d", "layer", {"trainable_eigenvalues": False}),
    "s4": ("s4", "layer", {}),
    "s4-fixed": ("s4", "layer", {"trainable_eigenvalues": False}),
    "s4d-kernel": ("s4d", "kernel", {}),
    "s4d-kernel-fixed": ("s4d", "kernel", {"trainable_eigenvalues": False}),
    "s4-kernel": ("s4", "kernel", {}),
    "s4-kernel-fixed": ("s4", "kernel", {"trainable_eigenvalues": False}),
}
RATIOS = {"s4/s4d": ("s4", "s4d"), "s4d fixed/learned": ("s4d-fixed", "s4d"), "s4 fixed/learned": ("s4-fixed", "s4"),
          "s4d kernel fixed/learned": ("s4d-kernel-fixed", "s4d-kernel"),
          "s4 kernel fixed/learned": ("s4-kernel-fixed", "s4-kernel")}


def main():
    import keras

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", type=parse_size, default=DEFAULT_SIZES, help="batch,H,n,L tuples")
    parser.add_argument("--warmup", type=int, default=1, help="untimed passes of each variant first")
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds")
    parser.add_argument("--json", help="also write the rows to this JSON file")
    args = parser.parse_args()
    if args.repeats < 1 or args.warmup < 0:
        parser.error("--repeats must be >= 1 and --warmup >= 0")
    backend = keras.backend.backend()
    rows = []
    print(f"| backend | batch, H, n, L | {' | '.join(f'{k} (ms)' for k in VARIANTS)} | {' | '.join(RATIOS)} |")
    print("|---" * (2 + len(VARIANTS) + len(RATIOS)) + "|")
    for size in args.sizes:
        steps = {name: keras_step(layer, *size, part=part, **kwargs)
                 for name, (layer, part, kwargs) in VARIANTS.items()}
        times = dict(zip(steps, interleaved_times(list(steps.values()), args.warmup, args.repeats)))
        medians = {name: statistics.median(t) for name, t in times.items()}
        ratios = {label: statistics.median(a / b for a, b in zip(times[num], times[den]))
                  for label, (num, den) in RATIOS.items()}
        rows.append({"backend": backend, "size": size, "median_s": medians, "ratios": ratios, "times_s": times})
        print(f"| {backend} | {', '.join(map(str, size))} | "
              + " | ".join(f"{1e3 * medians[k]:.0f}" for k in VARIANTS) + " | "
              + " | ".join(f"{ratios[k]:.2f}" for k in RATIOS) + " |", flush=True)
    if args.json:
        write_json(rows, args.json)


if __name__ == "__main__":
    main()
