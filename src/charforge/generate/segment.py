"""Masks from words ("clothing", "hair") with transformers' own segmentation models.

Two ways, as the tools users know do it: SAM 3 (``Sam3Model``: the words straight to instance masks, one model), and
the older pair, Grounding DINO's boxes for the words handed to SAM as box prompts (the way the outfit project we learn
from did it, whose mask covered the whole picture by mistake: the union of the masks is checked by the caller's
share warning). Every instance above ``threshold`` is kept and the masks are joined.

transformers' SAM 3 image processor needs torchvision, which charforge does not depend on (PyPI's torchvision does
not load beside the CPU torch build): ``auto`` takes SAM 3 where torchvision imports and Grounding DINO + SAM, whose
processors have Pillow forms, elsewhere.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from ..errors import CharforgeError

MODELS = {
    "auto": (),
    "sam3": ("facebook/sam3",),
    "grounding-dino+sam": ("IDEA-Research/grounding-dino-tiny", "facebook/sam-vit-base"),
}


def mask_from_words(
    image: Image.Image,
    words: str | None,
    *,
    model: str = "auto",
    box_threshold: float = 0.3,
    mask_threshold: float = 0.5,
    sources: tuple[str, ...] | None = None,
) -> Image.Image:
    """White where ``words`` are seen in ``image``. ``sources`` names the models' folders or hub ids
    (default ``MODELS[model]``)."""
    if not words or not words.strip():
        raise CharforgeError("the words for the mask are empty: say what to mask, e.g. 'clothing'")
    if model not in MODELS:
        raise CharforgeError(f"--model {model}: unknown (known: {', '.join(MODELS)})")
    if not 0.0 < mask_threshold < 1.0:
        raise CharforgeError(f"--mask-threshold is a probability between 0 and 1 (got {mask_threshold})")
    if model == "auto":
        model = "sam3" if has_torchvision() else "grounding-dino+sam"
    elif model == "sam3" and not has_torchvision():
        raise CharforgeError(
            "--model sam3: transformers' SAM 3 image processor needs torchvision, which is not installed here; "
            "use --model grounding-dino+sam"
        )
    sources = sources or MODELS[model]
    if len(sources) != len(MODELS[model]):
        raise CharforgeError(f"--model {model} takes {len(MODELS[model])} model folder(s) or hub id(s), got {len(sources)}")
    picture = image.convert("RGB")
    with torch.no_grad():
        if model == "sam3":
            masks = _sam3(picture, words.strip(), sources[0], box_threshold, mask_threshold)
        else:
            masks = _grounded_sam(picture, words.strip(), sources, box_threshold, mask_threshold)
    joined = np.zeros((picture.height, picture.width), dtype=bool)
    for m in masks:
        joined |= m
    return Image.fromarray(joined.astype(np.uint8) * 255, mode="L")


def has_torchvision() -> bool:
    import importlib.util

    return importlib.util.find_spec("torchvision") is not None


def _load(kind, source: str, what: str):
    from ..models.hub import local_files_only
    from ..models.loading import first_line

    local = local_files_only(source, what=what, instead="pass a local folder of the model")
    try:
        return kind.from_pretrained(source, local_files_only=local)
    except (OSError, ValueError) as exc:
        raise CharforgeError(f"{what} {source}: cannot be loaded ({first_line(exc)})") from None


def _sam3(picture: Image.Image, words: str, source: str, threshold: float, mask_threshold: float) -> list[np.ndarray]:
    from transformers import Sam3Model, Sam3Processor

    model, processor = _load(Sam3Model, source, "SAM 3").eval(), _load(Sam3Processor, source, "SAM 3")
    inputs = processor(images=picture, text=words, return_tensors="pt")
    outputs = model(**inputs)
    found = processor.post_process_instance_segmentation(
        outputs, threshold=threshold, mask_threshold=mask_threshold, target_sizes=[picture.size[::-1]]
    )[0]
    return [m.bool().numpy() for m in found["masks"]]


def _grounded_sam(
    picture: Image.Image, words: str, sources: tuple[str, ...], threshold: float, mask_threshold: float
) -> list[np.ndarray]:
    from transformers import GroundingDinoForObjectDetection, GroundingDinoProcessor, SamModel, SamProcessor

    detector_source, sam_source = sources
    detector = _load(GroundingDinoForObjectDetection, detector_source, "Grounding DINO").eval()
    detect = _load(GroundingDinoProcessor, detector_source, "Grounding DINO")
    text = words if words.endswith(".") else words + "."  # Grounding DINO reads phrases ended by full stops
    inputs = detect(images=picture, text=text, return_tensors="pt")
    outputs = detector(**inputs)
    found = detect.post_process_grounded_object_detection(
        outputs, inputs.input_ids, threshold=threshold, text_threshold=threshold, target_sizes=[picture.size[::-1]]
    )[0]
    boxes = found["boxes"].tolist()
    if not boxes:
        return []
    sam, segment = _load(SamModel, sam_source, "SAM").eval(), _load(SamProcessor, sam_source, "SAM")
    prompt = segment(images=picture, input_boxes=[boxes], return_tensors="pt")
    predicted = sam(**{k: v for k, v in prompt.items() if k not in ("original_sizes", "reshaped_input_sizes")},
                    multimask_output=False)  # fmt: skip
    logit = float(np.log(mask_threshold / (1 - mask_threshold)))  # SAM's masks are logits: the same probability
    masks = segment.post_process_masks(
        predicted.pred_masks, prompt["original_sizes"], prompt["reshaped_input_sizes"], mask_threshold=logit
    )[0]
    return [m[0].bool().numpy() for m in masks]
