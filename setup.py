"""Wheel builds also ship the skill bank: skills/, schemas/ and references/ are copied into optical_inspection/_bank/.

Everything else is in pyproject.toml. The copy is a build step of ours because setuptools' package data only
takes files that lie inside a package folder, and the design keeps the three folders at the repository root.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
BANK_FOLDERS = ("skills", "schemas", "references")


class BuildPyWithBank(build_py):
    def run(self) -> None:
        super().run()
        if self.editable_mode:  # an editable install reads the folders in the checkout itself
            return
        for name in BANK_FOLDERS:
            shutil.copytree(ROOT / name, Path(self.build_lib) / "optical_inspection" / "_bank" / name,
                            dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


setup(cmdclass={"build_py": BuildPyWithBank})
