"""Synthetic image rendering: the seeded scene sampler (``spec``), the object/material/environment
assets, and the backends (moderngl default, mitsuba, TDW) that turn a SceneSpec into pixels."""
