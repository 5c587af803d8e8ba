"""Shared plumbing of the sampling benchmarks: the in-process tiny-model host and an interleaved timing
table of ``comfy.sample.sample`` calls, ratios against a baseline measured in the same run.

Used by ``bench_sampler.py`` and ``bench_image_prompts.py``; not a benchmark itself.
"""
from __future__ import annotations

import logging
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Mapping

REPO = Path(__file__).resolve().parents[1]
if str(REPO / "tests" / "harness") not in sys.path:
    sys.path[:0] = [str(REPO / "tests" / "harness"), str(REPO)]


def start_tiny_host(log_level: int = logging.WARNING):
    """Generate (or reuse) the tiny models, import ComfyUI 0.3.75 in this process with the pack and the
    test extensions loaded, and return the pack's package module (``pack.nodes...``)."""
    import comfy_host
    import tiny_models

    cache = comfy_host.HOST / "cache" / tiny_models.VERSION
    subprocess.run([sys.executable, str(REPO / "tests/harness/tiny_models.py"), "--out", str(cache)], check=True,
                   stdout=subprocess.DEVNULL)
    base = comfy_host.make_base_dir(Path(tempfile.mkdtemp()), [cache], comfy_host.TINY_EXTS)
    comfy_host.InProcessHost(base)
    logging.getLogger().setLevel(log_level)
    return next(m for n, m in sys.modules.items()
                if n.endswith(comfy_host.PACK_LINK_NAME) and hasattr(m, "comfy_entrypoint"))


def time_sampling(variants: Mapping[str, tuple[Any, Any, Any]], latent, steps: int, repeats: int,
                  sampler: str = "dpmpp_2m_sde_gpu", scheduler: str = "karras", cfg: float = 4.0
                  ) -> dict[str, list[float]]:
    """Seconds of one ``comfy.sample.sample`` call per variant (``name -> (model, positive, negative)``), on
    ``latent`` (float ``[B, 4, h, w]``): one warm-up call each, then ``repeats`` rounds interleaved across the
    variants (so machine noise hits them alike), seed = round number."""
    import comfy.sample

    def run(v, seed: int) -> float:
        model, pos, neg = v
        noise = comfy.sample.prepare_noise(latent, seed)
        t0 = time.perf_counter()
        comfy.sample.sample(model, noise, steps, cfg, sampler, scheduler, pos, neg, latent, denoise=1.0,
                            disable_pbar=True, seed=seed)
        return time.perf_counter() - t0

    for v in variants.values():
        run(v, 0)
    times: dict[str, list[float]] = {k: [] for k in variants}
    for r in range(repeats):
        for name, v in variants.items():
            times[name].append(run(v, r + 1))
    return times


def print_table(times: Mapping[str, list[float]], steps: int, baseline: str, title: str,
                out: Callable[[str], None] = print) -> None:
    """Markdown table: variant, median seconds, seconds per step, ratio to ``baseline``'s median."""
    width = max(len(k) for k in times)
    base_t = statistics.median(times[baseline])
    out(f"\n{title}\n")
    out(f"| {'variant':<{width}} | {'median s':>9} | {'s/step':>7} | {'ratio':>6} |")
    out(f"|{'-' * (width + 2)}|{'-' * 11}|{'-' * 9}|{'-' * 8}|")
    for name, ts in times.items():
        med = statistics.median(ts)
        out(f"| {name:<{width}} | {med:9.3f} | {med / steps:7.4f} | {med / base_t:6.3f} |")
