"""Forward+backward time and peak memory of one SSM layer, per Keras backend, beside plain PyTorch.

    python benchmarks/s4d_layer.py                          # all installed backends, the three issue sizes
    python benchmarks/s4d_layer.py --sizes 16,256,64,1024 --backends jax torch-reference
    python benchmarks/s4d_layer.py --layers s4d s4          # also the S4 layer (DPLR kernel)
    python benchmarks/s4d_layer.py --interleave             # + the speed-up against the reference in one process

The peer, `torch-reference`, is the S4D module of the reference implementation written out in plain
PyTorch (complex tensors, the whole (H, N/2, L) Vandermonde tensor, FFT convolution, GELU, 1x1
Conv1d(H, 2H) + GLU): the same math and the same parameter count as `keras_ssm.S4D` with its defaults.

Each (implementation, size) runs in its own subprocess. Time: median of --repeats forward+backward
passes (loss = sum of outputs, gradients for every parameter and the input) after --warmup passes
(compilation excluded), with the default allocator. With --interleave, each implementation's process
also builds the torch reference and times one pass of each in turn; the median of the per-pass
ratios is the "interleaved" speed-up, which a shared machine's changing load moves far less than
the ratio of medians taken minutes apart. Every row names the device it ran on
(keras_ssm.devices). Memory: on CPU, the peak resident set sampled every millisecond during one more
pass after the timed ones, minus the resident set just before it (glibc's mmap threshold is pinned
for that pass so freed buffers go back to the OS at once); on GPU, the device allocator's peak.
"""

import argparse
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)  # keras_ssm from this checkout
from keras_ssm.devices import describe  # noqa: E402  (imports no backend)
from zoo.registry import SSM_LAYERS  # noqa: E402  (imports no backend)

DEFAULT_SIZES = [(16, 256, 64, 1024), (8, 128, 64, 4096), (2, 128, 64, 16384)]
IMPLEMENTATIONS = ("jax", "tensorflow", "torch", "torch-reference")


class RssSampler:
    """Peak resident set size (bytes) of this process, sampled in a background thread."""

    def __init__(self, period=1e-3):
        self.period = period
        self.peak = 0
        self._stop = threading.Event()
        self._page = os.sysconf("SC_PAGE_SIZE")

    def rss(self):
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * self._page

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.rss())
            time.sleep(self.period)

    def __enter__(self):
        self.baseline = self.rss()
        self.peak = self.baseline
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.rss())


def pin_mmap_threshold(threshold=65536):
    """From now on glibc serves every allocation above `threshold` bytes by its own mmap, so a freed
    buffer leaves the resident set at once and the sampled peak is the live memory; the free heap
    memory of earlier passes is returned first (malloc_trim), so later passes cannot reuse it unseen
    (glibc only; returns False elsewhere). Only the memory pass runs like this: it makes every large
    allocation fault in fresh pages, which slowed the timed passes by 5-75% when it was on for them."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
        pinned = bool(libc.mallopt(M_MMAP_THRESHOLD, threshold)) and bool(libc.mallopt(M_TRIM_THRESHOLD, threshold))
        libc.malloc_trim(0)
        return pinned
    except (OSError, AttributeError, TypeError):
        return False


def time_passes(step, warmup, repeats, sync, memory_passes=1):
    """(times of `repeats` passes after `warmup` untimed ones, peak resident set above the baseline in
    `memory_passes` further passes). The timed passes run with the default allocator and no sampler
    thread; the memory passes after them with the mmap threshold pinned (`pin_mmap_threshold`)."""
    (times,) = interleaved_times([(step, sync)], warmup, repeats)
    return times, memory_peak(step, sync, memory_passes)


def interleaved_times(steps, warmup, repeats):
    """[times of each (step, sync)]: `warmup` untimed passes of each, then `repeats` rounds of one timed
    pass of each in turn, so every step sees the same changing load."""
    for step, sync in steps:
        for _ in range(warmup):
            sync(step())
    times = [[] for _ in steps]
    for _ in range(repeats):
        for (step, sync), own in zip(steps, times):
            start = time.perf_counter()
            sync(step())
            own.append(time.perf_counter() - start)
    return times


def memory_peak(step, sync, passes=1):
    """Peak resident set above the baseline during `passes` passes, after `pin_mmap_threshold`."""
    pin_mmap_threshold()
    sampler = RssSampler()
    with sampler:
        for _ in range(passes):
            sync(step())
    return sampler.peak - sampler.baseline


def write_json(rows, path):
    """Write the rows to `path` atomically (a temporary file beside it, then a rename)."""
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(rows, f, indent=1)
    os.replace(tmp, path)


def keras_step(layer_name, batch, H, n, L, part="layer", **layer_kwargs):
    """A forward+backward closure for keras_ssm's layer on the active Keras backend (layer_kwargs go to
    the layer). part="layer": loss = sum of the layer's outputs, gradients for every trainable variable
    and the input; part="kernel": loss = sum of `convolution_kernel(L)` alone, gradients for every
    trainable variable (the part of the step that depends on the eigenvalues)."""
    import keras
    import numpy as np

    cls = SSM_LAYERS.lookup(layer_name).layer_class
    if part not in ("layer", "kernel"):
        raise ValueError(f"`part` must be 'layer' or 'kernel', got {part!r}")
    layer = cls(n=n, seed=0, **layer_kwargs)
    x = np.random.default_rng(0).normal(size=(batch, L, H)).astype("float32")
    layer.build(x.shape)

    def forward(inp):
        if part == "kernel":
            return keras.ops.sum(layer.convolution_kernel(L))
        return keras.ops.sum(layer(inp, training=True))

    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        x = jax.numpy.asarray(x)
        trainable = [v.value for v in layer.trainable_variables]
        fixed = [v.value for v in layer.non_trainable_variables]

        def loss(params, inp):
            mapping = list(zip(layer.trainable_variables, params)) + list(zip(layer.non_trainable_variables, fixed))
            with keras.StatelessScope(state_mapping=mapping):
                return forward(inp)

        grad = jax.jit(jax.value_and_grad(loss, argnums=(0, 1) if part == "layer" else 0))
        return lambda: grad(trainable, x), lambda out: jax.block_until_ready(out)
    if backend == "tensorflow":
        import tensorflow as tf

        x = tf.constant(x)

        @tf.function(jit_compile=False)
        def step():
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = forward(x)
            return y, tape.gradient(y, layer.trainable_variables + ([x] if part == "layer" else []))

        return step, lambda out: [t.numpy() for t in tf.nest.flatten(out) if t is not None]
    import torch

    x = keras.ops.convert_to_tensor(x).detach().requires_grad_()  # on Keras's device (cuda when there is one)

    def step():
        for v in layer.trainable_variables:
            v.value.grad = None
        y = forward(x)
        y.backward()
        return y

    return step, lambda out: (torch.cuda.synchronize() if torch.cuda.is_available() else None)


def reference_s4d(H, n, channels=1, dropout=0.0):
    """The reference S4D module's math in plain PyTorch: (B, H, L) -> (B, H, L), an nn.Module.

    Complex C of shape (channels, H, n/2), S4D-Inv eigenvalues, ZOH, the whole (H, n/2, L) Vandermonde
    tensor, FFT convolution (channels=2: the second kernel anticausal on strictly future inputs, as in
    the reference's bidirectional mode), D skip, GELU, channel dropout, 1x1 Conv1d(H, 2H) + GLU.
    """
    import math

    import torch
    from torch import nn

    class ReferenceS4D(nn.Module):
        def __init__(self):
            super().__init__()
            self.log_dt = nn.Parameter(
                torch.rand(H) * (math.log(0.1) - math.log(0.001)) + math.log(0.001)
            )
            self.C = nn.Parameter(torch.view_as_real(torch.randn(channels, H, n // 2, dtype=torch.cfloat)))
            k = torch.arange(n // 2)
            self.log_A_real = nn.Parameter(torch.log(0.5 * torch.ones(H, n // 2)))
            self.A_imag = nn.Parameter((n / math.pi) * (n / (2 * k + 1) - 1) * torch.ones(H, 1))
            self.D = nn.Parameter(torch.randn(H))
            self.dropout = nn.Dropout1d(dropout) if dropout > 0 else nn.Identity()
            self.output_linear = nn.Sequential(nn.Conv1d(H, 2 * H, kernel_size=1), nn.GLU(dim=-2))

        def kernel(self, length):
            dt = torch.exp(self.log_dt)
            C = torch.view_as_complex(self.C)
            A = -torch.exp(self.log_A_real) + 1j * self.A_imag
            dtA = A * dt.unsqueeze(-1)
            powers = torch.exp(dtA.unsqueeze(-1) * torch.arange(length, device=A.device))
            C = C * (torch.exp(dtA) - 1.0) / A
            return 2 * torch.einsum("chn,hnl->chl", C, powers).real

        def forward(self, u):  # (B, H, L)
            length = u.size(-1)
            k = self.kernel(length)
            if channels == 2:
                k = nn.functional.pad(k[0], (0, length)) + nn.functional.pad(k[1].flip(-1), (length, 0))
            else:
                k = k[0]
            k_f = torch.fft.rfft(k, n=2 * length)
            u_f = torch.fft.rfft(u, n=2 * length)
            y = torch.fft.irfft(u_f * k_f, n=2 * length)[..., :length]
            y = y + u * self.D.unsqueeze(-1)
            return self.output_linear(self.dropout(nn.functional.gelu(y)))

    return ReferenceS4D()


def torch_reference_step(batch, H, n, L):
    """Plain PyTorch S4D (the reference module's math), on the GPU when there is one."""
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(0)
    module = reference_s4d(H, n).to(device)
    x = torch.randn(batch, H, L, device=device, requires_grad=True)

    def step():
        module.zero_grad(set_to_none=True)
        y = module(x).sum()
        y.backward()
        return y

    sync = (lambda out: torch.cuda.synchronize()) if device == "cuda" else (lambda out: None)
    return step, sync


def gpu_peak_bytes(impl):
    """Peak device memory where the implementation runs on a GPU, else None."""
    try:
        if impl in ("torch", "torch-reference"):
            import torch

            if torch.cuda.is_available():
                return torch.cuda.max_memory_allocated()
        elif impl == "jax":
            import jax

            device = jax.devices()[0]
            if device.platform == "gpu":
                return device.memory_stats().get("peak_bytes_in_use")
        elif impl == "tensorflow":
            import tensorflow as tf

            if tf.config.list_physical_devices("GPU"):
                return tf.config.experimental.get_memory_info("GPU:0")["peak"]
    except Exception:  # memory statistics are best effort on exotic devices
        return None
    return None


def device_of(impl):
    """keras_ssm.devices.device_info of the backend the implementation runs on (torch for the reference)."""
    from keras_ssm.devices import device_info

    return device_info("torch" if impl == "torch-reference" else impl)


def worker(args):
    batch, H, n, L = args.size
    if args.impl == "torch-reference":
        step, sync = torch_reference_step(batch, H, n, L)
    else:
        step, sync = keras_step(args.layer, batch, H, n, L)
    row = {"device": device_of(args.impl), "impl": args.impl,
           "layer": "s4d" if args.impl == "torch-reference" else args.layer, "size": args.size}
    if args.interleave and args.impl != "torch-reference":
        times, reference_times = interleaved_times([(step, sync), torch_reference_step(batch, H, n, L)],
                                                   args.warmup, args.repeats)
        row["reference_times_s"] = reference_times
        row["speedup_interleaved"] = statistics.median(r / t for r, t in zip(reference_times, times))
    else:
        (times,) = interleaved_times([(step, sync)], args.warmup, args.repeats)
    rss_peak = memory_peak(step, sync)
    gpu_peak = gpu_peak_bytes(args.impl)
    row.update({
        "median_s": statistics.median(times), "min_s": min(times), "times_s": times,
        "peak_bytes": gpu_peak if gpu_peak is not None else rss_peak,
        "memory": "gpu" if gpu_peak is not None else "cpu-rss",
    })
    print(json.dumps(row))


def run_one(impl, layer, size, args, timeout=None):
    """One (implementation, layer, size) in its own subprocess: its JSON row, or a row with "error"."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    env["PYTHONPATH"] = os.pathsep.join([REPO_ROOT] + [p for p in [env.get("PYTHONPATH")] if p])  # time this checkout
    if impl != "torch-reference":
        env["KERAS_BACKEND"] = impl
    cmd = [sys.executable, __file__, "--worker", "--impl", impl, "--layer", layer,
           "--size", ",".join(map(str, size)), "--warmup", str(args.warmup), "--repeats", str(args.repeats)]
    if getattr(args, "interleave", False):
        cmd.append("--interleave")
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"impl": impl, "layer": layer, "size": list(size), "error": f"timed out after {timeout:.0f} s"}
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["?"]
        return {"impl": impl, "layer": layer, "size": list(size), "error": tail[0][:200]}
    return json.loads(lines[-1])


def installed(impl):
    return importlib.util.find_spec({"torch-reference": "torch"}.get(impl, impl)) is not None


def parse_size(text):
    parts = [int(p) for p in text.split(",")]
    if len(parts) != 4 or min(parts) < 1:
        raise argparse.ArgumentTypeError(f"--sizes takes batch,H,n,L with positive integers, got {text!r}")
    return parts


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backends", nargs="+", choices=IMPLEMENTATIONS, default=list(IMPLEMENTATIONS),
                        help="implementations to run (default: every installed one)")
    parser.add_argument("--layers", nargs="+", choices=SSM_LAYERS, default=["s4d"],
                        help="keras_ssm layers to time (the torch reference is S4D)")
    parser.add_argument("--sizes", nargs="+", type=parse_size, default=DEFAULT_SIZES,
                        help="batch,H,n,L tuples (default: the three sizes of the issue)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed passes first (compilation)")
    parser.add_argument("--repeats", type=int, default=5, help="timed passes (median reported)")
    parser.add_argument("--interleave", action="store_true",
                        help="also time the torch reference in each implementation's process, one pass of "
                             "each in turn, and report the median per-round speed-up (robust to a shared "
                             "machine's changing load; CPU only: on a GPU two frameworks share its memory)")
    parser.add_argument("--json", help="also write the rows to this JSON file")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--impl", help=argparse.SUPPRESS)
    parser.add_argument("--layer", default="s4d", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=parse_size, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)

    rows = []
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}")
    print("| layer | implementation | batch, H, n, L | fwd+bwd median (ms) | peak memory (MiB) | "
          "speed-up vs torch-reference | "
          "speed-up, interleaved | memory vs torch-reference | device |")
    print("|---|---|---|---|---|---|---|---|---|")
    for size in args.sizes:
        reference = run_one("torch-reference", "s4d", size, args) if installed("torch") else None
        jobs = [(impl, layer) for layer in args.layers for impl in args.backends if impl != "torch-reference"]
        results = ([reference] if reference and "torch-reference" in args.backends else []) + [
            run_one(impl, layer, size, args) for impl, layer in jobs if installed(impl)
        ]
        for row in results:
            rows.append(row)
            label = ", ".join(map(str, size))
            if "error" in row:
                print(f"| {row['layer']} | {row['impl']} | {label} | failed: {row['error']} | | | | | |")
                continue
            ok_ref = reference is not None and "error" not in reference
            speed = f"{reference['median_s'] / row['median_s']:.2f}x" if ok_ref else "-"
            memory = f"{row['peak_bytes'] / max(reference['peak_bytes'], 1):.3f}" if ok_ref else "-"
            interleaved = f"{row['speedup_interleaved']:.2f}x" if "speedup_interleaved" in row else "-"
            print(f"| {row['layer']} | {row['impl']} | {label} | {1e3 * row['median_s']:.1f} | "
                  f"{row['peak_bytes'] / 2**20:.0f} ({row['memory']}) | {speed} | {interleaved} | {memory} | "
                  f"{describe(row['device'])} |", flush=True)
    if args.json:
        write_json(rows, args.json)


if __name__ == "__main__":
    main()
