"""Benchmark: Fooocus inpaint patch files at real SDXL size (write, load, decode + apply).

Usage::

    .host/venv/bin/python benchmarks/bench_patch.py [--full] [--seed N] [--comfy PATH]

The key set and shapes are those of ComfyUI's own SDXL UNet (``UNetModel`` built on the ``meta``
device with the SDXL ``unet_config``, so no memory is allocated), named as ComfyUI's
``BaseModel.state_dict()`` names them (``diffusion_model.<key>``). A deterministic, evenly spread
subset of the keys is chosen so the patch holds about as many uint8 elements as the real
``inpaint_v26.fooocus.patch`` (1,323,362,033 bytes ≈ 1.32 G elements) with ``--full``, or 1/8 of
that without. Which keys the real v2.6 file patches is not known here; only the size is matched.

Every phase runs in its own child process so its peak RSS (``ru_maxrss``) is its own:

- ``write``   : make_random_patch + save_inpaint_patch (torch.save zip, the Fooocus format);
- ``load``    : load_inpaint_patch (weights_only torch.load, validation), RSS after load;
- ``load_mmap``: the same with ``mmap=True``;
- ``stream``  : fp16 weights for every patched key; per key, as ComfyUI's patch_weight_to_device
  does: ``w32 = w.float(); apply_delta_(w32, entry, 1.0); w.copy_(w32)`` (u8 kept, decoded per key);
- ``stream_mmap``: ``stream`` with the patch memory-mapped;
- ``naive``   : decode the whole patch to float32 up front, then ``w.copy_(w.float() + delta)``.

A ``prefault`` child first touches about the naive phase's peak memory once and exits: on a fresh
VM the first touch of guest memory is several times slower than later use, and that one-off cost
would otherwise be charged to whichever phase first reaches a new high-water mark. The file stays
in the page cache between phases (dropping it needs root), so load times are warm-cache times.

All files live in a temporary directory that is deleted at the end.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
V26_BYTES = 1_323_362_033
SDXL_PARAMS = 2_567_463_684  # ComfyUI SDXL UNetModel parameter count (checked below)


# --------------------------------------------------------------------------------------------
# helpers
def _rss_mb() -> float:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return float("nan")


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def sdxl_unet_shapes(comfy_root: Path) -> dict[str, list[int]]:
    """``{"diffusion_model.<key>": shape}`` of ComfyUI's SDXL UNet, built on the meta device."""
    if not (comfy_root / "comfy").is_dir():
        raise SystemExit(f"--comfy: no ComfyUI checkout at {comfy_root} (expected {comfy_root}/comfy)")
    sys.path.insert(0, str(comfy_root))
    import comfy.cli_args

    comfy.cli_args.args.cpu = True
    import torch
    import comfy.ops
    import comfy.supported_models
    from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel

    # Full SDXL base config, as in comfy/model_detection.py unet_config_from_diffusers_unet ("SDXL").
    cfg = {
        "use_checkpoint": False, "image_size": 32, "out_channels": 4, "use_spatial_transformer": True,
        "legacy": False, "num_classes": "sequential", "adm_in_channels": 2816, "dtype": torch.float16,
        "in_channels": 4, "model_channels": 320, "num_res_blocks": [2, 2, 2],
        "transformer_depth": [0, 0, 2, 2, 10, 10], "channel_mult": [1, 2, 4], "transformer_depth_middle": 10,
        "use_linear_in_transformer": True, "context_dim": 2048, "num_head_channels": 64,
        "transformer_depth_output": [0, 0, 0, 2, 2, 2, 10, 10, 10], "use_temporal_attention": False,
        "use_temporal_resblock": False,
    }
    for k, v in comfy.supported_models.SDXL.unet_config.items():  # consistent with ComfyUI's SDXL class
        assert cfg[k] == v, (k, cfg[k], v)
    unet = UNetModel(**cfg, device="meta", operations=comfy.ops.disable_weight_init)
    shapes = {"diffusion_model." + k: list(v.shape) for k, v in unet.state_dict().items()}
    total = sum(_numel(s) for s in shapes.values())
    assert total == SDXL_PARAMS, total
    return shapes


def _numel(shape) -> int:
    n = 1
    for s in shape:
        n *= int(s)
    return n


def select_keys(shapes: dict[str, list[int]], target: int) -> dict[str, list[int]]:
    """Keys in model order, keeping a running share of ``target / total`` (spread over all blocks)."""
    total = sum(_numel(s) for s in shapes.values())
    ratio = min(1.0, target / total)
    out, seen, kept = {}, 0, 0
    for k, s in shapes.items():
        n = _numel(s)
        seen += n
        if kept + n <= ratio * seen + 1:
            out[k] = s
            kept += n
    return out


# --------------------------------------------------------------------------------------------
# phases (child processes)
def _fp16_weights(shapes):
    import torch

    return {k: torch.empty(tuple(s), dtype=torch.float16).fill_(0.01) for k, s in shapes.items()}


def _checksum(weights) -> float:
    keys = list(weights)[::7]
    return float(sum(weights[k].double().sum().item() for k in keys))


def phase(name: str, d: Path, seed: int) -> dict:
    sys.path.insert(0, str(REPO))
    import torch

    from engine.inpaint_patch import apply_delta_, decode_delta, load_inpaint_patch, make_random_patch, save_inpaint_patch

    shapes = json.loads((d / "shapes.json").read_text()) if name != "prefault" else {}
    path = d / "inpaint_bench.fooocus.patch"
    res: dict = {"phase": name, "rss_start_mb": _rss_mb()}
    if name == "prefault":
        # Touch (and free) the memory the later phases will use: in a fresh VM the first touch of
        # guest memory is many times slower than reuse, which would otherwise land in one phase.
        t = time.perf_counter()
        chunks, left = [], int(seed)
        while left > 0:
            n = min(left, 256 << 20)
            chunks.append(torch.ones(n, dtype=torch.uint8))
            left -= n
        res["prefault_s"] = time.perf_counter() - t
        res["peak_rss_mb"] = _peak_mb()
        return res
    if name == "write":
        t = time.perf_counter()
        state = make_random_patch(shapes, seed)
        res["gen_s"] = time.perf_counter() - t
        t = time.perf_counter()
        save_inpaint_patch(path, state)
        res["write_s"] = time.perf_counter() - t
        res["file_bytes"] = path.stat().st_size
    elif name in ("load", "load_mmap"):
        t = time.perf_counter()
        patch = load_inpaint_patch(path, mmap=name == "load_mmap")
        res["load_s"] = time.perf_counter() - t
        res["rss_after_load_mb"] = _rss_mb()
        res["keys"] = len(patch)
    elif name in ("stream", "stream_mmap", "naive"):
        t = time.perf_counter()
        patch = load_inpaint_patch(path, mmap=name == "stream_mmap")
        res["load_s"] = time.perf_counter() - t
        weights = _fp16_weights(shapes)
        res["rss_before_apply_mb"] = _rss_mb()
        t = time.perf_counter()
        if name == "naive":
            deltas = {k: decode_delta(e) for k, e in patch.items()}
            res["decode_all_s"] = time.perf_counter() - t
            for k, w in weights.items():
                w32 = w.float()
                w32 += deltas[k]
                w.copy_(w32)
            res["rss_after_apply_mb"] = _rss_mb()
            del deltas
        else:
            for k, w in weights.items():
                w32 = w.float()
                apply_delta_(w32, patch[k], 1.0, key=k)
                w.copy_(w32)
            res["rss_after_apply_mb"] = _rss_mb()
        res["apply_s"] = time.perf_counter() - t
        res["checksum"] = _checksum(weights)
    else:
        raise SystemExit(f"unknown phase {name}")
    res["peak_rss_mb"] = _peak_mb()
    return res


# --------------------------------------------------------------------------------------------
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--full", action="store_true", help="v2.6-sized patch (~1.32 G elements, needs ~12 GB RAM)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--comfy", type=Path, default=REPO / ".host" / "ComfyUI", help="ComfyUI checkout")
    ap.add_argument("--no-prefault", dest="prefault", action="store_false",
                    help="skip touching the expected peak memory once before the timed phases")
    ap.add_argument("--phase", help=argparse.SUPPRESS)
    ap.add_argument("--dir", type=Path, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.phase:
        print("RESULT " + json.dumps(phase(a.phase, a.dir, a.seed)), flush=True)
        return

    target = V26_BYTES if a.full else V26_BYTES // 8
    shapes_all = sdxl_unet_shapes(a.comfy)
    shapes = select_keys(shapes_all, target)
    n = sum(_numel(s) for s in shapes.values())
    import torch

    print(f"SDXL UNet (ComfyUI, meta device): {len(shapes_all)} keys, {SDXL_PARAMS:,} params")
    print(f"patch: {len(shapes)} keys, {n:,} uint8 elements ({'full v2.6 size' if a.full else '1/8 of v2.6'}); "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} cpus")
    d = Path(tempfile.mkdtemp(prefix="bench_patch_"))
    results = {}
    try:
        (d / "shapes.json").write_text(json.dumps(shapes))
        # naive peak ≈ u8 + fp32 deltas + fp16 weights (7 B/element) + interpreter/torch overhead
        prefault = int(n * 7.3) + (300 << 20) if a.prefault else 0
        for ph in ("prefault", "write", "load", "load_mmap", "stream", "stream_mmap", "naive"):
            if ph == "prefault" and not prefault:
                continue
            t = time.perf_counter()
            seed = prefault if ph == "prefault" else a.seed  # the prefault phase takes its size as --seed
            cp = subprocess.run(
                [sys.executable, __file__, "--phase", ph, "--dir", str(d), "--seed", str(seed)],
                capture_output=True, text=True,
            )
            if cp.returncode != 0:
                sys.stderr.write(cp.stdout + cp.stderr)
                raise SystemExit(f"phase {ph} failed (rc {cp.returncode})")
            line = next(ln for ln in cp.stdout.splitlines() if ln.startswith("RESULT "))
            results[ph] = json.loads(line[len("RESULT "):])
            results[ph]["wall_s"] = time.perf_counter() - t
            if ph == "prefault":
                print(f"prefaulted {prefault / 2**30:.1f} GiB of memory in {results[ph]['prefault_s']:.1f} s "
                      f"(first-touch cost kept out of the timings; --no-prefault to skip)")
    finally:
        shutil.rmtree(d, ignore_errors=True)

    r = results
    gb = n / 1e9
    print()
    print("| step | time (s) | RSS after (MB) | peak RSS (MB) | notes |")
    print("|---|---|---|---|---|")
    print(f"| generate (make_random_patch) | {r['write']['gen_s']:.2f} | | | {gb:.3f} G u8 elements |")
    print(f"| write (save_inpaint_patch, torch.save zip) | {r['write']['write_s']:.2f} | | {r['write']['peak_rss_mb']:.0f} | "
          f"{r['write']['file_bytes']:,} B file |")
    for ph in ("load", "load_mmap"):
        x = r[ph]
        print(f"| {ph} (load_inpaint_patch{', mmap=True' if ph == 'load_mmap' else ''}) | {x['load_s']:.2f} | "
              f"{x['rss_after_load_mb']:.0f} | {x['peak_rss_mb']:.0f} | {x['keys']} keys, RSS at start "
              f"{x['rss_start_mb']:.0f} |")
    for ph, label in (("stream", "per-key decode+apply (u8 in RAM)"), ("stream_mmap", "per-key decode+apply (u8 mmap)"),
                      ("naive", "naive: decode all to fp32, then apply")):
        x = r[ph]
        extra = f"decode-all {x['decode_all_s']:.2f} s; " if "decode_all_s" in x else ""
        print(f"| {label} | {x['apply_s']:.2f} | {x['rss_after_apply_mb']:.0f} | {x['peak_rss_mb']:.0f} | "
              f"{extra}RSS with patch + fp16 weights {x['rss_before_apply_mb']:.0f} |")
    s, nv = r["stream"], r["naive"]
    print()
    print(f"naive / per-key: time {nv['apply_s'] / s['apply_s']:.2f}x, peak RSS {nv['peak_rss_mb'] / s['peak_rss_mb']:.2f}x "
          f"(+{nv['peak_rss_mb'] - s['peak_rss_mb']:.0f} MB)")
    same = s["checksum"] == nv["checksum"] == r["stream_mmap"]["checksum"]
    print(f"patched weights identical across methods (checksum of every 7th key): {same} ({s['checksum']:.6f})")
    if not same:
        raise SystemExit("checksum mismatch between methods")


if __name__ == "__main__":
    main()
