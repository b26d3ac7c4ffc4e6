"""Multi-process data parallelism on the jax backend (two CPU processes on 127.0.0.1, gloo collectives)."""

import csv
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from zoo.distributed import ProcessGroup, process_group
from zoo.train import main as train_main

REPO = Path(__file__).resolve().parents[2]
TINY = ["digits", "--epochs", "4", "--verbose", "0", "--batch-size", "64", "--distribute", "data",
        "--backup-every", "3",
        "--set", "num_layers=1", "--set", "d_model=8", "--set", "d_state=4"]


def test_process_group_from_flags_or_kerass_environment_variables():
    assert process_group(environ={}) is None
    assert process_group("127.0.0.1:1234", 2, 1, environ={}) == ProcessGroup("127.0.0.1:1234", 2, 1)
    env = {"KERAS_DISTRIBUTION_JOB_ADDRESSES": "10.0.0.1:99,10.0.0.2:99", "KERAS_DISTRIBUTION_NUM_PROCESSES": "2",
           "KERAS_DISTRIBUTION_PROCESS_ID": "0"}
    assert process_group(environ=env) == ProcessGroup("10.0.0.1:99", 2, 0)
    assert process_group(process_id=1, environ=env).process_id == 1  # a flag wins over the variable
    for args, message in ((("127.0.0.1:1234", 2, None), "missing: --process-id"),
                          (("127.0.0.1:1234", 2, 2), r"0\.\.1"),
                          (("127.0.0.1:1234", 0, 0), ">= 1"),
                          (("127.0.0.1", 2, 0), "HOST:PORT"),
                          (("127.0.0.1:99999", 2, 0), "HOST:PORT")):
        with pytest.raises(ValueError, match=message):
            process_group(*args, environ={})


def test_bad_process_flags_are_one_line_errors_before_training(tmp_path, capsys):
    out = ["--output-dir", str(tmp_path / "run")]
    assert train_main(TINY + out + ["--coordinator", "127.0.0.1:1234", "--num-processes", "2", "--process-id", "2"]) == 2
    assert "--process-id must be in 0..1" in capsys.readouterr().err
    no_distribute = [a for a in TINY if a not in ("--distribute", "data")]
    assert train_main(no_distribute + out + ["--coordinator", "127.0.0.1:1234", "--num-processes", "2",
                                             "--process-id", "0"]) == 2
    assert "add --distribute data" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env():
    return {**os.environ, "KERAS_BACKEND": "jax"}


def _start_pair(out, port, cache, logs):
    return [subprocess.Popen([sys.executable, "zoo/train.py", *TINY, "--output-dir", str(out), "--cache-dir", str(cache),
                              "--coordinator", f"127.0.0.1:{port}", "--num-processes", "2", "--process-id", str(k)],
                             cwd=REPO, env=_env(), stdout=logs[k], stderr=subprocess.STDOUT, start_new_session=True)
            for k in (0, 1)]


def _history(path):
    with open(path) as f:
        return list(csv.DictReader(f))


@pytest.mark.processes
@pytest.mark.slow
def test_two_processes_train_the_one_process_curve_and_resume_after_sigterm_and_sigkill(tmp_path):
    """SIGTERM to one process only: both stop at the same step (no process is left waiting in a collective),
    exit 75 and back that step up; the pair is then SIGKILLed an epoch later (a backup every 3 steps);
    every resume continues at the exact step, and the curve is the one-process curve."""
    from zoo.callbacks import read_backup

    cache = tmp_path / "cache"
    single = subprocess.run([sys.executable, "zoo/train.py", *TINY, "--output-dir", str(tmp_path / "single"),
                             "--cache-dir", str(cache)], cwd=REPO, env=_env(), capture_output=True, text=True,
                            timeout=600)
    assert single.returncode == 0, single.stdout[-2000:] + single.stderr[-2000:]

    out = tmp_path / "multi"
    logs = [open(tmp_path / f"process{k}.log", "w") for k in (0, 1)]
    deadline = time.monotonic() + 500

    def wait_for_backup(epoch, pair):
        while (read_backup(out / "checkpoints") or {}).get("epoch", 0) < epoch:
            assert time.monotonic() < deadline and all(p.poll() is None for p in pair), "no backup in time"
            time.sleep(0.05)

    pair = _start_pair(out, _free_port(), cache, logs)
    try:
        wait_for_backup(1, pair)
        pair[1].send_signal(signal.SIGTERM)  # the follower only
        assert [p.wait(timeout=120) for p in pair] == [75, 75]
        terminated = read_backup(out / "checkpoints")
        assert not (out / ".lock").exists() and not (out / "results.json").exists()

        pair = _start_pair(out, _free_port(), cache, logs)
        wait_for_backup(terminated["epoch"] + 1, pair)
        for p in pair:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(timeout=60)
        killed = read_backup(out / "checkpoints")
        assert killed["epoch"] < 4 and not (out / "results.json").exists()
        pair = _start_pair(out, _free_port(), cache, logs)
        for p in pair:
            p.wait(timeout=max(10, deadline - time.monotonic() + 100))
    finally:
        for p in pair:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
        for log in logs:
            log.close()
    killed_after = killed["epoch"]
    text = [(tmp_path / f"process{k}.log").read_text() for k in (0, 1)]
    assert [p.returncode for p in pair] == [0, 0], text[0][-3000:] + text[1][-3000:]

    one, two = _history(tmp_path / "single" / "history.csv"), _history(out / "history.csv")
    assert len(one) == len(two) == 4
    for key in ("loss", "accuracy", "val_accuracy"):
        np.testing.assert_allclose([float(r[key]) for r in two], [float(r[key]) for r in one], rtol=1e-5, atol=1e-6)
    import json

    r1, r2 = (json.loads((d / "results.json").read_text()) for d in (tmp_path / "single", out))
    assert r2["resumed_from_epoch"] == killed_after >= 1
    assert r2["devices"] == 2 and r2["test_accuracy"] == pytest.approx(r1["test_accuracy"], abs=1e-6)
    assert r2["test_loss"] == pytest.approx(r1["test_loss"], rel=1e-5)
    # only process 0 wrote the run directory; the other's files were temporary
    assert not list(Path(os.environ.get("TMPDIR", "/tmp")).glob("keras_ssm-process1-*"))
