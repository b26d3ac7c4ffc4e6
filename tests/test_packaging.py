"""The installed distribution holds only the library: no top-level `zoo` or `tuning` package."""

import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _package_config():
    tomllib = pytest.importorskip("tomllib" if sys.version_info >= (3, 11) else "tomli")
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)["tool"]["setuptools"]["packages"]["find"]


def test_setuptools_finds_only_keras_ssm():
    setuptools = pytest.importorskip("setuptools")
    packages = setuptools.find_packages(str(ROOT), **_package_config())
    assert "keras_ssm" in packages and "keras_ssm.layers" in packages and "keras_ssm.ops" in packages
    assert all(p == "keras_ssm" or p.startswith("keras_ssm.") for p in packages), packages
    # the repository does have these folders as packages: the config is what keeps them out
    assert {"zoo", "tuning"} <= set(setuptools.find_packages(str(ROOT)))


@pytest.mark.processes
@pytest.mark.slow
def test_built_wheel_has_no_top_level_zoo_or_tuning(tmp_path):
    """`pip wheel . --no-deps` (with this environment's setuptools, no download)."""
    import subprocess

    pytest.importorskip("setuptools")
    pytest.importorskip("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation",
                    "-w", str(tmp_path), "-q"], check=True, timeout=300, cwd=tmp_path)
    (wheel,) = tmp_path.glob("keras_ssm-*.whl")
    top = {name.split("/")[0] for name in zipfile.ZipFile(wheel).namelist()}
    assert "keras_ssm" in top and not top & {"zoo", "tuning", "tests", "benchmarks"}, top
