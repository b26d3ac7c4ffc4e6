"""What `python zoo/train.py` prints, as a user reads it: one line per epoch off a terminal, a short config
summary, a line before each silent phase, the backend and how to choose another, and a closing block that
names every file of the run and the next commands."""

import io
import re

from conftest import TINY_SIZES

from zoo import backend_choice
from zoo.rundir import LOCK_FILE
from zoo.train import default_verbosity, main


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_the_progress_bar_only_on_a_terminal():
    assert default_verbosity(_Terminal()) == 1
    assert default_verbosity(io.StringIO()) == 2


def test_backend_line_says_where_it_came_from_and_how_to_choose(monkeypatch):
    monkeypatch.setenv("KERAS_BACKEND", "jax")
    assert backend_choice("jax") == ("backend: jax (from KERAS_BACKEND); to choose another, start the command with "
                                     "KERAS_BACKEND=tensorflow or KERAS_BACKEND=torch")
    monkeypatch.delenv("KERAS_BACKEND")
    monkeypatch.setenv("KERAS_HOME", "/nonexistent")
    assert "(Keras' default, as KERAS_BACKEND is not set)" in backend_choice("tensorflow")


def test_console_of_a_run_off_a_terminal(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    sizes = [f"--set={key}={value}" for key, value in TINY_SIZES.items()]
    assert main(["digits", "--epochs", "2", "--cache-dir", str(tmp_path / "cache"), "--output-dir", "run", *sizes]) == 0
    printed = capsys.readouterr().out
    lines = printed.splitlines()
    assert "\r" not in printed and "━" not in printed  # no progress bar redraws
    assert [line.split(":")[0] for line in lines if re.match(r"epoch \d+/2: ", line)] == ["epoch 1/2", "epoch 2/2"]
    assert not any(line.startswith("Epoch ") for line in lines)  # Keras' own "Epoch k/E" line
    assert "TrainConfig(" not in printed and sum(line.startswith(("model: ", "training: ")) for line in lines) == 2
    assert any(line.startswith("backend: ") and "KERAS_BACKEND=" in line for line in lines)
    testing, plotting, done = (next(i for i, line in enumerate(lines) if line.startswith(word))
                               for word in ("testing ", "plotting ", "Done: "))
    assert testing < plotting < done
    block = "\n".join(lines[done:])
    written = sorted(entry.name for entry in (tmp_path / "run").iterdir() if entry.name != LOCK_FILE)
    listed = re.findall(r"^  (\S+?)/?  ", block, flags=re.M)
    assert sorted(listed) == written, block
    assert "python zoo/train.py --evaluate run" in block
    assert "tensorboard --logdir run/tensorboard" in block
    assert "python -m keras_ssm.memory --model run/best.keras" in block
