"""Fetch a Debian package's files into a cache without installing it.

``apt-get download`` + ``dpkg -x`` unpack the .deb only: a full ``apt-get install`` of
sweethome3d-furniture or blender-data would pull Java or Blender's dependencies.
"""

from __future__ import annotations

import fcntl
import glob
import logging
import shutil
import subprocess
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)


class PackageUnavailable(RuntimeError):
    """The package cannot be fetched here (no apt-get/dpkg, no archive access, ...)."""


def fetch_package(package: str, cache_dir: Path, members: tuple[str, ...] = ()) -> Path:
    """Return a directory holding the unpacked files of Debian ``package`` (``<dir>/usr/...``).

    Uses the installed copy (``/``) when every member exists there; otherwise downloads the .deb
    once into ``cache_dir/debs/`` and unpacks it there. ``members``: paths (relative, e.g.
    ``usr/share/x``) that must exist; when given, only those are kept after unpacking.
    """
    if members and all(Path("/", m).exists() for m in members):
        return Path("/")
    root = Path(cache_dir) / "debs" / package
    done = root / ".complete"
    if done.exists():
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    # Several processes (snakemake jobs, tests) may ask at once: one downloads, the others wait.
    with open(root.parent / f".{package}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if done.exists():
            return root
        for tool in ("apt-get", "dpkg"):
            if shutil.which(tool) is None:
                raise PackageUnavailable(f"{package}: `{tool}` not found; unpack the Debian package "
                                         f"{package} under {root} by hand or use a Debian host")
        with tempfile.TemporaryDirectory(dir=root.parent) as tmp:
            log.info("downloading Debian package %s (apt-get download)", package)
            r = subprocess.run(["apt-get", "download", package], cwd=tmp, capture_output=True,
                               text=True)
            debs = glob.glob(str(Path(tmp) / f"{package}_*.deb"))
            if r.returncode != 0 or not debs:
                raise PackageUnavailable(f"{package}: apt-get download failed: "
                                         f"{(r.stderr or r.stdout).strip().splitlines()[-1:]}")
            out = Path(tmp) / "root"
            r = subprocess.run(["dpkg", "-x", debs[0], str(out)], capture_output=True, text=True)
            if r.returncode != 0:
                raise PackageUnavailable(f"{package}: dpkg -x failed: {r.stderr.strip()}")
            if members:
                keep = Path(tmp) / "keep"
                for m in members:
                    src = out / m
                    if not src.exists():
                        raise PackageUnavailable(f"{package}: {m} not in the package")
                    (keep / m).parent.mkdir(parents=True, exist_ok=True)
                    shutil.move(str(src), str(keep / m))
                out = keep
            if root.exists():
                shutil.rmtree(root)
            shutil.move(str(out), str(root))
            done.write_text(Path(debs[0]).name + "\n")
    return root
