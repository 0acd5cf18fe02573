"""The scenario catalogue ships in the wheel: the top-level streams/ folder is its one source,
mapped to the package autoopt_lab.streams.scenarios by pyproject.toml, and an installed copy
(no checkout around it) finds it there."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import tomllib

from autoopt_lab.streams import catalogue

ROOT = Path(__file__).resolve().parents[1]


def test_pyproject_maps_the_packaged_catalogue_to_the_top_level_streams_folder():
    tools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert tools["package-dir"]["autoopt_lab.streams.scenarios"] == "streams"
    assert "*.toml" in tools["package-data"]["autoopt_lab.streams.scenarios"]
    assert sorted((ROOT / "streams").glob("*.toml"))
    # the package folder in a checkout is only a note: the scenarios are not copied twice
    assert not list(catalogue.PACKAGED.glob("*.toml"))


def test_an_installed_copy_finds_the_packaged_catalogue(tmp_path, monkeypatch):
    packaged = tmp_path / "site" / "scenarios"
    packaged.mkdir(parents=True)
    for f in (ROOT / "streams").glob("*.toml"):
        shutil.copy(f, packaged / f.name)
    monkeypatch.delenv("AUTOOPT_STREAMS", raising=False)
    monkeypatch.chdir(tmp_path)  # no ./streams here
    monkeypatch.setattr(catalogue, "PACKAGED", packaged)
    assert catalogue.catalogue_dir() == packaged
    assert catalogue.find_scenario("fmnist-concept-swap").dataset == "fashion-mnist"


@pytest.mark.slow
def test_the_wheel_holds_every_scenario(tmp_path):
    src = tmp_path / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(
        ".venv", ".git", "build", "*.egg-info", "test-artifacts", "results", "data", "__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(tmp_path / "wheel")], cwd=src, check=True)
    (wheel,) = (tmp_path / "wheel").glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for f in (ROOT / "streams").glob("*.toml"):
        assert f"autoopt_lab/streams/scenarios/{f.name}" in names
