"""Command line: memory functions of the standard S4D eigenvalue initialisations.

    python -m keras_ssm.memory --inits inv lin real legs random --n 32 --horizon 1024 \
        --dt 0.01 --out mf.png

reproduces the memory-function figure of Guan et al. (2025) (N = 32, T = 1024) and prints
memory capacity, memory length, accuracy, numerical rank and condition number per set.
``--inits ... memory`` adds the set designed for the flattest memory up to ``--horizon``
(:func:`keras_ssm.memory.design_eigenvalues`, discrete eigenvalues used as they are: ``--dt``
and ``--discretization`` do not apply to it).
``--inits`` also takes the discrete families (used as given, at dt = 1), with parameters, e.g.
`linear_magnitudes:rho=0.99 unity_rings:rho=0.99,p=4`, and .npy files of continuous eigenvalues
(N/2,) (discretized with --dt like the named continuous inits).
``--model FILE.keras`` instead draws and tabulates the memory function of every S4/S4D layer of a saved
model (a zoo run's ``best.keras``, or any model with keras_ssm layers), per layer averaged over channels.
Only numpy, scipy and matplotlib are imported (keras only with ``--model``).
"""

from __future__ import annotations

import argparse
import sys

from keras_ssm.memory.core import DISCRETIZATIONS, discretize_eigenvalues, memory_function, memory_summary

# The names keras_ssm.ops.initial_eigenvalues accepts; checked against it at run time.
INIT_NAMES = ("inv", "lin", "real", "legs", "random")
# Eigenvalue sets designed for --horizon by keras_ssm.memory.design_eigenvalues (discrete, dt = 1).
DESIGNED_NAMES = ("memory",)


def _positive_int(text):
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _positive_float(text):
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def _fraction(text):
    value = float(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m keras_ssm.memory",
        description=(
            "Closed-form memory functions MF(k) of diagonal SSMs with the S4D eigenvalue "
            "initialisations (keras_ssm.ops.initial_eigenvalues), discretised with step dt. "
            "Writes a figure and prints memory capacity MC = sum_k MF(k), memory length "
            "(lag reaching FRACTION of MC), accuracy (mean MF up to that lag), numerical "
            "rank and condition number of the feature matrix for each set."
        ),
    )
    sets = parser.add_mutually_exclusive_group()
    sets.add_argument("--model", default=None, metavar="FILE.keras",
                      help="a saved Keras model (e.g. a zoo run's best.keras): the memory functions of every S4/S4D "
                           "layer in it, instead of eigenvalue sets (--n, --dt, --discretization do not apply)")
    sets.add_argument("--inits", nargs="+", default=list(INIT_NAMES), metavar="INIT",
                        help=f"eigenvalue sets to compare: any of {', '.join(INIT_NAMES)} (continuous, scaled by "
                             "--dt), the first author's guan_linear[:rho=R] or guan_conjugate_linear[:rho=R,"
                             "n_conjugate=M] (continuous, scaled by --dt), linear_magnitudes[:rho=R] or "
                             "unity_rings[:rho=R,p=P] (discrete, as given), "
                             "'memory' (designed for the flattest memory up to --horizon, discrete: seconds to "
                             "design, ignores --dt and --discretization), or a .npy file of N/2 continuous "
                             "eigenvalues (default: the five continuous inits)")
    parser.add_argument("--n", type=_positive_int, default=32,
                        help="state size N (even): N/2 complex eigenvalues, N real state dims (default: 32)")
    parser.add_argument("--horizon", type=_positive_int, default=1024,
                        help="number of lags T; finite horizon = state started T steps ago (default: 1024)")
    parser.add_argument("--dt", type=_positive_float, default=0.01,
                        help="discretization step dt (default: 0.01)")
    parser.add_argument("--discretization", choices=DISCRETIZATIONS, default="zoh",
                        help="zoh: lambda = exp(dt a); bilinear: lambda = (1 + dt a/2)/(1 - dt a/2) (default: zoh)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the 'random' initialisation and of the 'memory' design (default: 0)")
    parser.add_argument("--infinite", action="store_true",
                        help="infinite-horizon Gramian instead of the finite horizon T (curves still shown up to T)")
    parser.add_argument("--fraction", type=_fraction, default=0.9,
                        help="memory length = lag by which this fraction of MC is reached (default: 0.9)")
    parser.add_argument("--linear-lag", action="store_true", help="linear lag axis (default: symmetric-log)")
    parser.add_argument("--log-mf", action="store_true", help="logarithmic MF axis")
    parser.add_argument("--out", default="memory_functions.png",
                        help="output figure; format from the extension, .png or .pdf (default: memory_functions.png)")
    return parser


#: What the memory function is, in words: the first sentence of every figure caption.
MF_CAPTION = ("MF(k): the share of the input from k steps back that the best linear readout of the state recovers "
              "(1: all of it, 0: none).")


def _horizon_caption(args) -> str:
    if args.infinite:
        return f"Infinite horizon (stationary state), shown over lags 0-{args.horizon - 1}."
    return f"Finite horizon: the state started from zero T = {args.horizon} steps ago (lags 0-{args.horizon - 1})."


def _sets_caption(args) -> str:
    """The figure's caption: what MF is, the state size, horizon and discretisation."""
    method = {"zoh": "zero-order hold", "bilinear": "bilinear"}.get(args.discretization, args.discretization)
    return (f"{MF_CAPTION} State size N = {args.n}. {_horizon_caption(args)} Continuous eigenvalues discretised "
            f"with step dt = {args.dt:g} ({method}); discrete sets used as they are.")


def _format_table(rows, fraction, first: str = "init") -> str:
    header = (first, "dim", "rank", "MC", f"length@{fraction:g}", "accuracy", "cond")
    width = max([8] + [len(name) + 2 for name, _ in rows])
    lines = [f"{header[0]:<{width}}{header[1]:>5}{header[2]:>6}{header[3]:>9}{header[4]:>13}{header[5]:>10}{header[6]:>11}"]
    for name, summary in rows:
        lines.append(
            f"{name:<{width}}{summary['state_dim']:>5.0f}{summary['rank']:>6.0f}{summary['capacity']:>9.3f}"
            f"{summary['length']:>13.0f}{summary['accuracy']:>10.4f}{summary['condition_number']:>11.3g}"
        )
    return "\n".join(lines)


def model_memory_table(path, horizon: int, infinite: bool, fraction: float):
    """The memory functions {layer path: MemoryFunction} of every SSM layer of the model saved at ``path``,
    and their table rows."""
    import keras  # 3-6 s, paid only with --model; keras_ssm (imported here) registers its classes with it

    from keras_ssm.memory.models import model_memory_functions

    try:
        model = keras.saving.load_model(path, compile=False)
    except (OSError, ValueError) as err:
        raise ValueError(f"--model {path}: cannot load it as a Keras model ({' '.join(str(err).split())[:300]})") from None
    try:
        curves = model_memory_functions(model, horizon=horizon, infinite_horizon=infinite)
    except ValueError as err:
        raise ValueError(f"--model {path}: {err}") from None
    return curves, [(name, memory_summary(memory, fraction)) for name, memory in curves.items()]


def _main_model(args) -> int:
    from keras_ssm.memory.plotting import plot_memory_comparison

    try:
        curves, rows = model_memory_table(args.model, args.horizon, args.infinite, args.fraction)
    except ValueError as err:
        build_parser().error(str(err))
    horizon = "infinite horizon" if args.infinite else f"T = {args.horizon}"
    title = f"Memory function of each SSM layer of {args.model} ({horizon})"
    plot_memory_comparison({"saved model": curves}, args.out, title=f"Memory of each SSM layer of {args.model}",
                           caption=f"{MF_CAPTION} {_horizon_caption(args)}")
    print(title)
    print(_format_table(rows, args.fraction, first="layer"))
    print("per layer, averaged over its channels; dim: real state dimension; rank: numerical rank; "
          "cond: condition number of the feature matrix")
    print(f"figure written to {args.out}")
    return 0


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.model is not None:
        return _main_model(args)
    if args.n % 2:
        build_parser().error(f"--n must be even, got {args.n}")
    from keras_ssm.ops.init import check_eigenvalue_init, resolve_eigenvalue_init  # numpy only

    from keras_ssm.memory.plotting import plot_memory_functions

    checked = []
    for name in args.inits:
        if name in DESIGNED_NAMES:
            checked.append(name)
            continue
        try:
            checked.append(check_eigenvalue_init(name, args.n))
        except ValueError as err:
            build_parser().error(f"--inits {name}: {err}")
    if "memory" in args.inits and args.seed < 0:
        build_parser().error(f"--seed must be >= 0 for 'memory', got {args.seed}")
    curves, rows = {}, []
    for name, init in zip(args.inits, checked):
        if name == "memory":
            from keras_ssm.memory.design import design_eigenvalues

            discrete = design_eigenvalues(args.n, args.horizon, seed=args.seed).eigenvalues
            label = f"memory (designed, flat to T = {args.horizon})"
        else:
            continuous, is_discrete = resolve_eigenvalue_init(init, args.n, 1, args.discretization, seed=args.seed)
            discrete = discretize_eigenvalues(continuous[0], 1.0 if is_discrete else args.dt, args.discretization)
            if name in INIT_NAMES:
                label = f"S4D-{name.capitalize()}" if name != "random" else "random"
            else:
                label = name + (" (dt = 1)" if is_discrete else "")
        memory = memory_function(discrete, horizon=args.horizon, infinite_horizon=args.infinite)
        curves[label] = memory
        rows.append((name, memory_summary(memory, args.fraction)))
    horizon = "infinite horizon" if args.infinite else f"T = {args.horizon}"
    title = f"Memory functions, N = {args.n}, {horizon}, dt = {args.dt:g} ({args.discretization})"
    plot_memory_functions(curves, args.out, log_lag=not args.linear_lag, log_mf=args.log_mf, band=None,
                          title="Memory of diagonal SSMs with each eigenvalue set", caption=_sets_caption(args))
    print(title)
    print(_format_table(rows, args.fraction))
    print("dim: real state dimension; rank: numerical rank; cond: condition number of the feature matrix")
    if "memory" in args.inits:
        print(f"memory: eigenvalues designed for the flattest memory up to lag {args.horizon - 1} "
              "(design_eigenvalues; discrete, dt and discretization do not apply)")
    if args.infinite:
        print(f"infinite horizon: MC and length are over lags 0..{args.horizon - 1}; rank - MC lies beyond")
    print(f"figure written to {args.out}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
