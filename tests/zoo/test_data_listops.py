"""ListOps: generator distribution and labels (checked by an independent evaluator), TSV loader, cache."""

import logging
import random
import re
from collections import Counter

import numpy as np
import pytest

from zoo.data import DataNotFoundError, MalformedDataError, load_task, load_task_arrays
from zoo.data import listops as lo

SMALL = dict(num_train=40, num_val=10, num_test=10, min_length=20, max_length=120)


def evaluate_expression(source: str) -> int:
    """Independent evaluator: regex tokens of the raw parenthesised string, explicit stack, numpy median."""
    stack = []
    result = None
    for token in re.findall(r"\[MIN|\[MAX|\[MED|\[SM|\]|\d", source):
        if token.startswith("["):
            stack.append((token, []))
        elif token == "]":
            op, args = stack.pop()
            value = {"[MIN": min(args), "[MAX": max(args), "[SM": sum(args) % 10,
                     "[MED": int(np.median(args))}[op]
            (stack[-1][1] if stack else [None]).append(value)
            if not stack:
                result = value
        else:
            if stack:
                stack[-1][1].append(int(token))
            else:
                result = int(token)
    assert not stack, "unbalanced expression"
    return result


def read_rows(path):
    lines = path.read_text().splitlines()
    assert lines[0] == "Source\tTarget"
    return [(source, int(target)) for source, target in (line.split("\t") for line in lines[1:])]


def test_evaluator_on_known_examples():
    assert evaluate_expression("( ( ( [MAX 2 ) 9 ) ] )") == 9
    assert evaluate_expression("( ( ( ( [MED 1 ) 4 ) 6 ) ] )") == 4
    assert evaluate_expression("( ( ( ( ( [MED 1 ) 4 ) 6 ) 8 ) ] )") == 5  # int(median(1,4,6,8)) = int(5.0)
    assert evaluate_expression("( ( ( ( [SM 7 ) 8 ) ( ( ( [MIN 3 ) 5 ) ] ) ) ] )") == 8  # (7 + 8 + 3) % 10


def test_default_bounds_lengths_and_labels():
    rand = random.Random(123).random
    kept = []
    while len(kept) < 5:
        tree = lo.sample_tree(rand, max_length=2000)
        if tree is not None and tree[2] > 500:
            kept.append(tree)
    for source, value, length in kept:
        tokens = lo.tokenize(source)
        assert len(tokens) == length
        assert 500 < length < 2000
        assert value == evaluate_expression(source)


def test_generated_operator_and_label_distribution():
    trees = lo.generate_chunk((7, 0, 500, 2000, 250)) + lo.generate_chunk((7, 1, 500, 2000, 250))
    lengths = np.array([t[2] for t in trees])
    assert lengths.min() > 500 and lengths.max() < 2000
    assert 900 < lengths.mean() < 1250  # LRA: about 1080
    for source, value, _ in trees[:50]:
        assert value == evaluate_expression(source)
    ops = Counter(token for source, _, _ in trees for token in lo.tokenize(source) if token.startswith("["))
    shares = np.array([ops[op] for op in lo.OPERATORS]) / sum(ops.values())
    np.testing.assert_allclose(shares, 0.25, atol=0.03)
    labels = np.bincount([t[1] for t in trees], minlength=10)
    assert (labels > 0).all()
    assert set(np.argsort(labels)[-2:]) == {0, 9}  # LRA: labels skew toward 0 and 9


def test_generator_files_layout_labels_and_disjoint_splits(tmp_path):
    config = lo.ListOpsGeneratorConfig(seed=3, **SMALL)
    lo.generate_listops_files(tmp_path, config, num_workers=1, progress=False)
    sizes = {"train": 40, "val": 10, "test": 10}
    seen = set()
    for split, name in lo.SPLIT_FILES.items():
        rows = read_rows(tmp_path / name)
        assert len(rows) == sizes[split]
        for source, target in rows:
            assert target == evaluate_expression(source)
            assert 20 < len(lo.tokenize(source)) < 120
            assert source not in seen
            seen.add(source)


def test_generator_deterministic_and_independent_of_workers(tmp_path):
    config = lo.ListOpsGeneratorConfig(seed=5, num_train=600, num_val=10, num_test=10, min_length=20, max_length=120)
    for name in "abc":
        (tmp_path / name).mkdir()
    lo.generate_listops_files(tmp_path / "a", config, num_workers=1, progress=False)
    lo.generate_listops_files(tmp_path / "b", config, num_workers=2, progress=False)
    for name in lo.SPLIT_FILES.values():
        assert (tmp_path / "a" / name).read_text() == (tmp_path / "b" / name).read_text()
    other = lo.ListOpsGeneratorConfig(seed=6, num_train=600, num_val=10, num_test=10, min_length=20, max_length=120)
    lo.generate_listops_files(tmp_path / "c", other, num_workers=1, progress=False)
    assert (tmp_path / "a" / "basic_train.tsv").read_text() != (tmp_path / "c" / "basic_train.tsv").read_text()


def test_load_task_generates_once_then_reuses_cache(tmp_path, monkeypatch, caplog):
    caplog.set_level(logging.INFO, logger="zoo.data")
    first, info, _ = load_task_arrays("listops", "train", cache_dir=tmp_path, num_workers=1, progress=False, **SMALL)
    assert info.seq_len == 120 and info.vocab_size == 16 and info.num_classes == 10 and info.num_examples == 40
    assert sum(info.class_counts) == 40

    def fail(*args, **kwargs):
        raise AssertionError("regenerated although cached")

    monkeypatch.setattr(lo, "generate_listops_files", fail)
    caplog.clear()
    second, _, _ = load_task_arrays("listops", "train", cache_dir=tmp_path, progress=False, **SMALL)
    assert "reusing generated data" in caplog.text
    np.testing.assert_array_equal(first.inputs[0].values, second.inputs[0].values)
    np.testing.assert_array_equal(first.labels, second.labels)
    # a different generator parameter is a different cache entry
    with pytest.raises(AssertionError, match="regenerated"):
        load_task_arrays("listops", "train", cache_dir=tmp_path, progress=False, **dict(SMALL, min_length=21))
    with pytest.raises(DataNotFoundError, match="generate=False"):
        load_task_arrays("listops", "train", cache_dir=tmp_path, generate=False, **dict(SMALL, num_val=11))


def write_official(root, rows_by_split, newline="\r\n"):
    folder = root / "lra_release" / "listops-1000"
    folder.mkdir(parents=True)
    for split, rows in rows_by_split.items():
        text = newline.join(["Source\tTarget"] + [f"{s}\t{t}" for s, t in rows]) + newline
        (folder / lo.SPLIT_FILES[split]).write_bytes(text.encode())
    return folder


OFFICIAL = {
    "train": [("( ( ( [MAX 2 ) 9 ) ] )", 9), ("( ( ( ( [SM 7 ) 8 ) 4 ) ] )", 9), ("( ( ( [MIN 3 ) 5 ) ] )", 3)],
    "val": [("( ( ( [MED 1 ) 0 ) ] )", 0)],
    "test": [("( ( ( ( [MED 1 ) 4 ) 6 ) ] )", 4)],
}


def test_official_tsv_loader_tokens_padding_and_labels(tmp_path):
    write_official(tmp_path, OFFICIAL)
    ds, info = load_task("listops", "train", data_dir=tmp_path, cache_dir=tmp_path / "cache", max_length=16,
                         batch_size=8, shuffle=False)
    assert info.seq_len == 16 and info.num_examples == 3 and not info.two_inputs and info.n_features is None
    x, y = next(iter(ds))
    assert x.shape == (3, 16) and x.dtype.name == "int32" and y.dtype.name == "int32"
    ids = {t: i for i, t in enumerate(lo.VOCAB)}
    expected = [ids[t] for t in ["[MAX", "2", "9", "]"]] + [0] * 12
    np.testing.assert_array_equal(x.numpy()[0], expected)
    assert expected[:4] == [12, 3, 10, 15]  # documented vocabulary
    np.testing.assert_array_equal(y.numpy(), [9, 9, 3])
    _, val_info = load_task("listops", "val", data_dir=tmp_path / "lra_release", cache_dir=tmp_path / "cache")
    assert val_info.num_examples == 1 and val_info.class_counts[0] == 1


def test_official_longer_than_max_length_is_truncated_and_logged(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="zoo.data")
    write_official(tmp_path, OFFICIAL)
    data, info, _ = load_task_arrays("listops", "train", data_dir=tmp_path, cache_dir=tmp_path / "c", max_length=4)
    assert data.inputs[0].lengths.max() == 4
    assert "truncated 1 of 3" in caplog.text


@pytest.mark.parametrize(
    "row, message",
    [
        ("( ( ( [MAX 2 ) 9 ) ] )\tx", "not an integer"),
        ("( ( ( [MAX 2 ) 9 ) ] )\t12", "outside 0..9"),
        ("( ( ( [FOO 2 ) 9 ) ] )\t3", "unknown ListOps token"),
        ("( ( ( [MAX 2 ) 9 ) ] )", "expected 2 tab-separated fields"),
    ],
)
def test_malformed_rows_name_file_and_line(tmp_path, row, message):
    folder = tmp_path / "listops-1000"
    folder.mkdir()
    (folder / "basic_train.tsv").write_text(f"Source\tTarget\n( [MIN 1 ] )\t1\n{row}\n")
    with pytest.raises(MalformedDataError, match=rf"basic_train\.tsv:3: .*{message}"):
        load_task_arrays("listops", "train", data_dir=tmp_path, cache_dir=tmp_path / "c")


def test_missing_header_and_missing_directory(tmp_path):
    (tmp_path / "basic_train.tsv").write_text("( [MIN 1 ] )\t1\n")
    with pytest.raises(MalformedDataError, match=r"basic_train\.tsv:1: expected the header"):
        load_task_arrays("listops", "train", data_dir=tmp_path, cache_dir=tmp_path / "c")
    with pytest.raises(DataNotFoundError, match=r"basic_train\.tsv.*lra_release/listops-1000"):
        load_task_arrays("listops", "train", data_dir=tmp_path / "nowhere", cache_dir=tmp_path / "c")


def test_bad_options(tmp_path):
    with pytest.raises(ValueError, match="unknown option.*num_train"):
        load_task_arrays("listops", "train", cache_dir=tmp_path, nmu_train=3)
    with pytest.raises(ValueError, match="min_length < length < max_length"):
        load_task_arrays("listops", "train", cache_dir=tmp_path, min_length=100, max_length=101)
    with pytest.raises(ValueError, match="num_train must be an integer"):
        load_task_arrays("listops", "train", cache_dir=tmp_path, num_train=0)


def test_too_few_distinct_trees_is_an_error_not_a_hang(tmp_path):
    # lengths 1..5 allow 10 + 400 + 4000 distinct trees, fewer than the 5002 asked for
    config = lo.ListOpsGeneratorConfig(num_train=5000, num_val=1, num_test=1, min_length=0, max_length=6, seed=0)
    with pytest.raises(RuntimeError, match="too few distinct trees"):
        lo.generate_listops_files(tmp_path, config, num_workers=1, progress=False)


# ----------------------------------------------------------------------------- damaged cache entries
def generated_dir(cache):
    return cache / "listops" / lo.ListOpsGeneratorConfig(seed=0, **SMALL).cache_name()


def load_small(cache, split="train"):
    return load_task_arrays("listops", split, cache_dir=cache, num_workers=1, progress=False, **SMALL)


def cut_at_line_boundary(path, keep_rows):
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[: 1 + keep_rows]))


@pytest.mark.parametrize("damage", ["cut", "deleted", "changed", "record_deleted"])
def test_a_damaged_generated_tsv_is_regenerated_with_one_warning(tmp_path, caplog, damage):
    first, _, _ = load_small(tmp_path)
    train = generated_dir(tmp_path) / "basic_train.tsv"
    original = train.read_bytes()
    assert (generated_dir(tmp_path) / "basic_train.tsv.check.json").exists()
    if damage == "cut":
        cut_at_line_boundary(train, 10)  # a quarter of the rows, still a well-formed TSV
    elif damage == "deleted":
        train.unlink()
    elif damage == "changed":
        train.write_bytes(original.replace(b"\t1\n", b"\t2\n", 1))  # same size, other content
    else:
        (generated_dir(tmp_path) / "basic_train.tsv.check.json").unlink()
    caplog.clear()
    caplog.set_level(logging.INFO, logger="zoo.data")
    second, info, _ = load_small(tmp_path)
    assert info.num_examples == 40
    np.testing.assert_array_equal(second.labels, first.labels)
    np.testing.assert_array_equal(second.inputs[0].values, first.inputs[0].values)
    assert train.read_bytes() == original
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    if damage == "record_deleted":  # an intact file without a record (older cache) is kept and gets one
        assert warnings == [] and "reusing generated data" in caplog.text
        assert (generated_dir(tmp_path) / "basic_train.tsv.check.json").exists()
    else:
        assert len(warnings) == 1 and "damaged" in warnings[0] and "regenerating" in warnings[0]
        third, _, _ = load_small(tmp_path)  # and it stays repaired
        np.testing.assert_array_equal(third.labels, first.labels)


def test_a_damaged_entry_with_generate_false_is_an_error_naming_it(tmp_path):
    load_small(tmp_path)
    cut_at_line_boundary(generated_dir(tmp_path) / "basic_train.tsv", 5)
    with pytest.raises(DataNotFoundError, match=r"damaged .*basic_train\.tsv.*generate=False"):
        load_task_arrays("listops", "train", cache_dir=tmp_path, generate=False, **SMALL)


@pytest.mark.parametrize("damage", ["truncated", "emptied", "record_deleted"])
def test_a_damaged_processed_npz_is_rebuilt(tmp_path, caplog, damage):
    first, _, _ = load_small(tmp_path)
    (npz,) = (tmp_path / "processed").glob("listops-*.npz")
    data = npz.read_bytes()
    if damage == "truncated":
        npz.write_bytes(data[: len(data) // 2])
    elif damage == "emptied":
        npz.write_bytes(b"")
    else:  # an intact file from before check records: reused, and it gets a record
        npz.with_name(npz.name + ".check.json").unlink()
    caplog.clear()
    caplog.set_level(logging.INFO, logger="zoo.data")
    second, _, _ = load_small(tmp_path)
    np.testing.assert_array_equal(second.inputs[0].values, first.inputs[0].values)
    assert npz.read_bytes() == data and npz.with_name(npz.name + ".check.json").exists()
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    if damage == "record_deleted":
        assert warnings == []
    else:
        assert len(warnings) == 1 and str(npz) in warnings[0] and "rebuilding" in warnings[0]


def test_a_truncated_npz_without_a_record_is_rebuilt_too(tmp_path, caplog):
    first, _, _ = load_small(tmp_path)
    (npz,) = (tmp_path / "processed").glob("listops-*.npz")
    npz.with_name(npz.name + ".check.json").unlink()
    npz.write_bytes(npz.read_bytes()[:100])
    caplog.set_level(logging.WARNING, logger="zoo.data")
    second, _, _ = load_small(tmp_path)
    np.testing.assert_array_equal(second.labels, first.labels)
    assert str(npz) in caplog.text and "BadZipFile" in caplog.text


@pytest.mark.parametrize("content, message", [("", "is empty"), ("Source\tTarget\n", "has a header but no data rows"),
                                              ("Source\tTarget\n\n\n", "has a header but no data rows")])
def test_an_empty_or_header_only_user_file_is_our_error_naming_it(tmp_path, content, message):
    from zoo.data import DataError

    (tmp_path / "basic_train.tsv").write_text(content)
    with pytest.raises(DataError, match=rf"basic_train\.tsv {message}"):
        load_task("listops", "train", data_dir=tmp_path, cache_dir=tmp_path / "c", batch_size=4)


def test_the_data_cli_reports_a_data_error_in_one_line(tmp_path, capsys):
    from zoo.data.__main__ import main

    (tmp_path / "basic_train.tsv").write_text("Source\tTarget\n")
    with pytest.raises(SystemExit) as exit_info:
        main(["listops", "--data-dir", str(tmp_path), "--cache-dir", str(tmp_path / "c")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "basic_train.tsv has a header but no data rows" in err and "Traceback" not in err


def test_generation_and_cache_location_said_in_one_line(tmp_path, capsys):
    config = lo.ListOpsGeneratorConfig(num_train=20, num_val=5, num_test=5, min_length=8, max_length=30)
    directory = lo.ensure_generated(tmp_path, config, num_workers=1, progress=True)
    said = [line for line in capsys.readouterr().out.splitlines() if line.startswith("listops:")]
    assert said == [f"listops: generating 30 examples (lengths 8-30, seed 0) into {directory}; later runs reuse them"]
    lo._ANNOUNCED.discard(directory)  # as in a new process
    for _ in range(3):  # train, val, test
        assert lo.ensure_generated(tmp_path, config, num_workers=1, progress=True) == directory
    assert capsys.readouterr().out.splitlines() == [f"listops: using the generated data cached in {directory}"]


def test_the_data_cli_lists_every_tasks_options_and_prepares_a_presets_data(tmp_path, capsys):
    from zoo.configs import get_config
    from zoo.data.__main__ import main

    with pytest.raises(SystemExit):
        main(["--help"])
    help_text = capsys.readouterr().out
    assert "listops: num_train=96000" in help_text and "delayed_recall: delay=" in help_text
    main(["digits", "--preset", "quick", "--cache-dir", str(tmp_path)])
    printed = capsys.readouterr().out
    _, info = load_task("digits", "test", cache_dir=tmp_path, batch_size=8, **get_config("digits", "quick").data_options)
    assert f"test {info}" in printed
