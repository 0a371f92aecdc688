"""Transformer families (SD3/3.5, FLUX.1, FLUX.2 klein, Chroma, Z-Image, Qwen-Image) through the same loop: detected,
taught, loaded elsewhere, resumed, drawn; and the training target of each family checked against the formula of its
diffusers training script."""

from __future__ import annotations

import json
import math

import pytest
import torch
from conftest import FAST
from safetensors.torch import load_file

from charforge import api
from charforge.errors import CharforgeError
from charforge.generate.metadata import read_png_params
from charforge.models import latents as vae_latents
from charforge.models.family import ModelFamily, detect_single_file_family
from charforge.models.loading import load_base_model, native_resolution, size_multiple
from charforge.models.tiny import save_tiny_model
from charforge.train.objective import FlowMatching, NoisePrediction

PROMPT = "a picture of UnicornGirl girl"


@pytest.fixture(scope="session")
def tiny_sd3(tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp("models") / "tiny-sd3", ModelFamily.SD3)


@pytest.fixture(scope="session")
def tiny_flux(tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp("models") / "tiny-flux", ModelFamily.FLUX)


@pytest.fixture(scope="session")
def tiny_flux2(tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp("models") / "tiny-flux2-klein", ModelFamily.FLUX2)


@pytest.fixture(scope="session")
def tiny_chroma(tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp("models") / "tiny-chroma", ModelFamily.CHROMA)


@pytest.fixture(scope="session")
def tiny_zimage(tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp("models") / "tiny-zimage", ModelFamily.ZIMAGE)


@pytest.fixture(scope="session")
def tiny_qwenimage(tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp("models") / "tiny-qwen-image", ModelFamily.QWEN)


TRANSFORMER_FAMILIES = [
    ModelFamily.SD3,
    ModelFamily.FLUX,
    ModelFamily.FLUX2,
    ModelFamily.CHROMA,
    ModelFamily.ZIMAGE,
    ModelFamily.QWEN,
]


@pytest.fixture(params=TRANSFORMER_FAMILIES, ids=[f.value for f in TRANSFORMER_FAMILIES])
def tiny_transformer(request):
    """Each transformer family's tiny model, in turn."""
    return request.getfixturevalue(f"tiny_{request.param.value}")


def _png_pixels(path) -> bytes:
    from PIL import Image

    return Image.open(path).tobytes()


def _our_prompts(model, family: ModelFamily):
    """The model's pipeline, its family adapter, and the adapter's encoding of two prompts of different lengths."""
    from charforge.models.adapters import adapter_for

    pipe = load_base_model(str(model)).pipe
    adapter = adapter_for(family, pipe)
    with torch.no_grad():
        return pipe, adapter, adapter.encode(adapter.tokenize([PROMPT, "a"]))


def _alone(model) -> api.ModelChoice:
    """Draw with the model alone, not the workspace's run."""
    return api.ModelChoice(str(model), use_run=False)


def test_transformer_families_are_detected_from_folders_and_single_file_keys(
    tiny_sd3, tiny_flux, tiny_flux2, tiny_chroma, tiny_qwenimage, tmp_path
):
    base = load_base_model(str(tiny_sd3))
    assert base.family is ModelFamily.SD3
    assert (native_resolution(base.pipe), size_multiple(base.pipe)) == (32, 4)  # sample 16 x VAE 2; VAE 2 x patch 2
    flux = load_base_model(str(tiny_flux))
    assert flux.family is ModelFamily.FLUX
    assert (native_resolution(flux.pipe), size_multiple(flux.pipe)) == (256, 4)  # the pipeline's 128 x VAE 2; 2x2 packing
    assert detect_single_file_family({"model.diffusion_model.joint_blocks.0.x_block.attn.qkv.weight"}) is ModelFamily.SD3
    assert detect_single_file_family({"double_blocks.0.img_attn.qkv.weight"}) is ModelFamily.FLUX
    chroma = load_base_model(str(tiny_chroma))
    assert chroma.family is ModelFamily.CHROMA and size_multiple(chroma.pipe) == 4
    chroma_keys = {"double_blocks.0.img_attn.qkv.weight", "distilled_guidance_layer.in_proj.weight"}
    assert detect_single_file_family(chroma_keys) is ModelFamily.CHROMA
    assert detect_single_file_family({"layers.0.adaLN_modulation.0.weight"}) is ModelFamily.ZIMAGE
    qwen = load_base_model(str(tiny_qwenimage))
    assert qwen.family is ModelFamily.QWEN and size_multiple(qwen.pipe) == 16  # its video VAE's 8x, 2x2 packing
    with pytest.raises(ValueError, match="a Qwen-Image transformer alone; give the diffusers folder"):
        detect_single_file_family({"transformer_blocks.0.img_mod.1.weight"})
    klein = load_base_model(str(tiny_flux2))
    assert klein.family is ModelFamily.FLUX2 and size_multiple(klein.pipe) == 4  # VAE 2 x its 2x2 patches
    assert vae_latents.cell_size(klein.pipe) == 4  # the denoiser's grid is the patches', not the VAE's
    flux2_file = {"double_blocks.0.img_attn.qkv.weight", "single_stream_modulation.lin.weight"}  # as BFL ships it
    with pytest.raises(ValueError, match="a FLUX.2 transformer alone; give the diffusers folder"):
        detect_single_file_family(flux2_file)

    other = tmp_path / "flux2"
    other.mkdir()
    (other / "model_index.json").write_text(json.dumps({"_class_name": "Flux2Pipeline", "transformer": ["diffusers", "X"]}))
    with pytest.raises(
        CharforgeError,
        match=r"Flux2Pipeline without a UNet; charforge supports SD1.x, SD2.x, SDXL, SD3/3.5, FLUX.1, FLUX.2 klein, Chroma",
    ):
        load_base_model(str(other))


def test_flow_matching_target_is_the_sd3_scripts_formula(tiny_sd3):
    """diffusers' SD3/FLUX scripts: u ~ logit-normal, timestep = scheduler.timesteps[u * 1000], sigma looked up by that
    timestep, x_t = (1 - sigma) x + sigma n, target n - x. Recomputed here from the scheduler, by timestep lookup."""
    from diffusers import FlowMatchEulerDiscreteScheduler
    from diffusers.training_utils import compute_density_for_timestep_sampling

    config = FlowMatchEulerDiscreteScheduler.from_pretrained(tiny_sd3 / "scheduler").config
    assert config.shift == 3.0
    x, n = torch.randn(5, 4, 8, 8, generator=torch.Generator().manual_seed(1)), torch.randn(5, 4, 8, 8)
    batch = FlowMatching(config).noised(x, n, torch.Generator().manual_seed(7))

    u = compute_density_for_timestep_sampling("logit_normal", 5, 0.0, 1.0, generator=torch.Generator().manual_seed(7))
    reference = FlowMatchEulerDiscreteScheduler.from_config(config)
    timesteps = reference.timesteps[(u * 1000).long()]
    sigmas = torch.stack([reference.sigmas[(reference.timesteps == t).nonzero().item()] for t in timesteps])
    assert torch.equal(batch.timesteps, timesteps)
    torch.testing.assert_close(batch.noisy, (1 - sigmas[:, None, None, None]) * x + sigmas[:, None, None, None] * n)
    torch.testing.assert_close(batch.target, n - x)
    # the shift moves noise levels up: sigma = 3s / (1 + 2s) for the unshifted s = t / 1000
    s = timesteps / 1000 / (3 - 2 * timesteps / 1000)
    torch.testing.assert_close(sigmas, 3 * s / (1 + 2 * s), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("prediction", ["epsilon", "v_prediction"])
def test_noise_prediction_target_is_the_ddpm_formula(prediction):
    from diffusers import DDPMScheduler

    config = DDPMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, prediction_type=prediction).config
    x, n = torch.randn(3, 4, 8, 8), torch.randn(3, 4, 8, 8)
    batch = NoisePrediction(config).noised(x, n, torch.Generator().manual_seed(3))
    abar = DDPMScheduler.from_config(config).alphas_cumprod[batch.timesteps][:, None, None, None]
    torch.testing.assert_close(batch.noisy, abar.sqrt() * x + (1 - abar).sqrt() * n)
    torch.testing.assert_close(batch.target, abar.sqrt() * n - (1 - abar).sqrt() * x if prediction == "v_prediction" else n)


def _velocity_error(pipe, latents: torch.Tensor) -> float:
    """The flow-matching error on fixed noise levels and noise, through each pipeline's own prompt encoding and
    (FLUX) latent packing: what training minimises."""
    sigmas = torch.linspace(0.1, 0.9, 8)[:, None, None, None]
    x = latents.repeat(len(sigmas), 1, 1, 1)
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(123))
    noisy, n = (1 - sigmas) * x + sigmas * noise, len(sigmas)
    with torch.no_grad():
        if type(pipe).__name__ == "Flux2KleinPipeline":  # three Qwen3 layers side by side; patches as a sequence, 4-D ids
            embeds, text_ids = pipe.encode_prompt(PROMPT)
            ids = pipe._prepare_latent_ids(noisy)
            pred = pipe.transformer(
                hidden_states=pipe._pack_latents(noisy),
                timestep=sigmas.flatten(),
                encoder_hidden_states=embeds.repeat(n, 1, 1),
                txt_ids=text_ids.repeat(n, 1, 1),
                img_ids=ids,
            ).sample
            pred = pipe._unpack_latents_with_ids(pred, ids)
        elif type(pipe).__name__ == "QwenImagePipeline":  # masked template states, packed latents, one frame
            embeds, mask = pipe.encode_prompt(PROMPT)
            b, c, h, w = noisy.shape
            pred = pipe.transformer(
                hidden_states=pipe._pack_latents(noisy, b, c, h, w),
                timestep=sigmas.flatten(),
                encoder_hidden_states=embeds.repeat(n, 1, 1),
                encoder_hidden_states_mask=None if mask is None else mask.repeat(n, 1),  # None: no padding
                img_shapes=[(1, h // 2, w // 2)] * n,
            ).sample
            pred = pipe._unpack_latents(pred, h * pipe.vae_scale_factor, w * pipe.vae_scale_factor, pipe.vae_scale_factor)[
                :, :, 0
            ]
        elif type(pipe).__name__ == "ZImagePipeline":  # frames as a list, the noise level reversed, velocity negated
            embeds = pipe.encode_prompt(PROMPT, do_classifier_free_guidance=False)[0]
            out = pipe.transformer(list(noisy.unsqueeze(2).unbind(0)), 1 - sigmas.flatten(), embeds * n).sample
            pred = -torch.stack(out).squeeze(2)
        elif hasattr(pipe, "_prepare_attention_mask"):  # Chroma: T5 alone, masked
            embeds, text_ids, mask, *_ = pipe.encode_prompt(PROMPT, do_classifier_free_guidance=False)
            b, c, h, w = noisy.shape
            pred = pipe.transformer(
                hidden_states=pipe._pack_latents(noisy, b, c, h, w),
                timestep=sigmas.flatten(),
                encoder_hidden_states=embeds.repeat(n, 1, 1),
                txt_ids=text_ids,
                img_ids=pipe._prepare_latent_image_ids(b, h // 2, w // 2, "cpu", torch.float32),
                attention_mask=pipe._prepare_attention_mask(n, (h // 2) * (w // 2), torch.float32, mask.repeat(n, 1)),
            ).sample
            pred = pipe._unpack_latents(pred, h * pipe.vae_scale_factor, w * pipe.vae_scale_factor, pipe.vae_scale_factor)
        elif hasattr(pipe, "_pack_latents"):  # FLUX
            embeds, pooled, text_ids = pipe.encode_prompt(PROMPT, PROMPT, max_sequence_length=512)
            b, c, h, w = noisy.shape
            pred = pipe.transformer(
                hidden_states=pipe._pack_latents(noisy, b, c, h, w),
                timestep=sigmas.flatten(),
                guidance=torch.full((n,), 3.5),
                pooled_projections=pooled.repeat(n, 1),
                encoder_hidden_states=embeds.repeat(n, 1, 1),
                txt_ids=text_ids,
                img_ids=pipe._prepare_latent_image_ids(b, h // 2, w // 2, "cpu", torch.float32),
            ).sample
            pred = pipe._unpack_latents(pred, h * pipe.vae_scale_factor, w * pipe.vae_scale_factor, pipe.vae_scale_factor)
        else:
            embeds, _, pooled, _ = pipe.encode_prompt(
                PROMPT, PROMPT, PROMPT, do_classifier_free_guidance=False, max_sequence_length=77
            )
            pred = pipe.transformer(
                hidden_states=noisy,
                timestep=sigmas.flatten() * 1000,
                encoder_hidden_states=embeds.repeat(n, 1, 1),
                pooled_projections=pooled.repeat(n, 1),
            ).sample
    return torch.nn.functional.mse_loss(pred, noise - x).item()


def test_lora_learns_loads_into_a_fresh_pipeline_and_draws(workspace, tiny_transformer):
    family = load_base_model(str(tiny_transformer)).family
    result = api.train(
        workspace,
        base=str(tiny_transformer),
        max_train_steps=60,
        learning_rate=5e-3,
        rank=8,
        train_text_encoder=family.has_clip,  # Chroma reads T5 alone, Z-Image a language model: both stay frozen
        mixed_precision="no",
        show_progress=False,
        **FAST,
    )
    state = load_file(str(result.final_dir / "pytorch_lora_weights.safetensors"))
    clips = {ModelFamily.SD3: {"text_encoder", "text_encoder_2"}, ModelFamily.FLUX: {"text_encoder"}}.get(family, set())
    joint = family is not ModelFamily.ZIMAGE  # Z-Image's blocks are single-stream: one attention for text and image
    assert {k.split(".")[0] for k in state} == {"transformer", *clips}  # T5 stays frozen
    assert any(".add_q_proj." in k for k in state) == joint  # the joint attention's text stream carries LoRA too
    losses = [float(line.split(",")[1]) for line in (result.run_dir / "loss.csv").read_text().splitlines()[1:]]
    assert all(math.isfinite(v) for v in losses)

    from PIL import ImageOps

    from charforge.data.images import load_image, to_tensor
    from charforge.models.loading import pipeline_class

    pipe = pipeline_class(family).from_pretrained(str(tiny_transformer))
    pipe.set_progress_bar_config(disable=True)
    pixels = to_tensor(ImageOps.fit(load_image(workspace.training_images()[0]), (32, 32)))[None]
    shift, scaling = vae_latents.normalisation(pipe.vae)  # Qwen-Image: per channel, through its video VAE
    latents = (vae_latents.encode(pipe.vae, pixels)[0] - shift) * scaling
    before = _velocity_error(pipe, latents)
    kw = dict(num_inference_steps=4, height=32, width=32, output_type="np")
    plain = pipe(prompt=PROMPT, generator=torch.Generator().manual_seed(0), **kw).images  # FLUX.2's first is a picture
    pipe.load_lora_weights(str(result.final_dir))
    assert _velocity_error(pipe, latents) < before * 0.9
    assert abs(plain - pipe(prompt=PROMPT, generator=torch.Generator().manual_seed(0), **kw).images).mean() > 1e-3

    drawn = api.generate(
        workspace, ["UnicornGirl girl waving"], steps=3, sampler="euler", width=32, height=32, show_progress=False
    )
    params = read_png_params(drawn.images[0])
    assert params.sampler == "Euler" and params.model == tiny_transformer.name


def test_resume_matches_an_uninterrupted_run(workspace, tiny_transformer):
    same = dict(base=str(tiny_transformer), learning_rate=2e-3, rank=4, mixed_precision="no", show_progress=False, **FAST)
    api.train(workspace, run="full", max_train_steps=6, **same)
    api.train(workspace, run="cut", max_train_steps=3, **same)
    api.resume(workspace, run="cut", max_train_steps=6, show_progress=False)
    a = load_file(str(workspace.runs_dir / "full" / "final" / "pytorch_lora_weights.safetensors"))
    b = load_file(str(workspace.runs_dir / "cut" / "final" / "pytorch_lora_weights.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-6)


def test_full_dreambooth_saves_a_model_of_the_same_family(workspace, tiny_transformer):
    result = api.train(
        workspace,
        base=str(tiny_transformer),
        method="dreambooth",
        max_train_steps=2,
        mixed_precision="bf16",
        show_progress=False,
        **FAST,
    )
    reloaded = load_base_model(str(result.final_dir))
    base = load_base_model(str(tiny_transformer))
    assert reloaded.family is base.family
    moved = [
        k for k, v in reloaded.pipe.transformer.state_dict().items() if not torch.equal(v, base.pipe.transformer.state_dict()[k])
    ]
    assert moved


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (dict(snr_gamma=5.0), "--snr-gamma .* rectified flow"),
        (
            dict(train_token_embedding=True),
            "--train-token-embedding .* (T5|a Qwen3 language model|a Qwen2.5-VL language model), whose",
        ),
    ],
)
def test_options_that_do_not_apply_to_flow_matching_are_refused(workspace, tiny_transformer, options, message):
    with pytest.raises(CharforgeError, match=message):
        api.train(workspace, base=str(tiny_transformer), max_train_steps=1, show_progress=False, **FAST, **options)
    assert not list(workspace.runs_dir.glob("*/checkpoints"))


def test_ddpm_only_samplers_and_options_are_refused_for_flow_models(workspace, tiny_sd3, tiny_flux):
    with pytest.raises(CharforgeError, match="euler-a assumes a DDPM noise schedule"):
        api.generate(workspace, ["x"], model=_alone(tiny_sd3), steps=2, sampler="euler-a", show_progress=False)
    # FLUX shifts its noise levels by the picture's size, which only the flow Euler sampler takes
    with pytest.raises(CharforgeError, match="dpm\\+\\+2m assumes a fixed shift; .* draws with: euler$"):
        api.generate(workspace, ["x"], model=_alone(tiny_flux), steps=2, sampler="dpm++2m", show_progress=False)
    sd1 = save_tiny_model(workspace.root / "sd1", ModelFamily.SD1)
    with pytest.raises(CharforgeError, match="--timestep-sampling mode is for flow-matching models"):
        api.train(workspace, base=str(sd1), timestep_sampling="mode", show_progress=False, **FAST)


def test_edits_draw_with_a_flow_sampler_and_poses_are_refused(workspace, tiny_transformer, tmp_path):
    import numpy as np
    from PIL import Image

    from charforge.generate.conditions import Pose

    picture = Image.open(workspace.training_images()[0]).convert("RGB").resize((32, 32))
    picture.save(tmp_path / "in.png")
    mask = Image.new("L", (32, 32), 0)
    mask.paste(255, (8, 8, 24, 24))
    mask.save(tmp_path / "mask.png")
    result = api.edit(
        workspace, tmp_path / "in.png", "UnicornGirl girl in red", mask=tmp_path / "mask.png", model=_alone(tiny_transformer),
        steps=4, strength=0.6, show_progress=False,
    )  # fmt: skip
    params = read_png_params(result.images[0])
    assert params.sampler == "Euler"  # the multistep solvers cannot start part-way on a flow model
    drawn = np.asarray(Image.open(result.images[0]).convert("RGB"), dtype=float)
    outside = np.asarray(mask) == 0
    assert np.abs(drawn[outside] - np.asarray(picture, dtype=float)[outside]).mean() < 1.0  # only the mask was redrawn
    with pytest.raises(CharforgeError, match="--sampler unipc cannot start from a picture"):
        api.edit(workspace, tmp_path / "in.png", "x", model=_alone(tiny_transformer), steps=4, strength=0.6,
                 sampler="unipc", show_progress=False)  # fmt: skip
    pose = Pose(controlnet="", image=Image.new("RGB", (32, 32)))
    with pytest.raises(CharforgeError, match="--pose and --image-prompt use UNet ControlNets"):
        api.generate(workspace, ["x"], model=_alone(tiny_transformer), steps=2, conditions=api.Conditions(pose=pose))


def test_flux_draws_with_its_own_default_sampler(workspace, tiny_flux):
    drawn = api.generate(workspace, ["x"], model=_alone(tiny_flux), steps=2, width=32, height=32, show_progress=False)
    assert read_png_params(drawn.images[0]).sampler == "Euler"


def test_each_family_draws_at_its_recommended_guidance(
    tiny_sd3, tiny_flux, tiny_flux2, tiny_chroma, tiny_zimage, tiny_qwenimage, tiny_sd1, tmp_path
):
    import shutil

    from charforge.models.loading import recommended_guidance

    models = (tiny_sd3, tiny_flux, tiny_flux2, tiny_chroma, tiny_zimage, tiny_qwenimage, tiny_sd1)
    assert [recommended_guidance(str(m)) for m in models] == [7.0, 3.5, 4.0, 5.0, 5.0, 4.0, 7.5]
    distilled = shutil.copytree(tiny_flux2, tmp_path / "klein-4b")  # klein 4B / 9B are step-distilled: no guidance
    index = json.loads((distilled / "model_index.json").read_text())
    (distilled / "model_index.json").write_text(json.dumps({**index, "is_distilled": True}))
    assert recommended_guidance(str(distilled)) == 1.0


def test_flux2_klein_trains_on_what_its_script_computes(workspace, tiny_flux2):
    """diffusers' FLUX.2 klein script: the prompt's Qwen3 states after layers 9, 18 and 27 side by side
    (``encode_prompt``); latents = the VAE's 2x2 patches minus its batch norm's running mean, over its running std;
    the transformer reads them packed with 4-D ids at t / 1000 and its output is scattered back by those ids. The
    adapter and the latent normalisation must give the same numbers; drawing refuses what klein cannot do."""
    pipe, adapter, ours = _our_prompts(tiny_flux2, ModelFamily.FLUX2)
    with torch.no_grad():
        theirs, text_ids = pipe.encode_prompt([PROMPT, "a"])
        torch.testing.assert_close(ours.hidden, theirs)

        pixels = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
        mode = pipe.vae.encode(pixels).latent_dist.mode()
        bn_mean = pipe.vae.bn.running_mean.view(1, -1, 1, 1)
        bn_std = torch.sqrt(pipe.vae.bn.running_var.view(1, -1, 1, 1) + pipe.vae.config.batch_norm_eps)
        script = (pipe._patchify_latents(mode) - bn_mean) / bn_std
        shift, scaling = vae_latents.normalisation(pipe.vae)
        torch.testing.assert_close((vae_latents.encode(pipe.vae, pixels)[0] - shift) * scaling, script)

        noise = torch.randn(script.shape, generator=torch.Generator().manual_seed(1))
        timesteps = torch.tensor([250.0, 750.0])
        sigmas = (timesteps / 1000).view(-1, 1, 1, 1)
        noisy = (1 - sigmas) * script + sigmas * noise
        ids = pipe._prepare_latent_ids(noisy)
        packed = pipe._pack_latents(noisy)
        reference = pipe.transformer(
            hidden_states=packed, timestep=timesteps / 1000, guidance=None, encoder_hidden_states=theirs,
            txt_ids=text_ids, img_ids=ids, return_dict=False,
        )[0]  # fmt: skip
        reference = pipe._unpack_latents_with_ids(reference[:, : packed.size(1)], ids)
        torch.testing.assert_close(adapter.predict(pipe.transformer, noisy, timesteps, ours, (32, 32)), reference)

    with pytest.raises(CharforgeError, match="no image-to-image pipeline in diffusers: give a mask"):
        api.edit(workspace, workspace.training_images()[0], "x", model=_alone(tiny_flux2), steps=4, strength=0.5)
    negative = api.generate(
        workspace, ["x"], model=_alone(tiny_flux2), steps=2, width=32, height=32, negative_prompt="blurry", seed=3
    )
    plain = api.generate(workspace, ["x"], model=_alone(tiny_flux2), steps=2, width=32, height=32, seed=3)
    params = read_png_params(negative.images[0])
    assert params.sampler == "Euler" and params.negative_prompt == "blurry" and params.cfg_scale == 4.0
    assert _png_pixels(negative.images[0]) != _png_pixels(plain.images[0])  # the negative prompt acts


def test_zimage_reads_its_prompt_as_its_pipeline_and_draws_with_euler(workspace, tiny_zimage):
    """The chat-wrapped prompt's penultimate Qwen3 states without the padding, as ``ZImagePipeline.encode_prompt``;
    the pipeline sets its own sigmas, which only flow Euler takes."""
    pipe, _, ours = _our_prompts(tiny_zimage, ModelFamily.ZIMAGE)
    with torch.no_grad():
        theirs = pipe.encode_prompt([PROMPT, "a"], do_classifier_free_guidance=False)[0]
    for hidden, mask, reference in zip(ours.hidden, ours.mask, theirs, strict=True):
        torch.testing.assert_close(hidden[mask.bool()], reference)
    with pytest.raises(CharforgeError, match="this flow-matching model draws with: euler"):
        api.generate(workspace, ["x"], model=_alone(tiny_zimage), steps=2, sampler="dpm++2m", show_progress=False)
    drawn = api.generate(workspace, ["x"], model=_alone(tiny_zimage), steps=2, width=32, height=32, show_progress=False)
    assert read_png_params(drawn.images[0]).sampler == "Euler"


def test_qwen_image_reads_its_prompt_as_its_pipeline(tiny_qwenimage):
    """The template's states with its system turn dropped and the padding masked, as ``QwenImagePipeline.encode_prompt``
    (a batch of two prompts of different lengths), and the latents normalised per channel by the video VAE's stats."""
    pipe, _, ours = _our_prompts(tiny_qwenimage, ModelFamily.QWEN)
    with torch.no_grad():
        embeds, mask = pipe.encode_prompt([PROMPT, "a"])
    torch.testing.assert_close(ours.hidden, embeds)
    torch.testing.assert_close(ours.mask, mask.to(ours.mask.dtype))
    assert 0 < ours.mask[1].sum() < ours.mask[0].sum() == ours.mask.shape[1]
    # its guidance is true CFG, which acts only with a negative prompt (class images get it too, at its default 4.0)
    from charforge.generate.text2image import guidance_arguments, own_guidance

    assert own_guidance(pipe) == 4.0
    assert guidance_arguments(pipe, 4.0, "", 2) == {"true_cfg_scale": 4.0, "negative_prompt": [" ", " "]}
    assert guidance_arguments(pipe, 1.0, "", 1) == {"true_cfg_scale": 1.0, "negative_prompt": None}
    shift, scaling = vae_latents.normalisation(pipe.vae)
    assert shift.shape == scaling.shape == (16, 1, 1)
    torch.testing.assert_close(scaling.flatten(), 1 / torch.tensor(pipe.vae.config.latents_std))


def test_chroma_refuses_text_encoder_training_and_masks_the_padding_as_its_pipeline(workspace, tiny_chroma):
    from charforge.models.adapters import adapter_for

    with pytest.raises(CharforgeError, match="--train-text-encoder .* Chroma reads the prompt through T5 only"):
        api.train(workspace, base=str(tiny_chroma), max_train_steps=1, train_text_encoder=True, show_progress=False, **FAST)
    pipe = load_base_model(str(tiny_chroma)).pipe
    adapter = adapter_for(ModelFamily.CHROMA, pipe)
    with torch.no_grad():
        ours = adapter.encode(adapter.tokenize([PROMPT, "a"]))
        embeds, _, mask, *_ = pipe.encode_prompt([PROMPT, "a"], do_classifier_free_guidance=False)
    torch.testing.assert_close(ours.hidden, embeds)
    torch.testing.assert_close(ours.mask, mask)  # the text's tokens, </s> and the first padding token
    assert 0 < ours.mask[1].sum() < ours.mask[0].sum() < mask.shape[1]


def test_flux_trains_on_unshifted_noise_levels_as_its_script(tiny_flux):
    """FLUX shifts by the picture's size at inference only (dynamic shifting): diffusers' FLUX script draws sigma =
    t / 1000 from the unshifted table, and so do we."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    config = FlowMatchEulerDiscreteScheduler.from_pretrained(tiny_flux / "scheduler").config
    x, n = torch.randn(6, 4, 8, 8), torch.randn(6, 4, 8, 8)
    batch = FlowMatching(config).noised(x, n, torch.Generator().manual_seed(5))
    sigmas = (batch.timesteps / 1000)[:, None, None, None]
    torch.testing.assert_close(batch.noisy, (1 - sigmas) * x + sigmas * n)
    torch.testing.assert_close(batch.target, n - x)


def test_evaluate_draws_a_flux_run_with_the_models_default_sampler(workspace, tiny_flux, tmp_path):
    from conftest import PROMPTS

    api.train(workspace, base=str(tiny_flux), max_train_steps=2, rank=4, show_progress=False, **FAST)
    prompts = tmp_path / "prompts.yaml"
    prompts.write_text(PROMPTS)
    result = api.evaluate(workspace, prompts=prompts, clip="none", dino="none", steps=2, show_progress=False)
    first = result.folder / result.metrics.images[0]["file"]
    assert read_png_params(first).sampler == "Euler"
