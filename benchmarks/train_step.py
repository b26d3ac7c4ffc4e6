"""Time and peak memory of one whole training step of the zoo model, per Keras backend, beside the same
architecture in plain PyTorch.

    python benchmarks/train_step.py                                  # listops and image, every backend
    python benchmarks/train_step.py --tasks image --backends jax torch-reference --batch 2
    python benchmarks/train_step.py --fixed-eigenvalues               # the reservoir setting
    python benchmarks/train_step.py --settings learned fixed          # both, one after the other
    python benchmarks/train_step.py --side-by-side                    # fixed / learned, alternating in one process

One step = forward, backward and the optimizer update on one batch of generated inputs at the task's
preset shapes (`zoo.configs.get_config(task, preset)`: layers, width, state size, length,
bidirectional blocks, norm, dropout). The batch is the preset's on a GPU; on a CPU it defaults to
--batch (4), the same for every implementation.

- Keras backends (`jax`, `tensorflow`, `torch`): the zoo model itself (`zoo.models.build_model`),
  compiled as every zoo run is (`zoo.core.compile_model`: SSMAdamW with warmup + cosine,
  cross-entropy on logits), stepped with `model.train_on_batch`.
- `torch-reference`: the same architecture written in plain PyTorch: embedding (token tasks) or a
  linear encoder (real-valued inputs), blocks norm(x + dropout(S4D(x))) (post-norm) or
  x + dropout(S4D(norm(x))) (pre-norm) with the reference S4D module's math (`s4d_layer.reference_s4d`,
  bidirectional when the preset is), final norm for pre-norm, mean pooling, a linear decoder, and
  torch.optim.AdamW (the SSM parameters in their own group: ssm_lr, no weight decay).

Each (implementation, task, setting) runs in its own subprocess. Time: median of --repeats steps after
--warmup steps (compilation excluded), with the default allocator. Memory: peak resident set above the
baseline in one more step after the timed ones (mmap threshold pinned for that step only) on a CPU,
the device allocator's peak on a GPU (helpers shared with `s4d_layer.py`).
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys

from s4d_layer import REPO_ROOT, gpu_peak_bytes, installed, interleaved_times, time_passes, write_json

IMPLEMENTATIONS = ("jax", "tensorflow", "torch", "torch-reference")
TASKS = ("listops", "image")


def task_config(task, preset, fixed):
    from zoo.configs import get_config

    return get_config(task, preset, trainable_eigenvalues=not fixed, verbose=0)


def generated_batch(config, spec, batch):
    """Inputs and labels of the task's shape: token ids in 1..vocab-1 (no padding), or real values."""
    import numpy as np

    rng = np.random.default_rng(0)
    if spec.vocab_size is not None:
        x = rng.integers(1, spec.vocab_size, size=(batch, spec.seq_len)).astype("int32")
    else:
        x = rng.normal(size=(batch, spec.seq_len, spec.n_features)).astype("float32")
    y = rng.integers(0, spec.num_classes, size=(batch,)).astype("int32")
    return x, y


def on_gpu(impl):
    try:
        if impl in ("torch", "torch-reference"):
            import torch

            return torch.cuda.is_available()
        if impl == "jax":
            import jax

            return jax.devices()[0].platform == "gpu"
        import tensorflow as tf

        return bool(tf.config.list_physical_devices("GPU"))
    except Exception:  # no device query on exotic installs: treat as CPU
        return False


def keras_train_step(config, spec, batch):
    import keras

    from zoo.models import build_model, count_parameters
    from zoo.core import compile_model

    keras.utils.set_random_seed(0)
    model = build_model(config, spec)
    compile_model(model, config, steps_per_epoch=1000)
    x, y = generated_batch(config, spec, batch)

    def step():
        return model.train_on_batch(x, y)  # returns python floats: the step has finished

    return step, (lambda out: None), count_parameters(model)["trainable"]


def torch_reference_train_step(config, spec, batch):
    import torch
    from torch import nn

    from s4d_layer import reference_s4d

    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(0)
    H = config.d_model
    channels = 2 if config.bidirectional else 1

    def norm():
        return nn.BatchNorm1d(H) if config.norm == "batch" else _LayerNorm(H)

    class _Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ssm = reference_s4d(H, config.d_state, channels, dropout=config.dropout)
            self.norm = norm()
            self.dropout = nn.Dropout1d(config.dropout)

        def forward(self, x):  # (B, H, L)
            z = self.norm(x) if config.prenorm else x
            x = x + self.dropout(self.ssm(z))
            return x if config.prenorm else self.norm(x)

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            if spec.vocab_size is not None:
                self.encoder = nn.Embedding(spec.vocab_size, H)
            else:
                self.encoder = nn.Linear(spec.n_features, H)
            self.blocks = nn.ModuleList([_Block() for _ in range(config.num_layers)])
            self.final_norm = norm() if config.prenorm else nn.Identity()
            self.decoder = nn.Linear(H, spec.num_classes)

        def forward(self, x):
            x = self.encoder(x).transpose(-1, -2)  # (B, H, L)
            for block in self.blocks:
                x = block(x)
            return self.decoder(self.final_norm(x).mean(dim=-1))

    model = Model().to(device)
    ssm_names = ("log_dt", "log_A_real", "A_imag")
    ssm = [p for name, p in model.named_parameters() if name.split(".")[-1] in ssm_names]
    if not config.trainable_eigenvalues:
        for p in ssm:
            p.requires_grad_(False)
    ssm_ids = {id(p) for p in ssm}
    other = [p for p in model.parameters() if id(p) not in ssm_ids]
    optimizer = torch.optim.AdamW(
        [{"params": other, "weight_decay": config.weight_decay},
         {"params": [p for p in ssm if p.requires_grad], "lr": config.ssm_lr, "weight_decay": 0.0}],
        lr=config.lr,
    )
    x, y = generated_batch(config, spec, batch)
    x, y = torch.as_tensor(x, device=device), torch.as_tensor(y, device=device, dtype=torch.long)
    if spec.vocab_size is None:
        x = x.float()
    model.train()
    loss_fn = nn.CrossEntropyLoss()

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
        return loss

    sync = (lambda out: torch.cuda.synchronize()) if device == "cuda" else (lambda out: out.item())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return step, sync, trainable


def _LayerNorm(H):
    """LayerNorm over the feature axis of (B, H, L) tensors."""
    from torch import nn

    class ChannelLayerNorm(nn.LayerNorm):
        def forward(self, x):
            return super().forward(x.transpose(-1, -2)).transpose(-1, -2)

    return ChannelLayerNorm(H)


def build_step(impl, config, spec, args):
    batch = config.batch_size if on_gpu(impl) else args.batch
    if impl == "torch-reference":
        step, sync, trainable = torch_reference_train_step(config, spec, batch)
    else:
        step, sync, trainable = keras_train_step(config, spec, batch)
    return step, sync, trainable, batch


def worker(args):
    from zoo.models import nominal_input_spec

    if args.setting == "side-by-side":
        return side_by_side_worker(args)
    config = task_config(args.task, args.preset, args.setting == "fixed")
    spec = nominal_input_spec(args.task, config.data_options)
    step, sync, trainable, batch = build_step(args.impl, config, spec, args)
    times, rss_peak = time_passes(step, args.warmup, args.repeats, sync)
    gpu_peak = gpu_peak_bytes(args.impl)
    print(json.dumps({
        "impl": args.impl, "task": args.task, "preset": args.preset, "setting": args.setting,
        "batch": batch, "layers": config.num_layers, "H": config.d_model, "n": config.d_state,
        "L": spec.seq_len, "trainable_parameters": int(trainable),
        "median_s": statistics.median(times), "min_s": min(times), "times_s": times,
        "peak_bytes": gpu_peak if gpu_peak is not None else rss_peak,
        "memory": "gpu" if gpu_peak is not None else "cpu-rss",
    }))


def side_by_side_worker(args):
    """The learned and the fixed model of one task in one process, stepped alternately (one step of
    each per round), so both see the same load: their times and the median per-round ratio."""
    from zoo.models import nominal_input_spec

    steps = {}
    for setting in ("learned", "fixed"):
        config = task_config(args.task, args.preset, setting == "fixed")
        spec = nominal_input_spec(args.task, config.data_options)
        steps[setting] = build_step(args.impl, config, spec, args)
    times = dict(zip(steps, interleaved_times([(step, sync) for step, sync, _, _ in steps.values()],
                                              args.warmup, args.repeats)))
    print(json.dumps({
        "impl": args.impl, "task": args.task, "preset": args.preset, "setting": "side-by-side",
        "batch": steps["learned"][3], "layers": config.num_layers, "H": config.d_model, "n": config.d_state,
        "L": spec.seq_len, "times_s": times,
        "median_s": {setting: statistics.median(t) for setting, t in times.items()},
        "fixed_over_learned": statistics.median(f / lr for f, lr in zip(times["fixed"], times["learned"])),
    }))


def run_one(impl, task, setting, args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    env["PYTHONPATH"] = os.pathsep.join([REPO_ROOT] + [p for p in [env.get("PYTHONPATH")] if p])  # time this checkout
    if impl != "torch-reference":
        env["KERAS_BACKEND"] = impl
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", "--impl", impl, "--task", task,
           "--setting", setting, "--preset", args.preset, "--batch", str(args.batch),
           "--warmup", str(args.warmup), "--repeats", str(args.repeats)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["?"]
        return {"impl": impl, "task": task, "setting": setting, "error": tail[0][:200]}
    return json.loads(lines[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backends", nargs="+", choices=IMPLEMENTATIONS, default=list(IMPLEMENTATIONS),
                        help="implementations to run (default: every installed one)")
    parser.add_argument("--tasks", nargs="+", choices=TASKS, default=list(TASKS), help="preset shapes to use")
    parser.add_argument("--preset", choices=("full", "small", "quick"), default="full",
                        help="zoo preset giving the model and input shapes (default: full)")
    parser.add_argument("--settings", nargs="+", choices=("learned", "fixed"), default=["learned"],
                        help="learned eigenvalues, fixed ones (the reservoir setting), or both")
    parser.add_argument("--fixed-eigenvalues", action="store_true", help="shorthand for --settings fixed")
    parser.add_argument("--side-by-side", action="store_true",
                        help="time the learned and the fixed model alternately in one process per "
                             "(implementation, task) and report their ratio (no memory, no reference speed-up)")
    parser.add_argument("--batch", type=int, default=4, help="batch size on a CPU (a GPU uses the preset's)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first (compilation)")
    parser.add_argument("--repeats", type=int, default=5, help="timed steps (median reported)")
    parser.add_argument("--json", help="also write the rows to this JSON file")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--impl", help=argparse.SUPPRESS)
    parser.add_argument("--task", help=argparse.SUPPRESS)
    parser.add_argument("--setting", default="learned", help=argparse.SUPPRESS)
    args = parser.parse_args()
    for name in ("batch", "repeats"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1, got {getattr(args, name)}")
    if args.warmup < 0:
        parser.error(f"--warmup must be >= 0, got {args.warmup}")
    if args.worker:
        return worker(args)
    settings = ["fixed"] if args.fixed_eigenvalues else args.settings
    if args.side_by_side:
        return side_by_side(args)

    rows = []
    print(machine_header(args))
    print("| task | setting | implementation | batch, layers x H, n, L | step median (ms) | peak memory (MiB) | "
          "speed-up vs torch-reference | memory vs torch-reference | trainable params |")
    print("|---|---|---|---|---|---|---|---|---|")
    for task in args.tasks:
        for setting in settings:
            reference = run_one("torch-reference", task, setting, args) if installed("torch-reference") else None
            results = ([reference] if reference and "torch-reference" in args.backends else []) + [
                run_one(impl, task, setting, args)
                for impl in args.backends if impl != "torch-reference" and installed(impl)
            ]
            for row in results:
                rows.append(row)
                if "error" in row:
                    print(f"| {task} | {setting} | {row['impl']} | | failed: {row['error']} | | | | |", flush=True)
                    continue
                ok_ref = reference is not None and "error" not in reference
                speed = f"{reference['median_s'] / row['median_s']:.2f}x" if ok_ref else "-"
                memory = f"{row['peak_bytes'] / max(reference['peak_bytes'], 1):.2f}" if ok_ref else "-"
                shape = f"{row['batch']}, {row['layers']}x{row['H']}, {row['n']}, {row['L']}"
                print(f"| {task} | {setting} | {row['impl']} | {shape} | {1e3 * row['median_s']:.0f} | "
                      f"{row['peak_bytes'] / 2**20:.0f} ({row['memory']}) | {speed} | {memory} | "
                      f"{row['trainable_parameters']:,} |", flush=True)
    if args.json:
        write_json(rows, args.json)


def machine_header(args):
    return (f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
            f"python {platform.python_version()}, preset {args.preset}, CPU batch {args.batch}")


def side_by_side(args):
    rows = []
    print(machine_header(args) + "; learned and fixed stepped alternately in one process")
    print("| task | implementation | batch, layers x H, n, L | learned step (ms) | fixed step (ms) | fixed / learned |")
    print("|---|---|---|---|---|---|")
    for task in args.tasks:
        for impl in args.backends:
            if not installed(impl):
                continue
            row = run_one(impl, task, "side-by-side", args)
            rows.append(row)
            if "error" in row:
                print(f"| {task} | {impl} | | failed: {row['error']} | | |", flush=True)
                continue
            shape = f"{row['batch']}, {row['layers']}x{row['H']}, {row['n']}, {row['L']}"
            print(f"| {task} | {impl} | {shape} | {1e3 * row['median_s']['learned']:.0f} | "
                  f"{1e3 * row['median_s']['fixed']:.0f} | {row['fixed_over_learned']:.2f} |", flush=True)
    if args.json:
        write_json(rows, args.json)


if __name__ == "__main__":
    main()
