"""Run directories: exact resume after a real SIGKILL, divergence stops, one writer per directory,
--overwrite and failed starts, atomic files and damaged ones, command-line errors (issue 13)."""

import csv
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import h5py
import keras
import numpy as np
import pytest

import keras_ssm

from conftest import corrupt_classifier_at, tiny_config
from zoo.callbacks import TrainingDivergedError, read_backup
from zoo.configs import get_config, parse_backup_every
from zoo.interrupts import Preempted, handle_interrupts
from zoo.rundir import DamagedFileError, DirectoryLock, LockedError, RunDirectoryError, scheduler_job
from zoo.runs import train

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(keras.backend.backend() != "jax", reason="bit-exact resume is checked on jax")


@pytest.fixture(scope="module")
def compile_cache(tmp_path_factory):
    """A persistent XLA compilation cache shared by this module's processes (compiles once, not per run)."""
    import jax

    directory = str(tmp_path_factory.mktemp("jax-cache"))
    settings = {"jax_compilation_cache_dir": directory, "jax_persistent_cache_min_compile_time_secs": 0,
                "jax_persistent_cache_min_entry_size_bytes": -1}
    previous = {key: getattr(jax.config, key) for key in settings}
    for key, value in settings.items():
        jax.config.update(key, value)
    yield {"JAX_COMPILATION_CACHE_DIR": directory, "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
           "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "-1"}
    for key, value in previous.items():
        jax.config.update(key, value)


def tiny(out, **overrides):
    """Delayed recall, 1 block of H=8, N=4, 8 steps per epoch, dropout on (so the seed generators matter)."""
    values = dict(d_model=8, d_state=4, epochs=3, batch_size=32, verbose=0, memory_horizon=16,
                  dropout=0.1, data_options=dict(seq_len=16, delay=2, num_train=256, num_val=64, num_test=64),
                  output_dir=str(out))
    values.update(overrides)
    return tiny_config("delayed_recall_short", **values)


def _env(compile_cache):
    return {**os.environ, **compile_cache, "KERAS_BACKEND": "jax",
            "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}


# A training process that SIGKILLs itself at a chosen point: after training step STEP (counted over the
# whole run), or right before the backup of epoch EPOCH is written (after that epoch's history row); or that
# gets a real SIGTERM after step STEP, under the CLIs' signal handling (zoo.cli_common.run_interruptible).
KILL_SCRIPT = textwrap.dedent(
    """
    import json, os, signal, sys
    import keras
    from zoo import callbacks
    from zoo.cli_common import run_interruptible
    from zoo.configs import TrainConfig
    from zoo.runs import train

    config = TrainConfig.from_dict(json.loads(sys.argv[1]))
    where, at = sys.argv[2], int(sys.argv[3])

    class KillAtStep(keras.callbacks.Callback):
        steps = 0

        def on_train_batch_end(self, batch, logs=None):
            KillAtStep.steps += 1
            if where in ("step", "sigterm") and KillAtStep.steps == at:
                os.kill(os.getpid(), signal.SIGKILL if where == "step" else signal.SIGTERM)

    save = callbacks.RunBackup.save_backup

    def save_or_die(self, epoch, batch=0):
        if where == "backup" and epoch == at and not batch:
            os.kill(os.getpid(), signal.SIGKILL)
        save(self, epoch, batch)

    callbacks.RunBackup.save_backup = save_or_die
    sys.exit(run_interruptible(lambda _: train(config, callbacks=[KillAtStep()]) and 0, None, "Rerun to resume."))
    """
)


def run_and_kill(config, where, at, compile_cache, returncode=-signal.SIGKILL, env=None):
    result = subprocess.run([sys.executable, "-c", KILL_SCRIPT, json.dumps(config.to_dict()), where, str(at)],
                            cwd=REPO, env={**_env(compile_cache), **(env or {})}, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == returncode, result.stderr[-3000:]
    return result.stderr


def h5_arrays(path):
    arrays = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: arrays.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
    return arrays


def history_rows(path):
    """history.csv rows without the timing column (the only one allowed to differ)."""
    with open(path, newline="") as f:
        return [{k: v for k, v in row.items() if k != "train_time_s"} for row in csv.DictReader(f)]


def assert_same_run(a, b):
    """Run directories a and b hold bit-identical training: final weights + optimizer state, history,
    best model, test accuracy."""
    wa = h5_arrays(a / "checkpoints" / read_backup(a / "checkpoints")["weights"])
    wb = h5_arrays(b / "checkpoints" / read_backup(b / "checkpoints")["weights"])
    assert sorted(wa) == sorted(wb) and any("optimizer" in k for k in wa)
    for key in wa:
        np.testing.assert_array_equal(wa[key], wb[key], err_msg=key)
    assert history_rows(a / "history.csv") == history_rows(b / "history.csv")
    for x, y in zip(keras.saving.load_model(a / "best.keras").get_weights(),
                    keras.saving.load_model(b / "best.keras").get_weights()):
        np.testing.assert_array_equal(x, y)
    ra, rb = (json.loads((d / "results.json").read_text()) for d in (a, b))
    assert ra["test_accuracy"] == rb["test_accuracy"] and ra["best_epoch"] == rb["best_epoch"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory, compile_cache):
    """The uninterrupted run."""
    out = tmp_path_factory.mktemp("reference") / "run"
    results = train(tiny(out))
    assert results["epochs_completed"] == 3 and results["resumed_from_epoch"] == 0
    return out


def tree_digest(directory):
    return {str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(Path(directory).rglob("*")) if p.is_file()}


# ---------------------------------------------------------------------------------------------
# Defect 6: a resumed run equals the uninterrupted one bit for bit.

@pytest.mark.processes
@pytest.mark.parametrize("backup_every, backup_step, requeued", [("epoch", 0, False), ("2", 4, True)])
def test_resume_after_sigkill_mid_epoch_is_bit_identical(tmp_path, reference, compile_cache, capsys, monkeypatch,
                                                         backup_every, backup_step, requeued):
    """requeued: the killed process was attempt 0 of SLURM job 4242 on another node; attempt 1 takes over."""
    out = tmp_path / "run"
    config = tiny(out, backup_every=backup_every)
    run_and_kill(config, "step", 13, compile_cache,  # epoch 2 of 3, batch 5 of 8
                 env={"SLURM_JOB_ID": "4242"} if requeued else None)
    backup = read_backup(out / "checkpoints")
    assert (backup["epoch"], backup["batch"]) == (1, backup_step)  # every 2 steps: the one after step 4
    assert (out / ".lock").exists()  # left by the killed process
    if requeued:
        lock = json.loads((out / ".lock").read_text())
        assert lock["job"] == {"id": "4242", "attempt": 0}
        (out / ".lock").write_text(json.dumps({**lock, "host": "node17"}))  # as if it ran on another node
        monkeypatch.setenv("SLURM_JOB_ID", "4242")
        monkeypatch.setenv("SLURM_RESTART_COUNT", "1")
    results = train(config)
    err = capsys.readouterr().err
    assert ("attempt 0 of job 4242 on host 'node17', and this is attempt 1" if requeued else "no longer runs") in err
    assert results["resumed_from_epoch"] == 1 and results["epochs_completed"] == 3
    assert not (out / ".lock").exists()
    assert_same_run(reference, out)


@pytest.mark.processes
@pytest.mark.parametrize("step, epoch, batch, saved", [(10, 1, 3, "the backup of epoch 2, step 3"),
                                                       (15, 2, 0, "the backup after epoch 2")])
def test_sigterm_saves_the_step_releases_the_lock_exits_75_and_resumes_bit_identical(
        tmp_path, reference, compile_cache, step, epoch, batch, saved):
    """A real SIGTERM sent during the callbacks of global step ``step`` is taken at the end of the next step
    (epoch 2, step 3 of 8), or, when that is an epoch's last step, at the epoch end (after its validation)."""
    out = tmp_path / "run"
    config = tiny(out)  # no periodic mid-epoch backups: only the one the signal asks for
    err = run_and_kill(config, "sigterm", step, compile_cache, returncode=75)
    backup = read_backup(out / "checkpoints")
    assert (backup["epoch"], backup["batch"]) == (epoch, batch)
    assert f"Preempted (SIGTERM). Saved {saved} in " in err and "Traceback" not in err
    assert not (out / ".lock").exists()
    results = train(config)
    assert results["resumed_from_epoch"] == epoch and results["epochs_completed"] == 3
    assert_same_run(reference, out)


class SignalAtStep(keras.callbacks.Callback):
    """Send ``signal_number`` to this process after global training step ``step``."""

    def __init__(self, step, signal_number):
        super().__init__()
        self.step, self.signal_number, self.steps = step, signal_number, 0

    def on_train_batch_end(self, batch, logs=None):
        self.steps += 1
        if self.steps == self.step:
            signal.raise_signal(self.signal_number)


def test_mid_epoch_backups_and_a_preemption_signal_resume_at_the_exact_step_bit_identical(tmp_path, reference,
                                                                                          capsys):
    """In process: backups after steps 3 and 6 of each epoch (backup_every=3), and SIGUSR1 sent while the
    callbacks of global step 13 run (epoch 2, step 5): taken at the end of step 6, which is backed up;
    Preempted is raised, the lock released, the older weights files deleted; the rerun resumes there."""
    out = tmp_path / "run"
    config = tiny(out, backup_every="3")
    with handle_interrupts(("SIGUSR1",)), pytest.raises(Preempted) as stop:
        train(config, callbacks=[SignalAtStep(13, signal_number=signal.SIGUSR1)])
    assert stop.value.signal_name == "SIGUSR1" and not (out / ".lock").exists()
    assert signal.getsignal(signal.SIGUSR1) is signal.SIG_DFL  # handlers restored
    backup = read_backup(out / "checkpoints")
    assert (backup["epoch"], backup["batch"]) == (1, 6) and backup["weights"] == "epoch-1-step-6.weights.h5"
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == [
        "epoch-1-step-6.weights.h5", "initial.weights.h5", "training_metadata.json"]
    results = train(config.replace(verbose=1))
    assert "resuming from" in capsys.readouterr().out and results["resumed_from_epoch"] == 1
    assert_same_run(reference, out)


@pytest.mark.parametrize("text, expected", [("epoch", (None, None)), ("500", (500, None)), ("10m", (None, 600.0)),
                                            ("90s,200", (200, 90.0))])
def test_backup_every_forms(text, expected):
    assert parse_backup_every(text) == expected
    assert tiny("unused", backup_every=500).backup_every == "500"  # --set backup_every=500 parses as a number


@pytest.mark.parametrize("text", ["", "0", "-5", "10h", "5m,6m", "abc", 2.5])
def test_backup_every_rejects_with_the_forms(text):
    with pytest.raises(ValueError, match="backup_every.*(a string|'epoch', a number of steps)"):
        tiny("unused", backup_every=text)


# Defect 5: a kill between an epoch's history row and its backup neither duplicates nor loses the epoch.

@pytest.mark.processes
def test_kill_between_history_row_and_backup_keeps_one_row_per_epoch(tmp_path, reference, compile_cache):
    out = tmp_path / "run"
    config = tiny(out)
    run_and_kill(config, "backup", 2, compile_cache)
    assert [row["epoch"] for row in history_rows(out / "history.csv")] == ["0", "1"]  # written before the kill
    assert read_backup(out / "checkpoints")["epoch"] == 1
    train(config)
    assert [row["epoch"] for row in history_rows(out / "history.csv")] == ["0", "1", "2"]
    assert_same_run(reference, out)


# --track-memory: a run killed after a record that its last backup predates repeats that stretch of training
# and its records once; the tracking equals the uninterrupted run's.

@pytest.mark.processes
def test_memory_tracking_resumes_after_sigkill_without_gaps_or_duplicates(tmp_path, compile_cache):
    tracked = dict(track_memory=3, backup_every="4")
    uninterrupted = tmp_path / "reference"
    train(tiny(uninterrupted, **tracked))
    out = tmp_path / "run"
    config = tiny(out, **tracked)
    run_and_kill(config, "step", 15, compile_cache)  # backup at step 12, records up to step 15
    killed = keras_ssm.load_memory_tracking(out)
    assert list(killed.steps) == [0, 3, 6, 9, 12, 15]
    train(config)
    expected, resumed = keras_ssm.load_memory_tracking(uninterrupted), keras_ssm.load_memory_tracking(out)
    assert list(resumed.steps) == list(expected.steps) == list(range(0, 25, 3))
    for key in expected.arrays:
        np.testing.assert_allclose(resumed.array(*key.split("/", 1)), expected.array(*key.split("/", 1)),
                                   rtol=1e-5, atol=1e-7, err_msg=key)
    assert (out / "memory_tracking.png").is_file()
    assert json.loads((out / "results.json").read_text())["artifacts"]["memory_tracking"] == "memory_tracking.json"


# ---------------------------------------------------------------------------------------------
# Defect 1: a diverged run is not continued unless asked; the message tells the truth.

def test_divergence_stop_refuses_a_plain_rerun_and_continues_only_when_asked(tmp_path, compile_cache):
    out = tmp_path / "run"
    config = tiny(out, divergence_factor=5.0)
    with pytest.raises(TrainingDivergedError) as info:
        train(config, callbacks=[corrupt_classifier_at(1, lambda k: k * 1e4)])
    message = str(info.value)
    assert "at epoch 2, batch" in message and "backup of epoch 1" in message and "--resume-diverged" in message
    assert "best.keras (epoch 1)" in message
    assert read_backup(out / "checkpoints")["epoch"] == 1
    assert not (out / "results.json").exists()
    reference_loss = read_backup(out / "checkpoints")["run"]["divergence_reference"]
    assert 1.0 < reference_loss < 4.0  # the run's first batch loss (log 8 = 2.08 at chance), kept for the resume

    # The same command is refused (it would diverge the same way); so is a lower lr without the flag.
    with pytest.raises(RunDirectoryError, match="stopped on divergence.*--resume-diverged"):
        train(config)
    with pytest.raises(RunDirectoryError, match="only with --resume-diverged"):
        train(config.replace(lr=config.lr / 2))
    assert not (out / "results.json").exists()

    lower = config.replace(lr=config.lr / 2)
    results = train(lower, resume_diverged=True)
    assert results["resumed_from_epoch"] == 1 and results["epochs_completed"] == 3
    record = json.loads(json.dumps(results["divergences"]))
    assert len(record) == 1 and record[0]["epoch"] == 2 and record[0]["changed"] == {"lr": [config.lr, lower.lr]}
    assert json.loads((out / "config.json").read_text())["lr"] == lower.lr
    assert not (out / "diverged.json").exists()
    assert [row["epoch"] for row in history_rows(out / "history.csv")] == ["0", "1", "2"]


def test_divergence_before_any_epoch_says_no_checkpoint_is_kept(tmp_path, compile_cache):
    out = tmp_path / "run"
    with pytest.raises(TrainingDivergedError, match="epoch 1, batch .*No epoch finished, so no checkpoint is kept"):
        train(tiny(out, lr=1e4, divergence_factor=5.0))
    # Nothing was trained, so nothing is marked diverged: a corrected command starts afresh.
    assert read_backup(out / "checkpoints") is None and not (out / "diverged.json").exists()


# ---------------------------------------------------------------------------------------------
# Defect 3: one writer per run directory and per sweep project.

HOLD_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from zoo.rundir import DirectoryLock
    locks = [DirectoryLock(path, "directory").acquire() for path in sys.argv[1:]]
    print("locked", flush=True)
    time.sleep(120)
    """
)


@pytest.mark.processes
def test_second_writer_is_refused_and_a_dead_owner_is_taken_over(tmp_path, capsys):
    run, project = tmp_path / "run", tmp_path / "sweeps" / "p"
    holder = subprocess.Popen([sys.executable, "-c", HOLD_SCRIPT, str(run), str(project)], cwd=REPO,
                              env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(LockedError, match=rf"in use by process {holder.pid} on host"):
            train(tiny(run))
        assert sorted(p.name for p in run.iterdir()) == [".lock"]  # nothing written

        from tuning.search import run_sweep
        from tuning.space import build_search_space

        base = tiny_config("digits", d_model=8, d_state=4, epochs=1, verbose=0)
        with pytest.raises(LockedError, match=rf"sweep project .* in use by process {holder.pid}"):
            run_sweep(base, build_search_space(), max_trials=1, directory=tmp_path / "sweeps", project_name="p")
    finally:
        holder.kill()
        holder.wait(timeout=30)
    capsys.readouterr()
    with DirectoryLock(run, "run directory"):
        assert f"process {holder.pid} on this host no longer runs" in capsys.readouterr().err
        owner = json.loads((run / ".lock").read_text())
        assert owner["pid"] == os.getpid() and owner["host"]
    assert not (run / ".lock").exists()


@pytest.mark.parametrize("env, taken", [
    ({"SLURM_JOB_ID": "4242", "SLURM_RESTART_COUNT": "1"}, True),  # the requeued job
    ({"KERAS_SSM_JOB_ID": "4242", "KERAS_SSM_JOB_ATTEMPT": "3"}, True),  # another scheduler's job script
    ({"SLURM_JOB_ID": "4242"}, False),  # the same attempt: another task of the same job, maybe alive
    ({"SLURM_JOB_ID": "777", "SLURM_RESTART_COUNT": "5"}, False),  # another job
    ({}, False),  # no job
])
def test_a_requeued_job_takes_over_the_lock_of_its_earlier_attempt_on_another_host(tmp_path, monkeypatch, capsys,
                                                                                     env, taken):
    for name in ("SLURM_JOB_ID", "SLURM_RESTART_COUNT", "KERAS_SSM_JOB_ID", "KERAS_SSM_JOB_ATTEMPT"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    run = tmp_path / "run"
    run.mkdir()
    (run / ".lock").write_text(json.dumps({"pid": 12345, "host": "node17", "started": "earlier", "command": "train",
                                           "job": {"id": "4242", "attempt": 0}}))
    if taken:
        with DirectoryLock(run, "run directory"):
            assert "attempt 0 of job 4242 on host 'node17'" in capsys.readouterr().err
        assert not (run / ".lock").exists()
    else:
        with pytest.raises(LockedError, match="in use by process 12345 on host 'node17'.*requeued job takes the lock"):
            DirectoryLock(run, "run directory").acquire()


def test_a_bad_job_attempt_is_named(monkeypatch):
    monkeypatch.setenv("KERAS_SSM_JOB_ID", "1")
    monkeypatch.setenv("KERAS_SSM_JOB_ATTEMPT", "first")
    with pytest.raises(ValueError, match="KERAS_SSM_JOB_ATTEMPT must be a non-negative integer"):
        scheduler_job()


# ---------------------------------------------------------------------------------------------
# Defects 4 and 8: --overwrite checks the new config and data first; a failed start leaves nothing behind.

def test_overwrite_with_bad_data_keeps_the_finished_run(tmp_path, reference):
    out = tmp_path / "run"
    shutil.copytree(reference, out)
    before = tree_digest(out)
    with pytest.raises(ValueError, match="num_train"):
        train(tiny(out, data_options={"num_train": 0}), overwrite=True)
    with pytest.raises(FileNotFoundError):
        train(get_config("listops", "quick", output_dir=str(out), data_dir=str(tmp_path / "missing")),
              overwrite=True)
    assert tree_digest(out) == before


def test_failed_start_leaves_no_file_that_blocks_the_corrected_command(tmp_path, compile_cache):
    out = tmp_path / "run"
    with pytest.raises(ValueError, match="num_train"):
        train(tiny(out, data_options={"num_train": 0}))
    assert not out.exists()
    # A start killed before its first epoch left config.json (and a lock): a corrected config starts afresh.
    out.mkdir()
    (out / "config.json").write_text(tiny(out, lr=0.5).to_json())
    (out / ".lock").write_text(json.dumps({"pid": 2**22 + 7, "host": os.uname().nodename}))
    results = train(tiny(out, epochs=1))
    assert results["epochs_completed"] == 1
    assert json.loads((out / "config.json").read_text())["lr"] == tiny(out).lr


# ---------------------------------------------------------------------------------------------
# Defect 5 (files): damaged JSON is named with what to do, for runs and sweeps.

def test_damaged_files_are_named_with_what_to_do(tmp_path, reference):
    out = tmp_path / "run"
    shutil.copytree(reference, out)
    text = (out / "results.json").read_text()
    (out / "results.json").write_text(text[: len(text) // 2])
    with pytest.raises(DamagedFileError, match=r"results\.json is damaged: it is not valid JSON.*--overwrite"):
        train(tiny(out))
    (out / "results.json").write_text(text)
    (out / "config.json").write_text("")
    with pytest.raises(DamagedFileError, match=r"config\.json is damaged: it is empty"):
        train(tiny(out))

    from tuning.project import SweepProjectError, check_project_files

    project = tmp_path / "sweep"
    (project / "trial_0").mkdir(parents=True)
    (project / "oracle.json").write_text('{"ok": 1}')
    (project / "trial_0" / "trial.json").write_text('{"trial_id": "0", "hyper')
    with pytest.raises(SweepProjectError, match=r"trial_0/trial\.json is damaged.*--overwrite"):
        check_project_files(project)


def test_atomic_writes_leave_the_old_file_when_the_writer_fails(tmp_path):
    from zoo.rundir import write_json_atomic

    path = tmp_path / "a.json"
    write_json_atomic(path, {"x": 1})
    with pytest.raises(TypeError):
        write_json_atomic(path, {"x": object()})  # fails while serialising
    assert json.loads(path.read_text()) == {"x": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]


# ---------------------------------------------------------------------------------------------
# Command-line errors: one line, exit code 2, no traceback (unless KERAS_SSM_TRACEBACK=1); Ctrl-C: 130.

def test_cli_errors_are_one_line_with_exit_code_2(tmp_path, capsys, monkeypatch):
    from zoo.train import main

    def error_line():
        err = capsys.readouterr().err
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
        return lines[0]

    bad_data = ["delayed_recall_short", "--output-dir", str(tmp_path / "a"), "--set", "data_options.num_train=0"]
    assert main(bad_data) == 2 and "num_train" in error_line()
    assert not (tmp_path / "a").exists()
    monkeypatch.setenv("KERAS_SSM_TRACEBACK", "1")
    with pytest.raises(ValueError, match="num_train"):
        main(bad_data)
    monkeypatch.delenv("KERAS_SSM_TRACEBACK")

    assert main(["listops", "--output-dir", str(tmp_path / "b"), "--data-dir", str(tmp_path / "nowhere")]) == 2
    assert str(tmp_path / "nowhere") in error_line()
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "notes.txt").write_text("mine")
    assert main(["digits", "--output-dir", str(tmp_path / "c")]) == 2
    assert "holds no config.json" in error_line()
    assert (tmp_path / "c" / "notes.txt").read_text() == "mine"
    assert main(["digits", "--set", "lr=-1"]) == 2 and "lr" in error_line()


@pytest.mark.processes
def test_ctrl_c_prints_one_line_and_exits_130(tmp_path, compile_cache):
    out = tmp_path / "run"
    args = ["delayed_recall_short", "--output-dir", str(out), "--epochs", "200", "--verbose", "0",
            "--set", "num_layers=1", "--set", "d_model=8", "--set", "d_state=4",
            "--set", 'data_options={"seq_len": 16, "delay": 2, "num_train": 256, "num_val": 64, "num_test": 64}']
    # SIGINT handled as in a terminal even when the test runner was started in the background (where
    # the shell makes the inherited SIGINT ignored, and Python then installs no KeyboardInterrupt handler)
    process = subprocess.Popen([sys.executable, "zoo/train.py", *args], cwd=REPO, env=_env(compile_cache),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 240
        while not (out / "history.csv").exists():  # training has started
            assert process.poll() is None and time.monotonic() < deadline, process.communicate()[1][-2000:]
            time.sleep(0.2)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, err[-2000:]
    assert "rerunning the same command resumes" in err.lower() and "Traceback" not in err
    assert not (out / ".lock").exists()


def test_epoch_order_is_a_function_of_seed_and_epoch_alone():
    """What makes the resume exact: a stream started at epoch 1 yields what the full stream yields from
    epoch 1 on; every epoch is a permutation, and the epochs differ."""
    from zoo.data import load_task

    options = dict(seq_len=16, delay=2, num_train=96, num_val=8, num_test=8)

    def labels_and_inputs(epochs, seed=3):
        dataset, _ = load_task("delayed_recall_short", "train", batch_size=32, seed=seed, drop_remainder=True,
                               epochs=epochs, **options)
        return [np.concatenate([x.numpy().ravel(), y.numpy()]) for x, y in dataset]

    full, tail = labels_and_inputs((0, 3)), labels_and_inputs((1, 3))
    assert len(full) == 9 and len(tail) == 6
    for a, b in zip(full[3:], tail):
        np.testing.assert_array_equal(a, b)
    epochs = [np.sort(np.concatenate(full[3 * e: 3 * e + 3])) for e in range(3)]
    np.testing.assert_array_equal(epochs[0], epochs[1])  # the same examples...
    assert not np.array_equal(np.concatenate(full[0:3]), np.concatenate(full[3:6]))  # ...in another order
    assert not np.array_equal(labels_and_inputs((0, 1), seed=4)[0], full[0])
