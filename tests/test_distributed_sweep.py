"""Distributed sweeps with KerasTuner's chief/worker mode, on 127.0.0.1 only, bounded in time."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tuning.distributed import Role, distributed_role, oracle_exposure_warning

REPO = Path(__file__).resolve().parents[1]
SWEEP = ["digits", "--max-trials", "4", "--epochs", "1", "--verbose", "0", "--set", "num_layers=1",
         "--set", "d_model=8", "--set", "d_state=4", "--range", "dt_min=1e-3,1e-2"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_role_comes_from_kerastuners_environment_variables():
    assert distributed_role({}) is None
    env = {"KERASTUNER_TUNER_ID": "chief", "KERASTUNER_ORACLE_IP": "127.0.0.1", "KERASTUNER_ORACLE_PORT": "8000"}
    assert distributed_role(env) == Role("chief", "127.0.0.1:8000") and distributed_role(env).is_chief
    assert not distributed_role({**env, "KERASTUNER_TUNER_ID": "worker1"}).is_chief
    for broken, message in (({**env, "KERASTUNER_ORACLE_PORT": "http"}, "1..65535"),
                            ({**env, "KERASTUNER_ORACLE_PORT": "70000"}, "1..65535"),
                            ({k: v for k, v in env.items() if k != "KERASTUNER_ORACLE_PORT"}, "KERASTUNER_ORACLE_PORT"),
                            ({k: v for k, v in env.items() if k != "KERASTUNER_TUNER_ID"}, "KERASTUNER_TUNER_ID"),
                            ({"KERASTUNER_TUNER_ID": "worker0"}, "without KERASTUNER_ORACLE_IP")):
        with pytest.raises(ValueError, match=message):
            distributed_role(broken)


@pytest.mark.parametrize("host, exposed", [("127.0.0.1", None), ("localhost", None), ("[::1]", None),
                                           ("10.0.0.5", "10.0.0.5, reachable from other machines"),
                                           ("0.0.0.0", "every network interface"), ("node17", "node17")])
def test_the_chief_warns_once_when_its_unauthenticated_oracle_leaves_loopback(host, exposed):
    warning = oracle_exposure_warning(Role("chief", f"{host}:8000"))
    if exposed is None:
        assert warning is None
    else:
        assert exposed in warning and "without encryption or authentication" in warning and "ssh -N -L" in warning


def test_a_worker_without_a_chief_fails_in_bounded_time_naming_the_address(tmp_path, monkeypatch, capsys):
    from tuning.sweep import main

    port = free_port()
    monkeypatch.setenv("KERASTUNER_TUNER_ID", "worker0")
    monkeypatch.setenv("KERASTUNER_ORACLE_IP", "127.0.0.1")
    monkeypatch.setenv("KERASTUNER_ORACLE_PORT", str(port))
    start = time.monotonic()
    assert main(SWEEP + ["--directory", str(tmp_path), "--connect-timeout", "2"]) == 2
    assert time.monotonic() - start < 30
    err = capsys.readouterr().err
    assert f"127.0.0.1:{port}" in err and "within 2 s" in err and "Traceback" not in err
    monkeypatch.setenv("KERASTUNER_ORACLE_PORT", "0")
    assert main(SWEEP + ["--directory", str(tmp_path)]) == 2
    assert "1..65535" in capsys.readouterr().err


def _start(role, port, directory, log):
    env = {**os.environ, "KERAS_BACKEND": os.environ.get("KERAS_BACKEND", "jax"), "KERASTUNER_TUNER_ID": role,
           "KERASTUNER_ORACLE_IP": "127.0.0.1", "KERASTUNER_ORACLE_PORT": str(port)}
    return subprocess.Popen([sys.executable, "tuning/sweep.py", *SWEEP, "--directory", str(directory)], cwd=REPO,
                            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def _trials(project):
    return {p.parent.name: json.loads(p.read_text()) for p in project.glob("trial_*/trial.json")}


@pytest.mark.processes
@pytest.mark.slow
def test_chief_and_two_workers_share_one_search_survive_a_killed_worker_and_match_one_process(tmp_path):
    port = free_port()
    shared = tmp_path / "shared"
    project = shared / "digits-quick-s4d-random"
    processes = {}
    logs = {role: open(tmp_path / f"{role}.log", "w") for role in ("chief", "worker0", "worker1", "worker1-again")}
    try:
        processes["chief"] = _start("chief", port, shared, logs["chief"])
        processes["worker0"] = _start("worker0", port, shared, logs["worker0"])
        processes["worker1"] = _start("worker1", port, shared, logs["worker1"])
        deadline = time.monotonic() + 400
        # kill worker1 once some trial is finished and worker1 holds one (mid-trial, or between two)
        while not any(t["status"] == "COMPLETED" for t in _trials(project).values()):
            assert time.monotonic() < deadline and processes["chief"].poll() is None, "no trial finished in time"
            time.sleep(0.2)
        finished_before = {k: t["score"] for k, t in _trials(project).items() if t["status"] == "COMPLETED"}
        os.killpg(processes["worker1"].pid, signal.SIGKILL)
        processes["worker1"].wait(timeout=30)
        processes["worker1-again"] = _start("worker1", port, shared, logs["worker1-again"])
        for role in ("worker0", "worker1-again", "chief"):
            processes[role].wait(timeout=max(10, deadline - time.monotonic()))
    finally:
        for process in processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
        for log in logs.values():
            log.close()
    outputs = {role: (tmp_path / f"{role}.log").read_text() for role in logs}
    for role in ("chief", "worker0", "worker1-again"):
        assert processes[role].returncode == 0, f"{role}:\n{outputs[role][-3000:]}"
    distributed = _trials(project)
    assert sorted(distributed) == [f"trial_{i}" for i in range(4)]
    assert all(t["status"] == "COMPLETED" for t in distributed.values())
    assert {k: distributed[k]["score"] for k in finished_before} == finished_before  # no finished trial lost
    # the chief's report covers every worker's trials
    assert len(list(csv_rows(project / "results.csv"))) == 4 and (project / "best.json").exists()
    # the chief trains nothing (and KerasTuner's own display is off); the workers print the tables and summaries
    assert "Running Trial #" not in outputs["chief"] and ": val_accuracy" not in outputs["chief"]
    workers = "".join(outputs[role] for role in ("worker0", "worker1", "worker1-again"))
    assert all(f"Trial #{n}: val_accuracy" in workers for n in range(1, 5)) and "dt_max_position" not in workers

    # one process, the same command: the same trials (ids, hyperparameters) and scores
    from tuning.sweep import main

    assert main(SWEEP + ["--directory", str(tmp_path / "single")]) == 0
    single = _trials(tmp_path / "single" / "digits-quick-s4d-random")
    assert sorted(single) == sorted(distributed)
    for trial_id, trial in single.items():
        assert trial["hyperparameters"]["values"] == distributed[trial_id]["hyperparameters"]["values"]
        assert trial["score"] == pytest.approx(distributed[trial_id]["score"], abs=1e-6)


def csv_rows(path):
    import csv

    with open(path) as f:
        return list(csv.DictReader(f))
