"""Atomic file writing: a reader never sees a file that looks complete but is not.

Every output is written to a temporary sibling (same directory, so the final ``os.replace`` is an
atomic rename on one filesystem) and moved into place only after it was closed successfully.
"""

from __future__ import annotations

import contextlib
import csv
import glob
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None, shared: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` only if the block succeeds.

    On any exception the temporary file is removed and ``path`` is left untouched (absent if it
    was absent). ``shared``: a cache file that several jobs may write at the same time (with the
    same content; the last rename wins), so another writer's temporary is not stale and is kept.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # A writer killed before its rename (kill -9, pre-emption) left its temporary behind; one job
    # writes one output path, so any such sibling is stale.
    for stale in () if shared else path.parent.glob(f".{glob.escape(path.name)}.*{glob.escape(suffix or '.part')}"):
        stale.unlink(missing_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix or ".part", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    with atomic_path(path, suffix=".json.part") as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def _json_default(o: Any) -> Any:
    # numpy scalars/arrays and paths turn up in parameter dicts; keep JSON plain.
    if hasattr(o, "tolist"):
        return o.tolist()
    if isinstance(o, os.PathLike):
        return os.fspath(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def save_torch(path: str | os.PathLike, obj: Any) -> None:
    """``torch.save`` atomically and byte-reproducibly: through a file object, so the archive's
    inner folder name does not come from the (random) temporary file name."""
    import torch

    with atomic_path(path, suffix=".pt.part") as tmp, open(tmp, "wb") as fh:
        torch.save(obj, fh)


# Zip entries carry a modification time; a fixed one makes equal arrays give equal files.
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


def save_npz(path: str | os.PathLike, **arrays: Any) -> None:
    """``np.savez`` atomically and byte-reproducibly (no timestamps, no pickles): ``np.load``
    reads it like any .npz."""
    import zipfile

    import numpy as np

    with atomic_path(path, suffix=".npz.part") as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as zf:
        for name, value in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_EPOCH)
            with zf.open(info, "w", force_zip64=True) as fh:
                np.lib.format.write_array(fh, np.asanyarray(value), allow_pickle=False)


def write_tsv(path: str | os.PathLike, columns: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> None:
    """A tab-separated table with a header, written atomically: ``columns`` in order, a missing
    value as an empty cell, keys outside ``columns`` left out."""
    with atomic_path(path, suffix=".tsv.part") as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(columns), delimiter="\t", lineterminator="\n", restval="",
                           extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
