"""Software versions and the git commit of the code that builds the report."""

from __future__ import annotations

import platform
import shutil
import subprocess
from importlib import metadata
from pathlib import Path

# Distributions whose versions decide whether a run can be reproduced.
PACKAGES = ("torch", "lightning", "captum", "quantus", "medmnist", "grad-cam", "numpy")

_GIT_TIMEOUT_S = 10


def package_versions() -> list[tuple[str, str]]:
    """Return ``(name, version)`` for Python and each package in :data:`PACKAGES`.

    A package that is not installed is listed as ``"not installed"``.
    """
    versions = [("python", platform.python_version())]
    for name in PACKAGES:
        try:
            versions.append((name, metadata.version(name)))
        except metadata.PackageNotFoundError:
            versions.append((name, "not installed"))
    return versions


def git_commit(folder: Path) -> str:
    """Describe the git commit checked out in ``folder``.

    Args:
        folder: Any folder inside the checkout, usually the folder of the medxai package.

    Returns:
        The commit hash, with " (uncommitted changes)" appended when the work tree differs from it,
        or a short reason when git is not installed, fails, or ``folder`` is not in a checkout.
        OSError and subprocess errors (including the 10 s timeout) are caught, so this does not raise.
    """
    git = shutil.which("git")
    if git is None:
        return "unknown (git is not installed)"
    try:
        head = subprocess.run(
            [git, "rev-parse", "HEAD"],
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=_GIT_TIMEOUT_S,
            check=False,
        )
        if head.returncode != 0:
            return "unknown (not a git checkout)"
        commit = head.stdout.strip()
        status = subprocess.run(
            [git, "status", "--porcelain", "--untracked-files=no"],
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=_GIT_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as err:
        return f"unknown (git failed: {err})"
    if status.returncode == 0 and status.stdout.strip():
        return f"{commit} (uncommitted changes)"
    return commit
