"""Small helpers for V3 schemas."""
from __future__ import annotations


def advanced(inp):
    """Mark a widget as an expert setting (the frontend folds ``advanced`` inputs away)."""
    inp.extra_dict["advanced"] = True
    return inp
