"""The sources added for a reward table with signal (docs/TASKS.md): what each class means, and
that train and test share nothing beyond it (letters, kanji, digits, regions)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from task2sim.tasks import prepare_task, task_settings
from task2sim.tasks.sources import crops, drawn


def _prepare(source: str, seed: int = 0, **kw):
    settings = {"source": source, "max_train": 40, "max_test": 20, **kw}
    return prepare_task(f"t_{source}", task_settings(settings), seed)


def _need(path: Path, package: str) -> None:
    if not path.exists():
        pytest.skip(f"Debian package {package} is not installed ({path} missing)")


def test_render_strokes_draws_every_stroke():
    rng = np.random.default_rng(0)
    one = drawn.render_strokes([[40, 128, 216, 128]], rng)        # a horizontal bar
    assert one.shape == (32, 32) and one.dtype == np.uint8
    ink = one < one.max() - 60
    rows = np.flatnonzero(ink.any(1))
    assert 0 < len(rows) <= 8 and ink.any(0).sum() >= 14      # wide and thin
    two = drawn.render_strokes([[40, 128, 216, 128], [128, 40, 128, 216]], np.random.default_rng(0))
    assert (two < two.max() - 60).sum() > ink.sum()           # the cross has more ink


def test_kanji_classes_are_meanings_of_known_kanji():
    _need(drawn.KANJIDRAW_DATA, "python3-kanjidraw")
    templates = drawn._kanji_templates()
    assert all(k in templates for k in drawn.KANJI_CLASSES)
    assert len(templates["木"]) == 4 and len(templates["貝"]) == 7  # stroke counts
    task, _ = _prepare("kanji")
    assert task.class_names[:3] == ["tree", "water", "fire"]


def _spy(monkeypatch, name: str) -> list:
    """Record the first argument of every call of drawn.<name> (train images render first)."""
    calls, real = [], getattr(drawn, name)

    def spy(first, *a, **kw):
        calls.append(first)
        return real(first, *a, **kw)

    monkeypatch.setattr(drawn, name, spy)
    return calls


def test_strokes_train_and_test_use_different_kanji(monkeypatch):
    _need(drawn.KANJIDRAW_DATA, "python3-kanjidraw")
    templates = drawn._kanji_templates()
    owner = {str(v): k for k, v in templates.items()}
    calls = _spy(monkeypatch, "render_strokes")
    task, _ = _prepare("strokes", max_train=120, max_test=120)
    assert len(calls) == 240
    train, test = {owner[str(c)] for c in calls[:120]}, {owner[str(c)] for c in calls[120:]}
    assert len(train) > 50 and len(test) > 50 and not (train & test)
    for k in train | test:  # each drawn kanji's stroke count falls in one of the bins
        assert any(lo <= len(templates[k]) <= hi for lo, hi in drawn.STROKE_BINS)


def test_scripts_share_no_letter_between_train_and_test(monkeypatch):
    _need(drawn.NOTO_DIR, "fonts-noto-core")
    calls = _spy(monkeypatch, "render_text_glyph")
    _prepare("scripts", max_train=200, max_test=200)
    train, test = set(calls[:200]), set(calls[200:])
    assert len(train) > 60 and len(test) > 40 and not (train & test)


def test_orient_labels_are_the_rotation():
    task, _ = _prepare("orient", max_train=400, max_test=200)
    x, y = task.train_images[..., 0], task.train_labels
    # Rotating a class-k image back by k quarter turns gives an upright digit; every upright
    # image there is also present (as itself) in class 0 of the same split for some digit.
    from task2sim.tasks.sources.fixed import _mnist5k_arrays

    upright = {np.clip(np.rint(d), 0, 255).astype(np.uint8).tobytes()
               for d in _mnist5k_arrays()[0].reshape(-1, 28, 28)}
    for k in range(4):
        for img in x[y == k][:5]:
            assert np.rot90(img, -k).tobytes() in upright
    # no digit appears in both splits (under any angle)
    back = lambda xs, ys: {np.rot90(i, -int(k)).tobytes() for i, k in zip(xs, ys)}  # noqa: E731
    assert not (back(x, y) & back(task.test_images[..., 0], task.test_labels))


def test_photos_and_patterns_classes():
    task, inputs = _prepare("photos")
    assert task.class_names == crops.PHOTO_CLASSES and len(inputs) == len(crops.PHOTO_CLASSES)
    _need(crops.GIMP_PATTERNS_DIR / "3dweave.pat", "gimp-data-extras")
    task, inputs = _prepare("patterns")
    assert len(set(task.class_names)) == crops.PATTERN_CLASSES_N == len(inputs)
    assert all(Path(p).parent == crops.GIMP_PATTERNS_DIR for p in inputs)


@pytest.mark.parametrize("source", sorted(drawn.ALPHABETS))
def test_alphabet_classes_are_letters_of_their_script(source):
    _need(drawn.NOTO_DIR, "fonts-noto-core")
    (first, last), _ = drawn.NOTO_SCRIPTS[drawn.ALPHABETS[source]]
    task, inputs = _prepare(source, max_train=24, max_test=12)
    assert len(task.class_names) == drawn.ALPHABET_CLASSES == len(set(task.class_names))
    assert all(first <= int(n[2:], 16) <= last for n in task.class_names)  # "U+XXXX"
    assert len(inputs) >= 2 and all("Noto" in Path(p).name for p in inputs)


def test_glyphs_are_dark_on_light_or_light_on_dark_as_configured(monkeypatch):
    _need(drawn.DEJAVU_DIR, "fonts-dejavu-core")
    rng = np.random.default_rng(0)
    font = drawn._font_files()[0]
    monkeypatch.setitem(drawn.GLYPH_JITTER, "invert", 0.0)
    plain = [drawn.render_glyph("E", font, rng) for _ in range(20)]
    assert all(np.median(g) < 100 for g in plain)  # background dark: light ink
    monkeypatch.setitem(drawn.GLYPH_JITTER, "invert", 1.0)
    inverted = [drawn.render_glyph("E", font, rng) for _ in range(20)]
    assert all(np.median(g) > 155 for g in inverted)
