"""The fixed-vs-learned experiment: delayed-recall data, planning, statistics, a full two-seed run, resume."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from zoo.configs import get_config
from zoo.data import load_task, load_task_arrays, task_options
from zoo.data.delayed_recall import generate_delayed_recall
from zoo.analysis import weights_fingerprint
from zoo.fixed_vs_learned import plan_runs, resolve_seeds, run_directory
from zoo.report import SETTINGS, epochs_to_fraction, time_to_epoch
from zoo.reporting import paired_comparison

REPO = Path(__file__).resolve().parents[2]


# ---------------------------------------------------------------------------------------------- data

def test_delayed_recall_label_is_the_symbol_delay_steps_before_the_end():
    ds, info = load_task("delayed_recall", "val", batch_size=500, delay=37, seq_len=50, num_classes=5)
    x, y = next(iter(ds))
    x, y = x.numpy(), y.numpy()
    assert (info.seq_len, info.vocab_size, info.num_classes, info.n_features) == (50, 6, 5, None)
    assert x.shape == (500, 50) and x.min() == 1 and x.max() == 5  # ids = symbol + 1, no padding
    np.testing.assert_array_equal(y, x[:, 50 - 1 - 37] - 1)
    assert sum(info.class_counts) == 500 and min(info.class_counts) > 60  # uniform labels, 100 expected each


def test_delayed_recall_symbols_are_iid_uniform_and_reproducible():
    symbols, labels = generate_delayed_recall(4000, seq_len=30, delay=3, num_classes=4, seed=(0, 0))
    counts = np.bincount(symbols.ravel(), minlength=4)
    assert stats.chisquare(counts).pvalue > 1e-3
    # neighbouring positions are independent: the joint counts of (s_t, s_t+1) are uniform over 16 cells
    pairs = np.bincount((4 * symbols[:, :-1] + symbols[:, 1:]).ravel(), minlength=16)
    assert stats.chisquare(pairs).pvalue > 1e-3
    again, _ = generate_delayed_recall(4000, seq_len=30, delay=3, num_classes=4, seed=(0, 0))
    np.testing.assert_array_equal(symbols, again)
    train = load_task_arrays("delayed_recall", "train", num_train=20)[0].inputs[0]
    val = load_task_arrays("delayed_recall", "val", num_val=20)[0].inputs[0]
    assert not np.array_equal(train, val)


def test_delayed_recall_variants_options_and_errors():
    assert task_options("delayed_recall_short")["delay"] < task_options("delayed_recall")["delay"]
    _, info = load_task("delayed_recall_short", "test", encoding="real", num_test=10, num_classes=3)
    assert (info.n_features, info.vocab_size) == (1, None)
    ds, _ = load_task("delayed_recall_short", "test", encoding="real", num_test=10, num_classes=3, batch_size=10)
    assert set(np.unique(next(iter(ds))[0].numpy())) <= {-1.0, 0.0, 1.0}
    with pytest.raises(ValueError, match="delay must be < seq_len"):
        load_task_arrays("delayed_recall", "train", delay=10, seq_len=10)
    with pytest.raises(ValueError, match="num_classes must be an integer >= 2"):
        load_task_arrays("delayed_recall", "train", num_classes=1)
    with pytest.raises(ValueError, match="unknown option.*'max_length'"):
        load_task_arrays("delayed_recall", "train", max_length=10)


def test_quick_presets_put_the_long_delay_beyond_the_initial_memory():
    """The theory behind the two variants, checked on the quick presets' initial models (seeds 0-2)."""
    from keras_ssm.memory import model_memory_functions
    from zoo.models import build_model, input_spec_from_info

    for task in ("delayed_recall", "delayed_recall_short"):
        config = get_config(task, "quick")
        assert config.pooling == "last" and not config.bidirectional
        _, info, _ = load_task_arrays(task, "test", num_test=1)
        delay = task_options(task)["delay"]
        for seed in range(3):
            model = build_model(config.replace(seed=seed), input_spec_from_info(info))
            for memory in model_memory_functions(model, horizon=info.seq_len).values():
                at_delay = memory.values[:, delay]
                if task == "delayed_recall":
                    assert at_delay.max() < 0.01
                else:
                    assert at_delay.mean() > 0.05


# ---------------------------------------------------------------------------------------------- statistics

def test_epochs_to_fraction_and_time():
    assert epochs_to_fraction([0.1, 0.5, 0.9, 0.95, 1.0]) == 4  # 0.95 >= 0.95 * 1.0
    assert epochs_to_fraction([0.1, 0.96, 0.9, 1.0]) == 2
    assert epochs_to_fraction([0.3]) == 1
    assert epochs_to_fraction([]) is None
    assert time_to_epoch([2.0, 3.0, 4.0], 2) == 5.0
    assert time_to_epoch([2.0, 3.0], None) is None


def test_paired_comparison_matches_scipy_and_says_when_tests_are_undefined():
    fixed = np.array([0.50, 0.60, 0.55, 0.70, 0.65, 0.52])
    learned = np.array([0.52, 0.59, 0.60, 0.71, 0.69, 0.58])
    out = paired_comparison(fixed, learned)
    diff = learned - fixed
    assert out["n"] == 6 and out["mean"] == pytest.approx(diff.mean()) and out["std"] == pytest.approx(diff.std(ddof=1))
    assert out["t_pvalue"] == pytest.approx(stats.ttest_rel(learned, fixed).pvalue)
    assert out["wilcoxon_pvalue"] == pytest.approx(stats.wilcoxon(diff).pvalue)
    assert out["wilcoxon_min_pvalue"] == pytest.approx(2 / 64)
    assert (out["wins"], out["ties"], out["losses"]) == (5, 0, 1)
    same = paired_comparison([0.5, 0.6], [0.5, 0.6])
    assert same["t_pvalue"] is None and same["wilcoxon_pvalue"] is None and "all differences are equal" in same["note"]
    single = paired_comparison([0.5], [0.7])
    assert single["t_pvalue"] is None and "n >= 2" in single["note"]
    with pytest.raises(ValueError, match="equal length"):
        paired_comparison([0.1, 0.2], [0.1])


def test_weights_fingerprint_ignores_order_not_values():
    a, b = np.arange(6.0).reshape(2, 3), np.ones(4, np.float32)
    assert weights_fingerprint([a, b]) == weights_fingerprint([b, a.copy()])
    assert weights_fingerprint([a, b]) != weights_fingerprint([a + 1e-12, b])
    assert weights_fingerprint([a]) != weights_fingerprint([a.astype(np.float32)])


# ---------------------------------------------------------------------------------------------- planning

def test_plan_pairs_every_seed_and_rejects_experiment_keys(tmp_path):
    plan = plan_runs(["digits", "listops"], 2, preset="quick", inits=["inv", "lin"], output_dir=tmp_path,
                     overrides={"epochs": 1, "data_options": {"encoding": "tokens"}})
    assert len(plan) == 2 * 2 * 2 * 2
    for run in plan:
        assert run.config.trainable_eigenvalues == (run.setting == "learned")
        assert (run.config.task, run.config.init, run.config.seed, run.config.epochs) == (run.task, run.init,
                                                                                         run.seed, 1)
        assert run.run_dir == run_directory(tmp_path, run.task, run.init, run.seed, run.setting)
        assert not run.finished
    digits = [r for r in plan if r.task == "digits"]
    assert all(r.config.data_options["encoding"] == "tokens" for r in digits)
    fixed, learned = plan[0].config, plan[1].config
    assert fixed.replace(trainable_eigenvalues=True, output_dir=learned.output_dir) == learned
    assert plan_runs(["digits"], [4], output_dir=tmp_path, model="s4")[0].init == "legs"
    assert resolve_seeds(3) == (0, 1, 2) and resolve_seeds([5, 7]) == (5, 7)
    with pytest.raises(ValueError, match="set by the experiment"):
        plan_runs(["digits"], 1, output_dir=tmp_path, overrides={"seed": 3})
    with pytest.raises(ValueError, match="`tasks` entries must be one of"):
        plan_runs(["imagenet"], 1, output_dir=tmp_path)
    with pytest.raises(ValueError, match="`inits` entries"):
        plan_runs(["digits"], 1, output_dir=tmp_path, inits=["hippo"])
    with pytest.raises(ValueError, match="`seeds`"):
        plan_runs(["digits"], 0, output_dir=tmp_path)


def test_cli_help_documents_every_flag():
    out = subprocess.run([sys.executable, "zoo/experiment.py", "--help"], cwd=REPO, capture_output=True, text=True,
                         check=True).stdout
    for flag in ("--tasks", "--seeds", "--first-seed", "--preset", "--model", "--inits", "--output-dir", "--epochs",
                 "--data-dir", "--cache-dir", "--set", "--title", "--report-only", "--report-dir", "--verbose"):
        assert flag in out
    assert "delayed_recall" in out and "finished runs are skipped" in out


# ---------------------------------------------------------------------------------------------- end to end

TINY = ["--set", "num_layers=1", "--set", "d_model=8", "--set", "d_state=4", "--set", "batch_size=32",
        "--set", "data_options.num_train=128", "--set", "data_options.num_val=64",
        "--set", "data_options.num_test=64", "--set", "data_options.seq_len=32", "--set", "data_options.delay=20"]


@pytest.mark.slow
def test_two_seed_delayed_recall_experiment_report_eigenvalues_and_resume(tmp_path, monkeypatch, capsys):
    from zoo import experiment, fixed_vs_learned
    from zoo.analysis import load_analysis_arrays

    out = tmp_path / "exp"
    argv = ["--tasks", "delayed_recall", "--seeds", "2", "--preset", "quick", "--epochs", "2",
            "--output-dir", str(out), "--cache-dir", str(tmp_path / "cache"), "--verbose", "0", *TINY]
    assert experiment.main(argv) == 0
    printed = capsys.readouterr().out
    assert "## Paired difference learned − fixed over seeds" in printed

    # the full report: markdown tables, JSON with every seed, the plots
    for name in ("report.md", "report.json", "validation_curves.png", "memory_delayed_recall_inv.png"):
        assert (out / name).stat().st_size > 0, name
    markdown = (out / "report.md").read_text()
    for heading in ("## Scale of every number below", "## Test accuracy, convergence and parameters",
                    "## Memory at initialisation and after training", "## Delayed recall: what the memory"):
        assert heading in markdown
    assert "| delayed_recall | inv | fixed | 2 |" in markdown and "| delayed_recall | inv | learned | 2 |" in markdown
    report = json.loads((out / "report.json").read_text())
    (group,) = report["groups"]
    assert group["seeds"] == [0, 1] and group["delay"] == 20 and group["scale"]["pooling"] == "last"
    assert group["paired"]["test_accuracy"]["n"] == 2
    assert group["initial_weights_identical_across_settings"]
    fixed, learned = group["per_seed"]["fixed"], group["per_seed"]["learned"]
    assert all(r["params_frozen"] > 0 for r in fixed) and all(r["params_frozen"] == 0 for r in learned)
    assert fixed[0]["params_trainable"] + fixed[0]["params_frozen"] == learned[0]["params_trainable"]

    # eigenvalues: bit-identical before/after for fixed runs, changed for learned runs (read from the files)
    fvl = experiment.EXPERIMENTS["fixed-vs-learned"]
    plan = fvl.plan_from_args(fvl.build_parser().parse_args(argv))
    for run in plan:
        arrays = load_analysis_arrays(run.run_dir)
        (layer,) = arrays["eig_initial"]
        before, after = arrays["eig_initial"][layer], arrays["eig_trained"][layer]
        if run.setting == "fixed":
            assert before.tobytes() == after.tobytes()
        else:
            assert not np.array_equal(before, after)
    assert group["fixed_eigenvalues_unchanged"] and group["learned_eigenvalues_changed"]

    # rerun: every run is finished, so nothing trains (train would raise) and the report is rewritten
    stamps = {run.label: (run.run_dir / "results.json").stat().st_mtime_ns for run in plan}

    def no_training(*args, **kwargs):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(fixed_vs_learned, "train", no_training)
    report_dir = tmp_path / "docs"
    assert experiment.main(argv + ["--report-dir", str(report_dir)]) == 0
    printed = capsys.readouterr().out
    assert printed.count("finished earlier, skipped") == 2 * len(SETTINGS)
    assert stamps == {run.label: (run.run_dir / "results.json").stat().st_mtime_ns for run in plan}
    rewritten = json.loads((report_dir / "report.json").read_text())
    assert rewritten["groups"][0]["per_seed"] == report["groups"][0]["per_seed"]
    assert (report_dir / "memory_delayed_recall_inv.png").exists() and not (report_dir / "runs").exists()
