"""One prepared check that S4 and S4D run, accurately and fast, on the GPU as installed.

    python benchmarks/gpu_check.py                    # on a GPU machine: < 8 min on one H100/H200
    python benchmarks/gpu_check.py --out results/     # JSON + Markdown there (default: $OUT when set, else ./gpu_check)
    python benchmarks/gpu_check.py --smoke            # the same code paths at tiny sizes (CPU, < 1 min per backend)
    python benchmarks/gpu_check.py --backends jax torch --sections devices accuracy

Sections, each per installed Keras backend (jax, tensorflow, torch; one not installed is skipped and
reported as such), every backend in its own subprocesses:

    devices   what each backend computes on (keras_ssm.devices.device_info) and `nvidia-smi`.
    tests     tests/test_s4d.py and tests/test_s4.py without the slow ones, run on that backend's
              default device (the GPU when the backend sees one); run concurrently with `accuracy`,
              with jax's preallocation and TensorFlow's up-front allocation off.
    accuracy  the convolution kernel computed on the device vs the float64 formula (keras_ssm.ops.reference):
              S4D (zoh, bilinear) and S4, at L = 1024 and 16384, H = 64, N = 64. Error = max over channels
              of max_l |K - K64| / max_l |K64|. "precise" is the library as shipped; "backend default" the
              same kernel under keras_ssm.ops.kernel_precision("default"): its contractions at the
              backend's default matmul precision (TF32 on recent NVIDIA GPUs for jax and tensorflow), to
              show what the precise contractions buy.
    layers    forward+backward time and the allocator's peak memory of S4D and S4 at the three sizes of
              benchmarks/s4d_layer.py plus (1, 128, 64, 65536), beside the PyTorch reference on CUDA
              (benchmarks/s4d_layer.py's own code: one subprocess per row, median of 3 after 1 warm-up).
    train     the training step of the full ListOps and Path-X presets (model, optimizer and loss of
              `python zoo/train.py TASK --preset full`) on generated random batches of the right shapes:
              first step (compilation included) timed separately, then steps/s and examples/s.

Everything runs within --budget-s seconds (default 460): a section item that would start after the
budget is reported as skipped, never silently dropped. Writes gpu_check.json and gpu_check.md
(atomically) into --out and prints the Markdown. Exit status 1 when anything failed or was skipped for
time (each named on stderr); a backend that is not installed is no failure.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path[:0] = [str(REPO), str(HERE)]

import keras_ssm  # noqa: E402  (the layers load with keras on first use)
import s4d_layer  # noqa: E402
from keras_ssm.devices import describe, device_info  # noqa: E402  (imports no backend)
from keras_ssm.ops import reference  # noqa: E402  (numpy only)

BACKENDS = ("jax", "tensorflow", "torch")
SECTIONS = ("devices", "tests", "accuracy", "layers", "train")
LAYER_SIZES = [(16, 256, 64, 1024), (8, 128, 64, 4096), (2, 128, 64, 16384), (1, 128, 64, 65536)]
SMOKE_LAYER_SIZES = [(1, 4, 8, 64)]
TEST_FILES = ["tests/test_s4d.py", "tests/test_s4.py", "tests/test_layer_harness.py"]
# --smoke: one quick test of each file (the same subprocess and pytest path as the full run).
SMOKE_TESTS = ["tests/test_s4d.py::test_numpy_scalars_are_accepted_and_stored_as_python_numbers",
               "tests/test_s4.py::test_legs_init_is_the_hippo_legs_matrix",
               "tests/test_layer_harness.py::test_layer[S4D-config]"]
ACCURACY_CASES = [("s4d", "zoh"), ("s4d", "bilinear"), ("s4", "bilinear")]
TRAIN_TASKS = {"listops": 10, "pathx": 5}  # timed steps after the first


# ---------------------------------------------------------------------------------------------
# Workers (run in a subprocess with KERAS_BACKEND set); each prints one JSON line last.

def worker_devices(args):
    return device_info()


def worker_accuracy(args):
    # keras (and the modules that import it) load in the worker only, after KERAS_BACKEND is set: 6 s here.
    from keras_ssm.ops.precision import kernel_precision

    H, n = (4, 8) if args.smoke else (64, 64)
    lengths = (64, 256) if args.smoke else (1024, 16384)
    rows = []
    for layer_name, discretization in ACCURACY_CASES:
        if layer_name == "s4d":
            layer = keras_ssm.S4D(n=n, discretization=discretization, seed=0)
        else:
            layer = keras_ssm.S4(n=n, seed=0)
        layer.build((None, None, H))
        for length in lengths:
            expected = reference.layer_kernel(layer, length)[0]  # (H, length)
            scale = np.abs(expected).max(axis=-1)
            row = {"layer": layer_name, "discretization": discretization, "H": H, "n": n, "length": length}
            for mode, precision in (("precise", "highest"), ("backend_default", "default")):
                with kernel_precision(precision):
                    got = np.asarray(layer.kernel(length), dtype=np.float64)
                error = np.abs(got - expected).max(axis=-1) / scale
                row[f"{mode}_max_rel_error"] = float(error.max())
                row[f"{mode}_median_rel_error"] = float(np.median(error))
            rows.append(row)
    return {"device": device_info(), "rows": rows}


def worker_train(args):
    # keras and the zoo load in the worker only, after KERAS_BACKEND is set: 6 s here.
    import keras

    from zoo.configs import get_config
    from zoo.models import build_model, nominal_input_spec
    from zoo.core import compile_model

    rows = []
    for task, steps in TRAIN_TASKS.items():
        overrides = dict(num_layers=1, d_model=8, d_state=4, batch_size=2) if args.smoke else {}
        config = get_config(task, "full", **overrides)
        spec = nominal_input_spec(task, config.data_options)
        if args.smoke:
            spec, steps = dataclasses.replace(spec, seq_len=64), 2
        keras.utils.set_random_seed(0)
        model = build_model(config, spec)
        compile_model(model, config, steps_per_epoch=1000)
        rng = np.random.default_rng(0)
        batches = []
        for _ in range(2):
            if spec.vocab_size is not None:
                x = rng.integers(1, spec.vocab_size, (config.batch_size, spec.seq_len)).astype("int32")
            else:
                x = rng.normal(size=(config.batch_size, spec.seq_len, spec.n_features)).astype("float32")
            x = (x, x) if spec.two_inputs else x
            batches.append((x, rng.integers(0, spec.num_classes, config.batch_size).astype("int32")))
        start = time.perf_counter()
        model.train_on_batch(*batches[0])  # returns host values: the step has finished
        first = time.perf_counter() - start
        start = time.perf_counter()
        for step in range(steps):
            loss = model.train_on_batch(*batches[step % 2])
        elapsed = time.perf_counter() - start
        loss = float(np.ravel(loss)[0])
        rows.append({"task": task, "preset": "full" + (" (smoke sizes)" if args.smoke else ""),
                     "layers": config.num_layers, "d_model": config.d_model, "d_state": config.d_state,
                     "batch": config.batch_size, "seq_len": spec.seq_len, "params": int(model.count_params()),
                     "first_step_s": first, "timed_steps": steps, "steps_per_s": steps / elapsed,
                     "examples_per_s": steps * config.batch_size / elapsed, "loss_finite": bool(np.isfinite(loss))})
        del model
    return {"device": device_info(), "rows": rows}


WORKERS = {"devices": worker_devices, "accuracy": worker_accuracy, "train": worker_train}


# ---------------------------------------------------------------------------------------------
# Driver

class Budget:
    def __init__(self, seconds):
        self.end = time.monotonic() + seconds

    def left(self):
        return self.end - time.monotonic()


def backend_env(backend, concurrent=False):
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=os.pathsep.join(
        [str(REPO)] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else [])))
    if concurrent:  # several processes share the GPU: allocate on demand
        env.update(XLA_PYTHON_CLIENT_PREALLOCATE="false", TF_FORCE_GPU_ALLOW_GROWTH="true")
    return env


def run_worker(kind, backend, args, timeout, concurrent=False):
    """A worker subprocess: its JSON result, or {"error": ...}."""
    if timeout <= 5:
        return {"error": "skipped: time budget spent"}
    cmd = [sys.executable, __file__, "--worker", kind] + (["--smoke"] if args.smoke else [])
    try:
        proc = subprocess.run(cmd, env=backend_env(backend, concurrent), capture_output=True, text=True,
                              timeout=timeout, cwd=REPO)
    except subprocess.TimeoutExpired:
        return {"error": f"failed: timed out after {timeout:.0f} s"}
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:] or ["?"]
        return {"error": f"failed: exit {proc.returncode}: " + " | ".join(tail)[-600:]}
    return json.loads(lines[-1])


def start_tests(backend, args, out_dir):
    """Start the layer tests of ``backend`` (Popen); returns (process, log path, start time)."""
    log = out_dir / f"tests-{backend}.log"
    targets = SMOKE_TESTS if args.smoke else TEST_FILES
    cmd = [sys.executable, "-m", "pytest", "-q", "-m", "not slow", "-p", "no:cacheprovider", *targets]
    handle = open(log, "w")
    proc = subprocess.Popen(cmd, env=backend_env(backend, concurrent=True), stdout=handle,
                            stderr=subprocess.STDOUT, cwd=REPO)
    return proc, handle, log, time.monotonic()


def finish_tests(started, budget):
    proc, handle, log, start = started
    try:
        rc = proc.wait(timeout=max(1.0, budget.left()))
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        rc = None
    handle.close()
    text = Path(log).read_text(errors="replace").strip().splitlines()
    summary = next((line for line in reversed(text) if " passed" in line or " failed" in line or " error" in line),
                   text[-1] if text else "")
    return {"returncode": rc, "passed": rc == 0, "summary": summary.strip("= ") if rc is not None
            else "killed: time budget spent", "wall_s": time.monotonic() - start}


def nvidia_smi():
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        proc = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=30)
        return proc.stdout.strip() or proc.stderr.strip()
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"nvidia-smi failed: {error}"


def installed(backend):
    return importlib.util.find_spec(backend) is not None and importlib.util.find_spec("keras") is not None


def run_check(args):
    budget = Budget(args.budget_s)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    report = {"smoke": args.smoke, "budget_s": args.budget_s,
              "host": {"python": platform.python_version(), "machine": platform.machine(),
                       "cpus": os.cpu_count(), "nvidia_smi": nvidia_smi()},
              "backends": {}, "devices": {}, "tests": {}, "accuracy": {}, "layers": [], "train": {}}
    live = []
    for backend in args.backends:
        if not installed(backend):
            report["backends"][backend] = "not installed: skipped"
            continue
        info = run_worker("devices", backend, args, min(120, budget.left()))
        report["devices"][backend] = info
        if "error" in info:
            report["backends"][backend] = f"failed to start: skipped ({info['error'][:200]})"
            continue
        report["backends"][backend] = "installed"
        live.append(backend)
        print(f"{backend}: {info['count']} x {info['platform']} ({info['model']})", flush=True)

    sections = set(args.sections)
    running = {b: start_tests(b, args, out_dir) for b in live} if "tests" in sections else {}
    if "accuracy" in sections:
        for backend in live:  # concurrent with the tests: accuracy is not a timing
            report["accuracy"][backend] = run_worker("accuracy", backend, args, min(240, budget.left()),
                                                     concurrent=True)
            print(f"{backend}: accuracy done", flush=True)
    for backend, started in running.items():
        report["tests"][backend] = finish_tests(started, budget)
        print(f"{backend}: tests {report['tests'][backend]['summary']}", flush=True)

    if "layers" in sections:
        sizes = SMOKE_LAYER_SIZES if args.smoke else LAYER_SIZES
        impls = (["torch-reference"] if "torch" in live else []) + live
        timing = argparse.Namespace(warmup=1, repeats=2 if args.smoke else 3)
        for size in sizes:
            for impl in impls:
                for layer in (["s4d"] if impl == "torch-reference" else ["s4d", "s4"]):
                    left = budget.left()
                    if left < 10:
                        row = {"impl": impl, "layer": layer, "size": list(size), "error": "skipped: time budget spent"}
                    else:
                        row = s4d_layer.run_one(impl, layer, size, timing, timeout=min(180, left))
                    report["layers"].append(row)
            print(f"layers {size} done", flush=True)

    if "train" in sections:
        for backend in live:
            report["train"][backend] = run_worker("train", backend, args, min(300, budget.left()))
            print(f"{backend}: train done", flush=True)

    report["wall_s"] = args.budget_s - budget.left()
    write_atomic(out_dir / "gpu_check.json", json.dumps(report, indent=1))
    markdown = to_markdown(report)
    write_atomic(out_dir / "gpu_check.md", markdown)
    print(markdown)
    return report


def write_atomic(path, text):
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as f:
        f.write(text)
    os.replace(f.name, path)


def _fmt(x, spec=".3g"):
    return "-" if x is None else format(x, spec)


def to_markdown(report):
    lines = [f"# GPU check{' (smoke: tiny sizes)' if report['smoke'] else ''}", "",
             f"Host: python {report['host']['python']}, {report['host']['cpus']} CPUs; nvidia-smi: "
             f"{report['host']['nvidia_smi'] or 'not found'}. Wall time {report['wall_s']:.0f} s.", "",
             "## Devices", "", "| backend | status | device |", "|---|---|---|"]
    for backend, status in report["backends"].items():
        info = report["devices"].get(backend, {})
        lines.append(f"| {backend} | {status} | {describe(info) if 'platform' in info else '-'} |")
    if report["tests"]:
        lines += ["", "## Layer tests (not slow)", "", "| backend | result | wall (s) |", "|---|---|---|"]
        for backend, result in report["tests"].items():
            lines.append(f"| {backend} | {'PASS' if result['passed'] else 'FAIL'}: {result['summary']} | "
                         f"{result['wall_s']:.0f} |")
    if report["accuracy"]:
        lines += ["", "## Kernel accuracy vs float64 (max over channels of max|K - K64| / max|K64|)", "",
                  "| backend | layer | discretization | L | precise (as shipped) | backend default precision |",
                  "|---|---|---|---|---|---|"]
        for backend, result in report["accuracy"].items():
            if "error" in result:
                lines.append(f"| {backend} | {result['error']} | | | | |")
                continue
            for row in result["rows"]:
                lines.append(f"| {backend} | {row['layer']} | {row['discretization']} | {row['length']} | "
                             f"{row['precise_max_rel_error']:.2e} | {row['backend_default_max_rel_error']:.2e} |")
    if report["layers"]:
        torch_rows = {tuple(r["size"]): r for r in report["layers"]
                      if r["impl"] == "torch-reference" and "error" not in r}
        lines += ["", "## Layer forward+backward", "",
                  "| layer | implementation | batch, H, n, L | fwd+bwd (ms) | peak memory (MiB) | speed-up vs "
                  "torch-reference | memory vs torch-reference | device |", "|---|---|---|---|---|---|---|---|"]
        for row in report["layers"]:
            label = ", ".join(map(str, row["size"]))
            if "error" in row:
                error = row["error"] if row["error"].startswith(("failed", "skipped")) else f"failed: {row['error']}"
                lines.append(f"| {row['layer']} | {row['impl']} | {label} | {error} | | | | |")
                continue
            ref = torch_rows.get(tuple(row["size"]))
            speed = f"{ref['median_s'] / row['median_s']:.2f}x" if ref else "-"
            memory = f"{row['peak_bytes'] / max(ref['peak_bytes'], 1):.3f}" if ref else "-"
            lines.append(f"| {row['layer']} | {row['impl']} | {label} | {1e3 * row['median_s']:.1f} | "
                         f"{row['peak_bytes'] / 2**20:.0f} ({row['memory']}) | {speed} | {memory} | "
                         f"{describe(row['device'])} |")
    if report["train"]:
        lines += ["", "## Training step, full presets (random batches)", "",
                  "| backend | task | layers x H, N | batch x L | params | first step (s) | steps/s | examples/s |",
                  "|---|---|---|---|---|---|---|---|"]
        for backend, result in report["train"].items():
            if "error" in result:
                lines.append(f"| {backend} | {result['error']} | | | | | | |")
                continue
            for row in result["rows"]:
                lines.append(f"| {backend} | {row['task']} | {row['layers']} x {row['d_model']}, {row['d_state']} | "
                             f"{row['batch']} x {row['seq_len']} | {row['params']:,} | {row['first_step_s']:.1f} | "
                             f"{row['steps_per_s']:.2f} | {row['examples_per_s']:.1f} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=os.environ.get("OUT") or "gpu_check",
                        help="directory for gpu_check.json, gpu_check.md and the test logs (default: $OUT when "
                             "set, else ./gpu_check)")
    parser.add_argument("--smoke", action="store_true", help="the same code paths at tiny sizes (CPU, seconds)")
    parser.add_argument("--backends", nargs="+", choices=BACKENDS, default=list(BACKENDS),
                        help="Keras backends to check (default: every one; those not installed are skipped)")
    parser.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS),
                        help="what to run (default: everything; `devices` always runs)")
    parser.add_argument("--budget-s", type=float, default=None,
                        help="overall time limit in seconds (default 460; 600 with --smoke, where it only "
                             "guards against a hang)")
    parser.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(WORKERS[args.worker](args)), flush=True)
        return 0
    if args.budget_s is None:
        args.budget_s = 600.0 if args.smoke else 460.0
    if args.budget_s <= 0:
        parser.error(f"--budget-s must be positive, got {args.budget_s}")
    report = run_check(args)
    problems = incomplete(report)
    for problem in problems:
        print(f"NOT OK: {problem}", file=sys.stderr)
    return 1 if problems else 0


def incomplete(report):
    """What failed or was skipped for time (backends not installed are not problems)."""
    problems = [f"{b} tests: {r['summary']}" for b, r in report["tests"].items() if not r["passed"]]
    for section in ("devices", "accuracy", "train"):
        problems += [f"{b} {section}: {r['error']}" for b, r in report[section].items() if "error" in r]
    problems += [f"layers {r['impl']} {r['layer']} {r['size']}: {r['error']}" for r in report["layers"] if "error" in r]
    return problems


if __name__ == "__main__":
    sys.exit(main())
