"""Folders of Debian packages whose files both the tasks and the renderer read (the packages are in
tools/debian-packages.txt): one definition each."""

from __future__ import annotations

from pathlib import Path

# fonts-dejavu-core: the glyphs task's fonts and the renderer's extruded-glyph classes
DEJAVU_DIR = Path("/usr/share/fonts/truetype/dejavu")
# gimp-data (<Material>/*.pat, Legacy/*.pat) and gimp-data-extras (top-level *.pat)
GIMP_PATTERNS_DIR = Path("/usr/share/gimp/2.0/patterns")
