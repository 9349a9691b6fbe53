"""Images we draw: glyphs of the DejaVu and Noto fonts (letters, scripts, alphabets) and kanji from
kanjidraw's stroke templates (kanji, stroke counts)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ...debian_data import DEJAVU_DIR
from ..common import SourceData, SourceRequest, images_per_class_for, require_dir, to_nhwc
from ..data import TaskDataError


GLYPH_CLASSES = ["A", "B", "E", "G", "K", "R", "S", "2", "5", "8"]
# Pose and polarity jitter of `glyphs` (scale range of the em box, degrees, fraction of the canvas,
# probability of light-on-dark).
GLYPH_JITTER = {"scale": (0.5, 0.85), "rotate": 15.0, "shift": 0.10, "invert": 0.0}


def _font_files() -> list[Path]:
    root = require_dir(DEJAVU_DIR, "fonts-dejavu-core")
    fonts = sorted(f for f in root.glob("DejaVu*.ttf") if "Math" not in f.name)
    if not fonts:
        raise TaskDataError(f"no DejaVu fonts in {root} (install the Debian package fonts-dejavu-core)")
    return fonts


def render_glyph(char: str, font: Path, rng: np.random.Generator, size: int = 32) -> np.ndarray:
    """One jittered glyph: random scale, rotation, offset, polarity and contrast (GLYPH_JITTER)."""
    j = GLYPH_JITTER
    big = size * 4  # draw large, then downsample: smooth edges at any rotation
    scale = rng.uniform(*j["scale"])
    face = ImageFont.truetype(str(font), int(big * scale))
    canvas = Image.new("L", (big, big), 0)
    ImageDraw.Draw(canvas).text((big / 2, big / 2), char, fill=255, font=face, anchor="mm")
    canvas = canvas.rotate(rng.uniform(-j["rotate"], j["rotate"]), resample=Image.Resampling.BICUBIC,
                           translate=tuple(rng.uniform(-j["shift"], j["shift"], 2) * big))
    mask = np.asarray(canvas.resize((size, size), Image.Resampling.LANCZOS), np.float32) / 255.0
    bg, fg = rng.uniform(0, 90), rng.uniform(165, 255)
    if rng.random() < j["invert"]:
        bg, fg = 255 - bg, 255 - fg
    img = bg + (fg - bg) * mask + rng.normal(0, 4, mask.shape)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def load_glyphs(req: SourceRequest) -> SourceData:
    fonts = _font_files()
    size = 32
    names = GLYPH_CLASSES
    out = {}
    for which, total, stream in (("train", req.max_train, 13), ("test", req.max_test, 14)):
        rng = np.random.default_rng([req.seed, stream])
        n = images_per_class_for(total, len(names))
        xs, ys = [], []
        for c, ch in enumerate(names):
            for _ in range(n):
                xs.append(render_glyph(ch, fonts[rng.integers(len(fonts))], rng, size))
            ys.append(np.full(n, c))
        out[which] = (to_nhwc(np.stack(xs)), np.concatenate(ys))
    return SourceData(
        class_names=list(names), images=out["train"][0], labels=out["train"][1],
        test_images=out["test"][0], test_labels=out["test"][1],
        source=f"DejaVu fonts ({len(fonts)} faces in {DEJAVU_DIR}) rendered with PIL",
        licence="DejaVu fonts licence (Bitstream Vera derivative, free)",
        kind=f"{size}x{size} grey rendered glyphs with random scale/rotation/offset/polarity",
        split="train and test rendered independently (different random streams)",
        inputs=[str(f) for f in fonts])


KANJIDRAW_DATA = Path("/usr/lib/python3/dist-packages/kanjidraw/data.json")
NOTO_DIR = Path("/usr/share/fonts/truetype/noto")
# Common kanji of 4-7 strokes, several sharing parts (目 田 白, 木 本) so that the task is not easy;
# class names are their meanings (figure fonts lack CJK glyphs).
KANJI_CLASSES = {"木": "tree", "水": "water", "火": "fire", "犬": "dog", "王": "king", "本": "book",
                 "石": "stone", "田": "field", "目": "eye", "白": "white", "虫": "insect", "貝": "shell"}
# `scripts`: writing system of a letter; per script a lower-case/consonant block and the Noto
# family stem (Latin-based families cover Greek and Cyrillic).
NOTO_SCRIPTS = {
    "Greek": ((0x03B1, 0x03C9), ""), "Cyrillic": ((0x0430, 0x044F), ""),
    "Armenian": ((0x0561, 0x0586), "Armenian"), "Georgian": ((0x10D0, 0x10F0), "Georgian"),
    "Hebrew": ((0x05D0, 0x05EA), "Hebrew"), "Devanagari": ((0x0915, 0x0939), "Devanagari"),
    "Thai": ((0x0E01, 0x0E2E), "Thai"), "Ethiopic": ((0x1200, 0x1248), "Ethiopic"),
    "Tamil": ((0x0B85, 0x0BB9), "Tamil"), "Cherokee": ((0x13A0, 0x13F4), "Cherokee"),
}
SCRIPT_DISJOINT_LETTERS = True


def _kanji_templates() -> dict[str, list[list[float]]]:
    """{kanji: strokes}; each stroke a straight segment (x0, y0, x1, y1) on a 256 canvas."""
    import json

    if not KANJIDRAW_DATA.is_file():
        raise TaskDataError(f"kanji stroke data not found: {KANJIDRAW_DATA} "
                            "(install the Debian package python3-kanjidraw)")
    raw = json.loads(KANJIDRAW_DATA.read_text(encoding="utf-8"))
    return {c: strokes for chars in raw.values() for c, strokes in chars.items()}


def render_strokes(strokes: list[list[float]], rng: np.random.Generator, size: int = 32) -> np.ndarray:
    """One hand-drawn-looking character from straight stroke templates: end points wobble, random
    pen width, rotation, shear, scale and offset; dark ink on light paper."""
    big = size * 4
    a = np.asarray(strokes, np.float64).reshape(-1, 2, 2) / 256.0 - 0.5
    a = a + rng.normal(0, 0.03, a.shape)
    ang = np.deg2rad(rng.uniform(-12, 12))
    rot = np.array([[np.cos(ang), -np.sin(ang)], [np.sin(ang), np.cos(ang)]])
    m = rot @ np.array([[1.0, rng.uniform(-0.2, 0.2)], [0.0, 1.0]])
    a = a @ m.T * rng.uniform(0.7, 0.95) + rng.uniform(-0.07, 0.07, 2)
    canvas = Image.new("L", (big, big), 0)
    draw = ImageDraw.Draw(canvas)
    width = max(1, int(round(big * rng.uniform(0.035, 0.075))))
    for (x0, y0), (x1, y1) in (a + 0.5) * big:
        draw.line([(x0, y0), (x1, y1)], fill=255, width=width)
    mask = np.asarray(canvas.resize((size, size), Image.Resampling.LANCZOS), np.float32) / 255.0
    img = rng.uniform(215, 255) - rng.uniform(140, 210) * mask + rng.normal(0, 3, mask.shape)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def _rendered(names: list[str], req: SourceRequest, draw, streams: tuple[int, int]):
    """Train and test rendered independently: ``draw(class_index, rng, which)`` -> one image."""
    out = {}
    for which, total, stream in (("train", req.max_train, streams[0]), ("test", req.max_test, streams[1])):
        rng = np.random.default_rng([req.seed, stream])
        n = images_per_class_for(total, len(names))
        xs = [draw(c, rng, which) for c in range(len(names)) for _ in range(n)]
        out[which] = (to_nhwc(np.stack(xs)), np.repeat(np.arange(len(names)), n))
    return out


def load_kanji(req: SourceRequest) -> SourceData:
    templates = _kanji_templates()
    missing = [c for c in KANJI_CLASSES if c not in templates]
    if missing:
        raise TaskDataError(f"kanji not in {KANJIDRAW_DATA}: {' '.join(missing)}")
    chars = list(KANJI_CLASSES)
    out = _rendered(chars, req, lambda c, rng, _: render_strokes(templates[chars[c]], rng), (20, 21))
    return SourceData(
        class_names=[f"{KANJI_CLASSES[c]}" for c in chars], images=out["train"][0], labels=out["train"][1],
        test_images=out["test"][0], test_labels=out["test"][1],
        source="kanji stroke templates of kanjidraw (Debian python3-kanjidraw, data.json)",
        licence="AGPL-3.0-or-later (Debian copyright of python3-kanjidraw)",
        kind="32x32 grey kanji drawn from straight-stroke templates with random pen, wobble and pose",
        split="train and test rendered independently (different random streams)",
        inputs=[str(KANJIDRAW_DATA)])


def _noto_fonts(stem: str) -> list[Path]:
    root = require_dir(NOTO_DIR, "fonts-noto-core")
    fonts = []
    for family in ("NotoSans", "NotoSerif"):
        for style in ("Regular", "Bold"):
            f = root / f"{family}{stem}-{style}.ttf"
            if f.is_file():
                fonts.append(f)
    if not fonts:
        raise TaskDataError(f"no Noto{stem or ' Sans/Serif'} fonts in {root} "
                            "(install the Debian package fonts-noto-core)")
    return fonts


def _covered(font: Path, first: int, last: int) -> list[str]:
    """Letters of a code point range that the font has a glyph for (its cmap)."""
    from fontTools.ttLib import TTFont

    cmap = TTFont(str(font), lazy=True).getBestCmap()
    return [chr(u) for u in range(first, last + 1) if u in cmap and chr(u).isalpha()]


def render_text_glyph(char: str, font: Path, rng: np.random.Generator, size: int = 32) -> np.ndarray:
    """A letter in a font with mild jitter (scale, rotation, offset), dark ink on light paper."""
    big = size * 4
    face = ImageFont.truetype(str(font), int(big * rng.uniform(0.45, 0.65)))
    canvas = Image.new("L", (big, big), 0)
    ImageDraw.Draw(canvas).text((big / 2, big / 2), char, fill=255, font=face, anchor="mm")
    canvas = canvas.rotate(rng.uniform(-8, 8), resample=Image.Resampling.BICUBIC,
                           translate=tuple(rng.uniform(-0.08, 0.08, 2) * big))
    mask = np.asarray(canvas.resize((size, size), Image.Resampling.LANCZOS), np.float32) / 255.0
    img = rng.uniform(215, 255) - rng.uniform(150, 215) * mask + rng.normal(0, 3, mask.shape)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def load_scripts(req: SourceRequest) -> SourceData:
    names = list(NOTO_SCRIPTS)
    fonts, letters = {}, {}
    for name, ((first, last), stem) in NOTO_SCRIPTS.items():
        fonts[name] = _noto_fonts(stem)
        common = set.intersection(*(set(_covered(f, first, last)) for f in fonts[name]))
        chars = sorted(common)
        if len(chars) < 6:
            raise TaskDataError(f"script {name}: only {len(chars)} letters in {fonts[name][0]}")
        if SCRIPT_DISJOINT_LETTERS:  # every third letter test-only: only the script is shared
            letters[name] = {"train": [c for i, c in enumerate(chars) if i % 3 != 2],
                             "test": [c for i, c in enumerate(chars) if i % 3 == 2]}
        else:
            letters[name] = {"train": chars, "test": chars}

    def draw(c, rng, which):
        name = names[c]
        pool = letters[name][which]
        return render_text_glyph(pool[rng.integers(len(pool))], fonts[name][rng.integers(len(fonts[name]))], rng)

    out = _rendered(names, req, draw, (22, 23))
    return SourceData(
        class_names=names, images=out["train"][0], labels=out["train"][1],
        test_images=out["test"][0], test_labels=out["test"][1],
        source="Noto Sans/Serif fonts (Debian fonts-noto-core), one letter block per script",
        licence="SIL Open Font License 1.1 (Noto fonts)",
        kind="32x32 grey letters rendered with mild jitter; the class is the writing system",
        split="per script every third letter is test-only: train and test share no letter",
        inputs=sorted({str(f) for fs in fonts.values() for f in fs}))


# `strokes`: how many strokes a kanji has (bins), over many kanji; train and test kanji differ.
# Bins with gaps between them: six adjacent bins of 2 sat at 21-29 % (chance 17 %), these three at
# 44-60 % (docs/TASKS.md).
STROKE_BINS = [(2, 4), (7, 9), (13, 16)]


def load_strokes(req: SourceRequest) -> SourceData:
    templates = _kanji_templates()
    names = [f"{lo}-{hi}" for lo, hi in STROKE_BINS]
    pools = {}
    for c, (lo, hi) in enumerate(STROKE_BINS):
        chars = sorted(k for k, v in templates.items() if lo <= len(v) <= hi)
        # Every third kanji is test-only: the task is counting strokes, not recognising kanji.
        pools[c] = {"train": [k for i, k in enumerate(chars) if i % 3 != 2],
                    "test": [k for i, k in enumerate(chars) if i % 3 == 2]}

    def draw(c, rng, which):
        pool = pools[c][which]
        return render_strokes(templates[pool[rng.integers(len(pool))]], rng)

    out = _rendered(names, req, draw, (28, 29))
    return SourceData(
        class_names=names, images=out["train"][0], labels=out["train"][1],
        test_images=out["test"][0], test_labels=out["test"][1],
        source="kanji stroke templates of kanjidraw (Debian python3-kanjidraw, data.json)",
        licence="AGPL-3.0-or-later (Debian copyright of python3-kanjidraw)",
        kind="32x32 grey kanji drawn from straight-stroke templates; the class is the stroke count (binned)",
        split="per bin every third kanji (by code point) is test-only: train and test share no kanji",
        inputs=[str(KANJIDRAW_DATA)])


# Alphabets (Omniglot-like): the letters of one script are the classes, drawn in its Noto
# Sans/Serif Regular/Bold faces with the `glyphs` jitter; first ALPHABET_CLASSES letters the
# fonts all cover, taken evenly over the block.
ALPHABETS = {"devanagari": "Devanagari", "georgian": "Georgian", "cherokee": "Cherokee"}
ALPHABET_CLASSES = 12


def _alphabet(req: SourceRequest, task_script: str, stream: int) -> SourceData:
    script = ALPHABETS[task_script]
    (first, last), stem = NOTO_SCRIPTS[script]
    fonts = _noto_fonts(stem)
    chars = sorted(set.intersection(*(set(_covered(f, first, last)) for f in fonts)))
    if len(chars) < ALPHABET_CLASSES:
        raise TaskDataError(f"{task_script}: only {len(chars)} letters in {fonts[0]}")
    names = [chars[i] for i in np.linspace(0, len(chars) - 1, ALPHABET_CLASSES).round().astype(int)]
    out = _rendered(names, req, lambda c, rng, _: render_glyph(names[c], fonts[rng.integers(len(fonts))], rng),
                    (stream, stream + 1))
    return SourceData(
        class_names=[f"U+{ord(c):04X}" for c in names], images=out["train"][0], labels=out["train"][1],
        test_images=out["test"][0], test_labels=out["test"][1],
        source=f"Noto Sans/Serif {script} (Debian fonts-noto-core), {len(fonts)} faces, rendered with PIL",
        licence="SIL Open Font License 1.1 (Noto fonts)",
        kind=f"32x32 grey {script} letters with random scale/rotation/offset/contrast; the class is the letter",
        split="train and test rendered independently (different random streams)",
        inputs=[str(f) for f in fonts])


def load_devanagari(req: SourceRequest) -> SourceData:
    return _alphabet(req, "devanagari", 32)


def load_georgian(req: SourceRequest) -> SourceData:
    return _alphabet(req, "georgian", 34)


def load_cherokee(req: SourceRequest) -> SourceData:
    return _alphabet(req, "cherokee", 36)
