"""The ``README.md`` model card of a result folder, in the Hugging Face format (YAML front matter + text).

The Hub shows it as the model's page (its ``widget`` entry puts the sample grid there); the text says which file each
program loads and how to call the character, so a folder copied anywhere explains itself.
"""

from __future__ import annotations

from pathlib import Path

from .. import atomic
from ..models.family import ModelFamily
from ..models.files import DIFFUSERS_LORA_FILE, EMBEDDING_SUFFIX, TOKEN_EMBEDDINGS_FILE
from ..models.kohya import TrainingFacts

CARD_FILE = "README.md"
SAMPLES_FILE = "samples.png"
_FAMILY_TAG = {
    ModelFamily.SD1: "stable-diffusion",
    ModelFamily.SD2: "stable-diffusion",
    ModelFamily.SDXL: "stable-diffusion-xl",
    ModelFamily.SD3: "sd3",  # as diffusers' DreamBooth scripts tag their cards
    ModelFamily.FLUX: "flux",
    ModelFamily.FLUX2: "flux2",
    ModelFamily.CHROMA: "chroma",
    ModelFamily.ZIMAGE: "z-image",
    ModelFamily.QWEN: "qwen-image",
}


def _is_hub_id(source: str) -> bool:
    parts = source.split("/")
    return len(parts) == 2 and all(parts) and not Path(source).exists()


def base_license(source: str) -> str | None:
    """The licence in a local base model's own card, if it has one."""
    from huggingface_hub import ModelCard

    card = Path(source) / CARD_FILE
    if not card.is_file():
        return None
    try:
        return ModelCard.load(card).data.license
    except (ValueError, OSError):
        return None


def _files_table(folder: Path, facts: TrainingFacts) -> str:
    rows = {
        DIFFUSERS_LORA_FILE: "LoRA for diffusers (`pipe.load_lora_weights(folder)`) and charforge",
        TOKEN_EMBEDDINGS_FILE: "the identifier's trained embedding rows, which charforge writes back with the LoRA",
        f"{facts.output_name}.safetensors": (
            "kohya LoRA for A1111, Forge, ComfyUI and sd-scripts (A1111 and Forge also read the embedding bundled in it)"
            if (folder / DIFFUSERS_LORA_FILE).is_file()
            else "the whole model as one checkpoint for A1111, Forge and ComfyUI"
        ),
        f"{facts.output_name}{EMBEDDING_SUFFIX}.safetensors": (
            f"the identifier's embedding as a textual inversion, for ComfyUI (`embedding:{facts.output_name}{EMBEDDING_SUFFIX}` "
            "in the prompt) and A1111's embeddings folder"
        ),
        "model_index.json": "the full model as a diffusers folder (`DiffusionPipeline.from_pretrained(folder)`)",
    }
    lines = [f"| `{name}` | {what} |" for name, what in rows.items() if (folder / name).is_file()]
    return "| file | what reads it |\n|---|---|\n" + "\n".join(lines)


def _usage(folder: Path, facts: TrainingFacts, family: ModelFamily, lora: bool) -> str:
    """diffusers code that draws the character from these files."""
    base = facts.base_source if _is_hub_id(facts.base_source) else "path/to/the/base"
    if not lora:
        return 'from diffusers import DiffusionPipeline\npipe = DiffusionPipeline.from_pretrained("path/to/this/folder")'
    lines = [
        "from diffusers import DiffusionPipeline",
        f'pipe = DiffusionPipeline.from_pretrained("{base}")',
        'pipe.load_lora_weights("path/to/this/folder")',
    ]
    embedding = f"path/to/this/folder/{facts.output_name}{EMBEDDING_SUFFIX}.safetensors"
    if not (folder / f"{facts.output_name}{EMBEDDING_SUFFIX}.safetensors").is_file():
        return "\n".join(lines)
    if family is ModelFamily.SDXL:  # one embedding per text encoder
        lines += [
            "from safetensors.torch import load_file",
            f'rows = load_file("{embedding}")',
            f'pipe.load_textual_inversion(rows["clip_l"], token="{facts.token}", text_encoder=pipe.text_encoder, '
            "tokenizer=pipe.tokenizer)",
            f'pipe.load_textual_inversion(rows["clip_g"], token="{facts.token}", text_encoder=pipe.text_encoder_2, '
            "tokenizer=pipe.tokenizer_2)",
        ]
    else:
        lines.append(f'pipe.load_textual_inversion("{embedding}", token="{facts.token}")')
    return "\n".join(lines)


def model_card_text(folder: Path, facts: TrainingFacts, family: ModelFamily, license: str | None) -> str:
    """The card for the result files already written in ``folder`` (``samples.png`` included when present)."""
    from huggingface_hub import ModelCard, ModelCardData

    lora = (folder / DIFFUSERS_LORA_FILE).is_file()
    samples = (folder / SAMPLES_FILE).is_file()
    data = ModelCardData(
        base_model=facts.base_source if _is_hub_id(facts.base_source) else None,
        library_name="diffusers",
        license=license or "other",
        pipeline_tag="text-to-image",
        tags=["text-to-image", "diffusers", _FAMILY_TAG[family], "lora" if lora else "dreambooth", "charforge"]
        + (["template:sd-lora"] if lora else []),
        instance_prompt=facts.trigger_prompt,
        widget=[{"text": facts.trigger_prompt, "output": {"url": SAMPLES_FILE}}] if samples else None,
    )
    usage = _usage(folder, facts, family, lora)
    body = f"""
# {facts.output_name}

**{facts.token}** ({facts.class_word}), taught to `{facts.base_name}` by [charforge](https://pypi.org/project/charforge/)
with {facts.method} from {facts.image_count} pictures in {facts.steps} steps at {facts.resolution} px.

**Trigger word:** `{facts.token}`, e.g. *{facts.trigger_prompt}*.

{"![samples](" + SAMPLES_FILE + ")" if samples else "No sample grid: the run drew no validation pictures (validation_steps 0)."}

## Files

{_files_table(folder, facts)}

## Use it with diffusers

```python
{usage}
image = pipe(prompt="{facts.trigger_prompt}").images[0]
```

With charforge: `charforge generate --base {facts.base_name} --lora path/to/this/folder "{facts.trigger_prompt}"`
(the LoRA and the identifier's embedding together).

## Training

Base `{facts.base_source}`; precision {facts.precision}; the settings are in each file's metadata
(`charforge.config`) and in the run's `config.yaml`.
"""
    return ModelCard(f"---\n{data.to_yaml()}\n---\n{body}").content  # parsed back: a malformed card fails here


def write_model_card(
    folder: Path, facts: TrainingFacts, family: ModelFamily, *, samples: Path | None, license: str | None
) -> Path:
    if samples is not None and samples.is_file():
        atomic.write_bytes(folder / SAMPLES_FILE, samples.read_bytes())
    atomic.write_text(folder / CARD_FILE, model_card_text(folder, facts, family, license))
    return folder / CARD_FILE
