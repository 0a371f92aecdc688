"""Transformer families (SD3/3.5) through the same loop: detected, taught, loaded elsewhere, resumed, drawn; and the
training target of each family checked against the formula of its diffusers training script."""

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
from charforge.models.family import ModelFamily, detect_single_file_family
from charforge.models.loading import load_base_model, native_resolution, size_multiple
from charforge.models.tiny import save_tiny_model
from charforge.train.objective import FlowMatching, NoisePrediction

PROMPT = "a picture of UnicornGirl girl"


@pytest.fixture(scope="session")
def tiny_sd3(tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp("models") / "tiny-sd3", ModelFamily.SD3)


def test_sd3_is_detected_from_its_folder_and_its_single_file_keys(tiny_sd3, tmp_path):
    base = load_base_model(str(tiny_sd3))
    assert base.family is ModelFamily.SD3
    assert (native_resolution(base.pipe), size_multiple(base.pipe)) == (32, 4)  # sample 16 x VAE 2; VAE 2 x patch 2
    assert detect_single_file_family({"model.diffusion_model.joint_blocks.0.x_block.attn.qkv.weight"}) is ModelFamily.SD3

    flux = tmp_path / "flux"
    flux.mkdir()
    (flux / "model_index.json").write_text(json.dumps({"_class_name": "FluxPipeline", "transformer": ["diffusers", "X"]}))
    with pytest.raises(CharforgeError, match=r"FluxPipeline without a UNet; charforge supports SD1.x, SD2.x, SDXL, SD3/3.5"):
        load_base_model(str(flux))
    with pytest.raises(ValueError, match="FLUX-style"):
        detect_single_file_family({"double_blocks.0.img_attn.qkv.weight"})


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
    """The flow-matching error on fixed noise levels and noise: what SD3 training minimises."""
    sigmas = torch.linspace(0.1, 0.9, 8)[:, None, None, None]
    x = latents.repeat(len(sigmas), 1, 1, 1)
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(123))
    with torch.no_grad():
        embeds, _, pooled, _ = pipe.encode_prompt(
            PROMPT, PROMPT, PROMPT, do_classifier_free_guidance=False, max_sequence_length=77
        )
        pred = pipe.transformer(
            hidden_states=(1 - sigmas) * x + sigmas * noise,
            timestep=sigmas.flatten() * 1000,
            encoder_hidden_states=embeds.repeat(len(sigmas), 1, 1),
            pooled_projections=pooled.repeat(len(sigmas), 1),
        ).sample
    return torch.nn.functional.mse_loss(pred, noise - x).item()


def test_sd3_lora_learns_loads_into_a_fresh_pipeline_and_draws(workspace, tiny_sd3):
    result = api.train(
        workspace,
        base=str(tiny_sd3),
        max_train_steps=60,
        learning_rate=5e-3,
        rank=8,
        train_text_encoder=True,
        mixed_precision="no",
        show_progress=False,
        **FAST,
    )
    state = load_file(str(result.final_dir / "pytorch_lora_weights.safetensors"))
    assert {k.split(".")[0] for k in state} == {"transformer", "text_encoder", "text_encoder_2"}  # T5 stays frozen
    assert any(".add_q_proj." in k for k in state)  # the joint attention's text stream carries LoRA too
    losses = [float(line.split(",")[1]) for line in (result.run_dir / "loss.csv").read_text().splitlines()[1:]]
    assert all(math.isfinite(v) for v in losses)

    from diffusers import StableDiffusion3Pipeline
    from PIL import ImageOps

    from charforge.data.images import load_image, to_tensor

    pipe = StableDiffusion3Pipeline.from_pretrained(str(tiny_sd3))
    pipe.set_progress_bar_config(disable=True)
    pixels = to_tensor(ImageOps.fit(load_image(workspace.training_images()[0]), (32, 32)))[None]
    vae = pipe.vae.config
    latents = (pipe.vae.encode(pixels).latent_dist.mean - vae.shift_factor) * vae.scaling_factor
    before = _velocity_error(pipe, latents)
    kw = dict(num_inference_steps=4, height=32, width=32, output_type="np")
    plain = pipe(PROMPT, generator=torch.Generator().manual_seed(0), **kw).images
    pipe.load_lora_weights(str(result.final_dir))
    assert _velocity_error(pipe, latents) < before * 0.9
    assert abs(plain - pipe(PROMPT, generator=torch.Generator().manual_seed(0), **kw).images).mean() > 1e-3

    drawn = api.generate(workspace, ["UnicornGirl girl waving"], steps=3, sampler="euler", show_progress=False)
    params = read_png_params(drawn.images[0])
    assert params.sampler == "Euler" and params.model == "tiny-sd3"


def test_sd3_resume_matches_an_uninterrupted_run(workspace, tiny_sd3):
    same = dict(base=str(tiny_sd3), learning_rate=2e-3, rank=4, mixed_precision="no", show_progress=False, **FAST)
    api.train(workspace, run="full", max_train_steps=6, **same)
    api.train(workspace, run="cut", max_train_steps=3, **same)
    api.resume(workspace, run="cut", max_train_steps=6, show_progress=False)
    a = load_file(str(workspace.runs_dir / "full" / "final" / "pytorch_lora_weights.safetensors"))
    b = load_file(str(workspace.runs_dir / "cut" / "final" / "pytorch_lora_weights.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-6)


def test_sd3_full_dreambooth_saves_a_model_that_loads_as_sd3(workspace, tiny_sd3):
    result = api.train(
        workspace, base=str(tiny_sd3), method="dreambooth", max_train_steps=2, mixed_precision="bf16", show_progress=False, **FAST
    )
    reloaded = load_base_model(str(result.final_dir))
    assert reloaded.family is ModelFamily.SD3
    base = load_base_model(str(tiny_sd3))
    moved = [
        k for k, v in reloaded.pipe.transformer.state_dict().items() if not torch.equal(v, base.pipe.transformer.state_dict()[k])
    ]
    assert moved


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (dict(snr_gamma=5.0), "--snr-gamma .* rectified flow"),
        (dict(train_token_embedding=True), "--train-token-embedding .* T5"),
    ],
)
def test_options_that_do_not_apply_to_flow_matching_are_refused(workspace, tiny_sd3, options, message):
    with pytest.raises(CharforgeError, match=message):
        api.train(workspace, base=str(tiny_sd3), max_train_steps=1, show_progress=False, **FAST, **options)
    assert not list(workspace.runs_dir.glob("*/checkpoints"))


def test_ddpm_only_samplers_and_options_are_refused_for_sd3(workspace, tiny_sd3):
    with pytest.raises(CharforgeError, match="euler-a assumes a DDPM noise schedule"):
        api.generate(workspace, ["x"], base=str(tiny_sd3), use_run=False, steps=2, sampler="euler-a", show_progress=False)
    sd1 = save_tiny_model(workspace.root / "sd1", ModelFamily.SD1)
    with pytest.raises(CharforgeError, match="--timestep-sampling mode is for flow-matching models"):
        api.train(workspace, base=str(sd1), timestep_sampling="mode", show_progress=False, **FAST)
