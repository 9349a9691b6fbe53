"""Task sources: the built-in offline ones (see docs/TASKS.md) and two that take a local path
(``imagefolder``, ``hdf5``), one module per family: ``fixed`` (collections with their own split),
``crops`` (crops of larger images, disjoint regions), ``drawn`` (glyphs and kanji we draw),
``folders`` (files on disk).

Each loader takes a SourceRequest and returns a SourceData: images + labels + class names +
source/licence/kind text, with its own train/test split when the source defines one (or cuts
disjoint regions for it) and none otherwise. Splitting, capping and resizing happen afterwards,
the same for all, in ``task2sim.tasks.prepare``.
"""

from __future__ import annotations

from ..common import Loader
from ..data import TaskDataError
from .crops import load_brain, load_brain16, load_materials, load_patterns, load_photos, load_textures
from .drawn import (load_cherokee, load_devanagari, load_georgian, load_glyphs, load_kanji, load_scripts,
                    load_strokes)
from .fixed import load_digits8, load_faces, load_fashion, load_mnist5k, load_orient
from .folders import load_clipart, load_hdf5, load_icons, load_imagefolder


SOURCES: dict[str, Loader] = {
    "fashion": load_fashion, "mnist5k": load_mnist5k, "digits8": load_digits8,
    "faces": load_faces, "textures": load_textures, "materials": load_materials,
    "clipart": load_clipart, "brain": load_brain, "glyphs": load_glyphs,
    "kanji": load_kanji, "scripts": load_scripts, "orient": load_orient,
    "photos": load_photos, "patterns": load_patterns, "strokes": load_strokes,
    "icons": load_icons, "brain16": load_brain16, "devanagari": load_devanagari,
    "georgian": load_georgian, "cherokee": load_cherokee,
    "imagefolder": load_imagefolder, "hdf5": load_hdf5,
}


def get_loader(source: str, task: str = "?") -> Loader:
    try:
        return SOURCES[source]
    except KeyError:
        raise TaskDataError(f"task '{task}': unknown source '{source}' "
                            f"(choose from {', '.join(SOURCES)})") from None
