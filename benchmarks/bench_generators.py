"""Time each image-to-video backend per clip on its tiny random-weight build (tests/tiny_models.py).

    .venv/bin/python benchmarks/bench_generators.py [--kinds wan-i2v ltx-i2v] [--repeats 2] [--device cpu]

The tiny models measure the adapter's and diffusers' overhead and the wiring, not a real model's speed:
no GPU was available when this was written, so published-model timings are left to a GPU run
(point --model-root at folders holding the real checkpoints, one per type, and use --device cuda).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from augment.episode import Episode
    from augment.registry import spec_class
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # the random-weight builders
    from tiny_models import BUILDERS, TINY_SETTINGS, save_tiny_pipeline

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kinds", nargs="*", default=list(BUILDERS))
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--model-root", help="folder with one real pipeline per type (its name); default: tiny builds")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    episode = Episode(frames={"cam": rng.integers(0, 256, (8, 48, 64, 3), dtype=np.uint8)}, task="pick the cube",
                      fps=30, uid="ep000000", provenance={"source": {"episode_index": 0}})
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for kind in args.kinds:
            if args.model_root:
                folder, settings = Path(args.model_root) / kind, {}
            else:
                folder, settings = save_tiny_pipeline(kind, Path(tmp) / kind), TINY_SETTINGS[kind]
            dtype = "float32" if args.device == "cpu" else "bfloat16"
            spec = spec_class(kind).model_validate({"type": kind, "model": str(folder), "dtype": dtype,
                                                    "device": args.device, "horizon": 1, **settings})
            stage = spec.build()
            start = time.perf_counter()
            stage.setup()
            load = time.perf_counter() - start
            times = []
            for _ in range(args.repeats):  # horizon 1: exactly one clip per call
                start = time.perf_counter()
                out = stage([episode])[0]
                times.append(time.perf_counter() - start)
            record = out.provenance["stages"][-1]
            rows.append((kind, f"{record['model_size'][0]}x{record['model_size'][1]}", record["clip_frames"],
                         spec.num_inference_steps or "default", load, min(times), float(np.mean(times))))

    header = ("backend", "model size", "frames/clip", "steps", "load s", "best s/clip", "mean s/clip")
    print(f"device: {args.device}; {'tiny random-weight builds' if not args.model_root else args.model_root}")
    print(" | ".join(header))
    print(" | ".join("---" for _ in header))
    for kind, size, frames, steps, load, best, mean in rows:
        print(f"{kind} | {size} | {frames} | {steps} | {load:.2f} | {best:.2f} | {mean:.2f}")


if __name__ == "__main__":
    main()
