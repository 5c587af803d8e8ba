"""Prompt-side costs: style table loading, resolving + assembling prompts for all 277 styles, wildcard
resolution, inline-LoRA parsing, and the Fooocus V2 expansion per image on a tiny random GPT-2 with the real
tokenizer.

Reads Fooocus's data files from ../shared/fooocus-data (or FOOOCUS_SHARED). Prints a table.

    .host/venv/bin/python benchmarks/bench_prompt.py
"""
from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DATA = Path(os.environ.get("FOOOCUS_SHARED", REPO.parent / "shared")) / "fooocus-data"


def timed(fn, repeats=5):
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def main() -> int:
    from engine import expansion, prompt, styles, wildcards

    table = styles.load_styles(DATA / "sdxl_styles")
    names = list(table.keys())
    t_load = timed(lambda: styles.load_styles(DATA / "sdxl_styles"))
    t_all = timed(lambda: [prompt.assemble_prompts("a cabin in the woods", "blurry", [n], table, 42, 0)
                           for n in names])
    t_default = timed(lambda: prompt.assemble_prompts("a cabin in the woods", "", ["Fooocus V2", "Fooocus Enhance",
                                                                                   "Fooocus Sharp"], table, 42, 0), 50)
    wc = {f"w{i}": [f"word{i}_{j}" for j in range(200)] for i in range(20)}
    wc["nested"] = ["__w1__ and __w2__"]
    wc_text = "a cabin, __w0__, __w3__, __nested__, __w4__ __w5__"
    seeds_wc = iter(range(10**6))
    t_wc = timed(lambda: wildcards.resolve_wildcards(wc_text, wc, next(seeds_wc)), 200)
    t_wc_assemble = timed(lambda: prompt.assemble_prompts(wc_text, "__w6__", ["Random Style"], table, 42, 0,
                                                          wildcards=wc), 50)
    loras = [f"lora_{i}.safetensors" for i in range(200)]
    lora_text = "a cabin, <lora:lora_150:0.5>, red roof <lora:lora_7:1>"
    t_lora = timed(lambda: prompt.inline_loras_to_apply(lora_text, loras, ["lora_1.safetensors"]), 200)
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    folder = DATA / "prompt_expansion" / "fooocus_expansion"
    tok = expansion.load_tokenizer(folder)
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=64, n_head=2, vocab_size=len(tok))).eval()
    bias = expansion.build_logits_bias(tok.get_vocab(), expansion.load_positive_words(folder / "positive.txt"))
    seeds = iter(range(10**6))
    t_exp = timed(lambda: expansion.expand_prompt("a cabin in the woods", next(seeds), tok, model, bias), 5)
    print(f"\n{len(names)} styles from {DATA / 'sdxl_styles'}\n")
    print("| step | median |")
    print("|---|---|")
    print(f"| load the 6 style files | {t_load * 1e3:.1f} ms |")
    print(f"| assemble prompts for each of the {len(names)} styles (one call per style) | {t_all * 1e3:.1f} ms "
          f"({t_all / len(names) * 1e6:.0f} µs per style) |")
    print(f"| assemble the fal default (Fooocus V2, Enhance, Sharp) | {t_default * 1e6:.0f} µs |")
    print(f"| wildcards: 6 placeholders (one nested) in one line, 200-line files | {t_wc * 1e6:.0f} µs |")
    print(f"| assemble with wildcards + Random Style (per image) | {t_wc_assemble * 1e6:.0f} µs |")
    print(f"| inline LoRAs: 2 tokens against 200 LoRA files | {t_lora * 1e6:.0f} µs |")
    print(f"| Fooocus V2 expansion per image, tiny GPT-2 (2 layers, 64 wide), real tokenizer | {t_exp * 1e3:.0f} ms |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
