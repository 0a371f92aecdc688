"""Seconds per training step and peak RSS: charforge vs the diffusers DreamBooth-LoRA reference script.

    python benchmarks/train_step.py --reference PATH/TO/diffusers/examples/dreambooth/train_dreambooth_lora.py \
        --sizes tiny,256,512 --steps 5 --mixed-precision no,bf16
    python benchmarks/train_step.py --family sd3,flux --reference PATH/TO/diffusers/examples/dreambooth \
        --sizes tiny,mid --steps 5 --mixed-precision no,bf16

``--family sd3|flux|flux2|zimage|qwenimage`` trains the transformer families against diffusers'
``train_dreambooth_lora_sd3.py`` / ``_flux.py`` / ``_flux2_klein.py`` / ``_z_image.py`` / ``_qwen_image.py``
(``--reference`` is then the folder that holds them): ``tiny`` is the test suite's model at 64 px, ``mid`` the same
text encoders under a wider transformer (4 blocks of 8 x 64-wide heads) at 128 px, what two CPU cores can step
through; full-size models need a GPU.

Both train the same base model (built locally with random weights: a tiny SD1.x model, and the full
SD1.5 architecture), on the same 5 images, at the same resolution, batch 1, LoRA rank 4, lr 1e-4,
the same ``--mixed-precision`` (no = fp32, or bf16) given to both, no prior preservation, no
validation. The reference script is not ours and is never copied here: pass its path. It imports
torchvision only for image transforms; ``benchmarks/torchvision_standin.py`` stands in for them (there
is no CPU build of torchvision).

Per-step time is the median gap between optimizer steps after the first (warm-up) step.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
CACHE = HERE / ".cache"


def build_full_sd15(folder: Path) -> Path:
    """The SD1.5 architecture (UNet 860M, VAE 84M, CLIP-L text encoder) with random weights."""
    if (folder / "model_index.json").exists():
        return folder
    import torch
    from diffusers import AutoencoderKL, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    from charforge.models.tiny import sd_scheduler, write_tiny_tokenizer

    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        sample_size=64,
        layers_per_block=2,
        block_out_channels=(320, 640, 1280, 1280),
        cross_attention_dim=768,
        attention_head_dim=8,
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
    )
    vae = AutoencoderKL(
        block_out_channels=(128, 256, 512, 512),
        layers_per_block=2,
        latent_channels=4,
        sample_size=512,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
    )
    text = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=49408,
            hidden_size=768,
            intermediate_size=3072,
            num_hidden_layers=12,
            num_attention_heads=12,
            max_position_embeddings=77,
            hidden_act="quick_gelu",
            projection_dim=768,
            bos_token_id=512,
            eos_token_id=513,
            pad_token_id=513,
        )
    )
    with tempfile.TemporaryDirectory() as tmp:
        write_tiny_tokenizer(Path(tmp))
        tokenizer = CLIPTokenizer.from_pretrained(tmp)
    scheduler = sd_scheduler()
    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(folder, safe_serialization=True)
    return folder


REFERENCE_SCRIPTS = {
    "sd1": "train_dreambooth_lora.py",
    "sd3": "train_dreambooth_lora_sd3.py",
    "flux": "train_dreambooth_lora_flux.py",
    "zimage": "train_dreambooth_lora_z_image.py",
    "flux2": "train_dreambooth_lora_flux2_klein.py",
    "qwenimage": "train_dreambooth_lora_qwen_image.py",
}
# The klein script's --text_encoder_out_layers defaults to FLUX.2 dev's [10, 20, 30] while every klein pipeline reads
# (9, 18, 27) (diffusers issue #13445, open): it is given the pipeline's layers, what charforge trains with.
REFERENCE_EXTRA = {"flux2": ["--text_encoder_out_layers", "9", "18", "27"]}


def build_transformer_model(family: str, size: str, cache: Path) -> tuple[Path, int]:
    """The tiny SD3 / FLUX.1 / FLUX.2 klein / Z-Image / Qwen-Image model, or (``mid``) the same with a wider
    transformer (4 blocks of 8 x 64-wide heads; FLUX's also 4 single blocks)."""
    import torch

    from charforge.models.family import ModelFamily
    from charforge.models.tiny import build_tiny_pipeline

    folder = cache / f"{size}-{family}"
    if not (folder / "model_index.json").exists():
        pipe = build_tiny_pipeline(ModelFamily(family))
        if size == "mid":
            torch.manual_seed(0)
            config = dict(pipe.transformer.config)
            config.update(num_layers=4, attention_head_dim=64, num_attention_heads=8)
            if family == "sd3":
                config.update(caption_projection_dim=512, sample_size=64)
            elif family == "zimage":
                config = dict(dict(pipe.transformer.config), n_layers=4, dim=512, n_heads=8, n_kv_heads=8, axes_dims=[16, 24, 24])
            elif family == "flux2":
                config.update(num_single_layers=4, axes_dims_rope=(16, 16, 16, 16))
            elif family == "qwenimage":
                config.update(axes_dims_rope=(16, 24, 24))
            else:
                config.update(num_single_layers=4, axes_dims_rope=(16, 24, 24))
            pipe.transformer = type(pipe.transformer).from_config(config)
        pipe.save_pretrained(folder, safe_serialization=True)
    return folder, 64 if size == "tiny" else 128


def build_models(sizes: list[str], cache: Path, family: str = "sd1") -> dict[str, tuple[Path, int]]:
    from charforge.models.family import ModelFamily
    from charforge.models.tiny import save_tiny_model

    cache.mkdir(parents=True, exist_ok=True)
    if family != "sd1":
        return {size: build_transformer_model(family, size, cache) for size in sizes}
    models = {}
    for size in sizes:
        if size == "tiny":
            folder = cache / "tiny-sd1"
            if not (folder / "model_index.json").exists():
                save_tiny_model(folder, ModelFamily.SD1)
            models[size] = (folder, 64)
        else:
            models[size] = (build_full_sd15(cache / "sd15-random"), int(size))
    return models


def make_images(folder: Path) -> Path:
    """Five reference views of the mini world's held-out unicorn girl, at 512 px."""
    from charforge.world.attributes import HELD_OUT, REFERENCE_SCENES
    from charforge.world.render import render

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(5):
        render(HELD_OUT["unicorn-girl"], REFERENCE_SCENES[i % len(REFERENCE_SCENES)], 512, seed=i).save(folder / f"{i}.png")
    return folder


def measure(cmd: list[str], env: dict[str, str], timeout: int) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        out = f.name
    done = subprocess.run(
        [sys.executable, str(HERE / "_step_timer.py"), out, *cmd], env=env, capture_output=True, text=True, timeout=timeout
    )
    if done.returncode != 0:
        raise RuntimeError(f"{cmd[1]} failed:\n{done.stderr[-3000:]}")
    result = json.loads(Path(out).read_text())
    gaps = [b - a for a, b in zip(result["stamps"][1:], result["stamps"][2:], strict=False)]
    return {
        "s_per_step": statistics.median(gaps) if gaps else float("nan"),
        "peak_rss_gib": result["peak_rss_gib"],
        "steps": len(result["stamps"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--reference",
        type=Path,
        help="diffusers' examples/dreambooth/train_dreambooth_lora.py, or the examples/dreambooth folder (any --family)",
    )
    parser.add_argument("--family", default="sd1", help="comma list of: sd1, sd3, flux, flux2, zimage, qwenimage")
    parser.add_argument(
        "--sizes",
        default="tiny,256,512",
        help="comma list of: tiny, 256, 512 (full SD1.5 architecture); the transformer families: tiny, mid",
    )
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--timeout", type=int, default=1800)
    parser.add_argument("--cache", type=Path, default=CACHE, help="where the built models are kept between runs")
    parser.add_argument(
        "--mixed-precision", default="no", help="comma list of: no (fp32), bf16, fp16 (CUDA); each given to both trainers"
    )
    args = parser.parse_args()
    sizes = args.sizes.split(",")
    precisions = args.mixed_precision.split(",")
    unknown = sorted(set(precisions) - {"no", "bf16", "fp16"})
    if unknown:
        parser.error(f"--mixed-precision {','.join(unknown)}: use no, bf16 or fp16")
    families = args.family.split(",")
    if set(families) - set(REFERENCE_SCRIPTS):
        parser.error(f"--family: use {', '.join(REFERENCE_SCRIPTS)}")
    work = Path(tempfile.mkdtemp(prefix="charforge-bench-"))
    images = make_images(work / "images")
    env = dict(os.environ, TRANSFORMERS_VERBOSITY="error", DIFFUSERS_VERBOSITY="error", HF_HUB_OFFLINE="1")

    rows = []
    for family, size, precision in [(f, s, p) for f in families for s in sizes for p in precisions]:
        model, resolution = build_models([size], args.cache, family)[size]
        results = {}
        reference = args.reference / REFERENCE_SCRIPTS[family] if args.reference and args.reference.is_dir() else args.reference
        if reference and family != "sd1" and reference.name != REFERENCE_SCRIPTS[family]:
            parser.error(f"--family {family}: pass the examples/dreambooth folder as --reference")
        if reference:
            results["reference"] = measure(
                [
                    "script",
                    str(reference),
                    "--pretrained_model_name_or_path",
                    str(model),
                    "--instance_data_dir",
                    str(images),
                    "--instance_prompt",
                    "a picture of sks girl",
                    "--output_dir",
                    str(work / f"ref-{family}-{size}-{precision}"),
                    "--resolution",
                    str(resolution),
                    "--train_batch_size",
                    "1",
                    "--rank",
                    "4",
                    "--learning_rate",
                    "1e-4",
                    "--lr_warmup_steps",
                    "0",
                    "--max_train_steps",
                    str(args.steps),
                    "--checkpointing_steps",
                    "100000",
                    "--seed",
                    "0",
                    "--report_to",
                    "all",
                    "--mixed_precision",
                    precision,
                    "--center_crop",
                    *REFERENCE_EXTRA.get(family, []),
                ],
                env,
                args.timeout,
            )
        ws = work / f"ws-{family}-{size}-{precision}"
        from charforge import api

        api.init(ws, token="sks", class_word="girl")
        api.prepare(ws, [images])
        results["charforge"] = measure(
            [
                "module",
                "charforge",
                "train",
                str(ws),
                "--base",
                str(model),
                "--resolution",
                str(resolution),
                "--train-batch-size",
                "1",
                "--rank",
                "4",
                "--learning-rate",
                "1e-4",
                "--max-train-steps",
                str(args.steps),
                "--checkpointing-steps",
                "100000",
                "--validation-steps",
                "0",
                "--seed",
                "0",
                "--mixed-precision",
                precision,
                "--no-save-kohya",
            ],
            env,
            args.timeout,
        )
        rows.append((f"{family}-{size}", resolution, precision, results))

    label = {"no": "fp32", "bf16": "bf16", "fp16": "fp16"}
    print(f"\n{'model':<10} {'res':>4} {'prec':<5} {'impl':<10} {'s/step':>8} {'peak RSS GiB':>13} {'speed-up':>9}")
    for size, resolution, precision, results in rows:
        ref = results.get("reference")
        for impl, r in results.items():
            ratio = f"{ref['s_per_step'] / r['s_per_step']:.2f}x" if ref and impl == "charforge" else ""
            print(
                f"{size:<10} {resolution:>4} {label[precision]:<5} {impl:<10} {r['s_per_step']:>8.3f} "
                f"{r['peak_rss_gib']:>13.2f} {ratio:>9}"
            )


if __name__ == "__main__":
    main()
