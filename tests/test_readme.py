"""README.md's code as a user pastes it: every Python block runs by itself in a fresh interpreter, and no
command writes over a committed file.

Blocks that import the repository's ``zoo`` or ``tuning`` folders run from the repository root, as the
README says; the others from an empty directory. Both with their own data cache, on the jax backend.
"""

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
NEEDS_CHECKOUT = re.compile(r"^\s*(import|from)\s+(zoo|tuning)\b", re.M)


def python_blocks(text):
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


def bash_commands(text):
    """Every command line of the README's bash blocks (continuation lines joined)."""
    commands = []
    for block in re.findall(r"^```bash\n(.*?)^```", text, flags=re.S | re.M):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #")[0].strip()
            if line and not line.startswith("#"):
                commands.append(line)
    return commands


def committed_files():
    listed = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True)
    if listed.returncode != 0:
        pytest.skip("not a git checkout")
    return set(listed.stdout.split())


def test_readme_has_python_blocks():
    assert len(python_blocks(README.read_text())) >= 7


def test_no_readme_command_writes_over_a_committed_file():
    committed = committed_files()
    for command in bash_commands(README.read_text()):
        for part in (p for p in command.split("&&")):
            words = shlex.split(part)
            targets = [words[i + 1] for i, word in enumerate(words[:-1]) if word in ("--out", "--output-dir", "-o")]
            targets += [word.split("=", 1)[1] for word in words if word.startswith(("--out=", "--output-dir="))]
            for target in targets:
                assert target not in committed and not target.startswith("docs/"), (
                    f"README command writes {target}, a committed file: {command}")


@pytest.mark.slow
@pytest.mark.parametrize("index", range(len(python_blocks(README.read_text()))),
                         ids=lambda i: f"block{i + 1}")
def test_readme_python_block_runs_as_pasted(index, tmp_path):
    block = python_blocks(README.read_text())[index]
    cwd = ROOT if NEEDS_CHECKOUT.search(block) else tmp_path / "work"
    cwd.mkdir(exist_ok=True)
    env = {**os.environ, "KERAS_BACKEND": "jax", "KERAS_SSM_DATA": str(tmp_path / "data"), "MPLBACKEND": "Agg"}
    env.pop("PYTHONPATH", None)
    before = set(os.listdir(ROOT))
    result = subprocess.run([sys.executable, "-c", block], cwd=cwd, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, f"README.md python block {index + 1} failed:\n{block}\n{result.stderr[-3000:]}"
    assert set(os.listdir(ROOT)) == before, "a block run from the repository root left files there"


def test_what_the_commands_and_examples_write_is_ignored_by_git():
    """The CLIs' default output folders (train.py and the experiments: runs/, sweep.py: sweeps/) and the files
    the README's examples write into the working directory stay out of `git status`."""
    committed_files()
    written = ["runs/listops-quick-s4d-learned-seed0/results.json", "sweeps/digits-quick-s4d-random/sweep.json",
               "memory_functions.png", "model_memory.png", "eigenvalues.npy", "my_model.keras",
               "tracked/memory_tracking.json", "memory_tracking.png"]
    ignored = subprocess.run(["git", "check-ignore", "--no-index", *written], cwd=ROOT, capture_output=True,
                             text=True).stdout.split()
    assert ignored == written
