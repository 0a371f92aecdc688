"""Time per scored image (generation excluded): CLIP-I + CLIP-T + DINO + palette, on CPU.

Encoders have the real architectures (CLIP ViT-B/32 and DINO ViT-S/16 shapes) with random weights,
built from configs, since no weights can be downloaded here; their cost does not depend on the values.
Compared side by side with the same scores computed one image at a time (how evaluation notebooks
usually loop), so the table shows what batching buys.

Usage: python benchmarks/eval_scoring.py [--images 39] [--batch 16] [--threads N] [--encoders full|tiny]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from charforge.evaluate.encoders import ClipEncoder, DinoEncoder
from charforge.evaluate.scores import References, Scorer
from charforge.models.tiny import save_tiny_clip, save_tiny_dino
from charforge.world.attributes import held_out, random_character, random_scene
from charforge.world.render import render


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=39, help="pictures to score (the thesis' 13 prompts x 3)")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--size", type=int, default=512, help="picture size in pixels")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--encoders", choices=("full", "tiny"), default="full", help="tiny: a smoke run of the benchmark itself")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    import random

    rng = random.Random(0)
    images = [render(random_character(rng), random_scene(rng), args.size, seed=i) for i in range(args.images)]
    prompts = ["a cartoon of a girl waving"] * len(images)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        refs = []
        for i in range(6):
            path = tmp / f"ref{i}.png"
            render(held_out("unicorn-girl"), random_scene(rng), args.size, seed=100 + i).save(path)
            refs.append(path)
        full = args.encoders == "full"
        clip_dir = save_tiny_clip(tmp / "clip", full_size=full)
        dino_dir = save_tiny_dino(tmp / "dino", full_size=full)
        references = References.load(refs, ["a cartoon of a girl"] * len(refs))
        rows = []
        for label, batch in (("one at a time", 1), (f"batched ({args.batch})", args.batch)):
            scorer = Scorer(
                references,
                tmp / "cache",
                clip=ClipEncoder.load(str(clip_dir), batch),
                dino=DinoEncoder.load(str(dino_dir), batch),
            )
            scorer.reference_embeddings("clip"), scorer.reference_embeddings("dino"), scorer.palette  # noqa: B018
            scorer.score(images[:2], prompts[:2], [{}] * 2)  # warm-up
            timings = {}
            for name, fn in (
                ("CLIP-I + CLIP-T", lambda s=scorer: (s.clip.images(images), s.clip.texts(prompts))),
                ("DINO", lambda s=scorer: s.dino.images(images)),
                ("all (CLIP + DINO + palette)", lambda s=scorer: s.score(images, prompts, [{}] * len(images))),
            ):
                started = time.perf_counter()
                fn()
                timings[name] = (time.perf_counter() - started) / len(images) * 1000
            rows.append((label, timings))
    names = list(rows[0][1])
    print(f"\n{args.images} pictures of {args.size}px, {args.threads} CPU threads; ms per scored image")
    print(f"{'scores':32s}" + "".join(f"{label:>22s}" for label, _ in rows) + f"{'ratio':>10s}")
    for name in names:
        one, batched = rows[0][1][name], rows[1][1][name]
        print(f"{name:32s}{one:22.1f}{batched:22.1f}{one / batched:10.2f}x")


if __name__ == "__main__":
    main()
