"""The video adapter against diffusers' video UNets and pipelines, on tiny random models built offline.

Oracles: the network called directly in its own layout (B, C, F, H, W), diffusers'
TextToVideoSDPipeline and AnimateDiffPipeline sampling from the same noise, and the VAE run
frame by frame.
"""

from __future__ import annotations

import json

import pytest
import torch

pytest.importorskip("diffusers")
pytest.importorskip("transformers")

import diffcore  # noqa: E402
from diffcore import Cond  # noqa: E402
from diffcore.adapters.stable_diffusion import VAELatent  # noqa: E402
from diffcore.adapters.video import VideoDiffusionPrior, VideoLatent, is_video_prior, to_channels_first, to_frames_first  # noqa: E402
from diffcore.errors import CheckpointError, DiffcoreError, ShapeError  # noqa: E402
from diffcore.priors import Conditioned, Guided  # noqa: E402
from diffcore.samplers import ddim  # noqa: E402
from diffcore.testing import check_prior, save_tiny_stable_diffusion  # noqa: E402

FRAMES = 3
MAX_FRAMES = 6  # the tiny motion model's positional embeddings


def _unet3d(seed=0):
    from diffusers import UNet3DConditionModel

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return UNet3DConditionModel(
            sample_size=8,
            in_channels=4,
            out_channels=4,
            down_block_types=("CrossAttnDownBlock3D", "DownBlock3D"),
            up_block_types=("UpBlock3D", "CrossAttnUpBlock3D"),
            block_out_channels=(16, 32),
            layers_per_block=1,
            norm_num_groups=8,
            cross_attention_dim=16,
            attention_head_dim=4,
        )


def _motion_adapter(seed=0):
    from diffusers import MotionAdapter

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        adapter = MotionAdapter(
            block_out_channels=(16, 32),
            motion_layers_per_block=1,
            motion_num_attention_heads=2,
            motion_norm_num_groups=8,
            motion_max_seq_length=MAX_FRAMES,
        )
        for p in adapter.parameters():  # diffusers zero-initialises the motion modules' output; give them a say
            p.data.add_(0.02 * torch.randn(p.shape))
    return adapter


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """A tiny TextToVideoSDPipeline folder (UNet3D) and a tiny AnimateDiffPipeline folder (UNetMotionModel), sharing SD's parts."""
    from diffusers import AnimateDiffPipeline, AutoencoderKL, DDIMScheduler, TextToVideoSDPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    root = tmp_path_factory.mktemp("tiny-video")
    sd = save_tiny_stable_diffusion(root / "sd")
    vae = AutoencoderKL.from_pretrained(sd, subfolder="vae")
    text_encoder = CLIPTextModel.from_pretrained(sd, subfolder="text_encoder")
    tokenizer = CLIPTokenizer.from_pretrained(sd, subfolder="tokenizer")
    scheduler = DDIMScheduler.from_pretrained(sd, subfolder="scheduler")
    parts = dict(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, scheduler=scheduler)
    TextToVideoSDPipeline(unet=_unet3d(), **parts).save_pretrained(root / "t2v", safe_serialization=True)
    image_unet = UNet2DConditionModel.from_pretrained(sd, subfolder="unet")
    AnimateDiffPipeline(unet=image_unet, motion_adapter=_motion_adapter(), **parts).save_pretrained(
        root / "animatediff", safe_serialization=True
    )
    return {"sd": sd, "t2v": root / "t2v", "animatediff": root / "animatediff"}


@pytest.fixture(scope="module", params=["t2v", "animatediff"])
def kind(request):
    return request.param


def _prior(folders, kind, **options):
    return diffcore.create("prior", "diffusers-video", path=folders[kind], num_frames=FRAMES, **options)


def test_registered_and_a_video_prior(folders, kind):
    prior = _prior(folders, kind)
    assert isinstance(prior, VideoDiffusionPrior)
    assert type(prior.network).__name__ == {"t2v": "UNet3DConditionModel", "animatediff": "UNetMotionModel"}[kind]
    assert prior.sample_shape == (FRAMES, 4, 8, 8) and prior.image_shape == (FRAMES, 3, 16, 16)
    assert prior.num_frames == FRAMES and is_video_prior(prior)
    assert not is_video_prior(diffcore.create("prior", "sd", path=folders["sd"]))
    assert prior.max_frames == (MAX_FRAMES if kind == "animatediff" else None)


def test_predict_is_the_network_in_its_own_layout(folders, kind):
    """eps is the network's output on (B, C, F, H, W) moved back to (N, F, C, H, W); x0 follows from the schedule."""
    prior = _prior(folders, kind)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, FRAMES, 4, 8, 8, generator=g)
    emb = prior.encode_text(["a cat", "a dog"])
    t = torch.tensor([0.7, 0.2], dtype=torch.float64)
    pred = prior.predict(x, t, Cond(text=emb))
    step = prior.schedule.model_time(t).round().long()
    text = emb.repeat_interleave(FRAMES, 0) if kind == "animatediff" else emb  # AnimateDiff's pipeline repeats the text per frame
    with torch.no_grad():
        direct = prior.network(to_channels_first(x), step, encoder_hidden_states=text).sample
    assert torch.equal(pred.eps, to_frames_first(direct))
    a = prior.schedule.alpha(t).float().reshape(2, 1, 1, 1, 1)
    s = prior.schedule.sigma(t).float().reshape(2, 1, 1, 1, 1)
    assert torch.allclose(pred.x0, (x - s * pred.eps) / a, atol=1e-6)
    # frames are not independent: changing one frame changes the others' predictions
    moved = x.clone()
    moved[:, 0] += 1.0
    other = prior.predict(moved, t, Cond(text=emb)).eps
    assert float((other[:, 1:] - pred.eps[:, 1:]).abs().max()) > 1e-4


def test_contract(folders, kind):
    check_prior(_prior(folders, kind))


def test_time_per_frame_is_refused(folders, kind):
    prior = _prior(folders, kind)
    x = torch.zeros(2, FRAMES, 4, 8, 8)
    with pytest.raises(DiffcoreError, match=r"one time per video .* cannot take one per frame \(2, 3\)"):
        prior.predict(x, torch.full((2, FRAMES), 0.5))
    with pytest.raises(DiffcoreError, match="expected a scalar, \\(2,\\) or \\(2, 3\\)"):
        prior.predict(x, torch.full((2, FRAMES + 1), 0.5))


def test_frame_counts(folders, kind):
    prior = _prior(folders, kind)
    longer = prior.with_frames(5)
    assert longer.sample_shape == (5, 4, 8, 8) and prior.sample_shape == (FRAMES, 4, 8, 8) and longer.network is prior.network
    x = torch.randn(1, 5, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    assert longer.predict(x, 0.5).eps.shape == x.shape
    if kind == "animatediff":  # positional embeddings for MAX_FRAMES frames only
        with pytest.raises(ShapeError, match=f"takes at most {MAX_FRAMES} frames, got {MAX_FRAMES + 1}"):
            prior.with_frames(MAX_FRAMES + 1)
        with pytest.raises(ShapeError, match=f"at most {MAX_FRAMES} frames"):
            prior.predict(torch.zeros(1, MAX_FRAMES + 1, 4, 8, 8), 0.5)
    else:
        assert prior.with_frames(MAX_FRAMES + 1).num_frames == MAX_FRAMES + 1
    with pytest.raises(ShapeError, match="expected videos \\(N, F, 4, H, W\\)"):
        prior.predict(torch.zeros(2, 4, 8, 8), 0.5)
    with pytest.raises(ShapeError, match="positive whole number of frames"):
        prior.with_frames(0)


def test_latent_codes_frames_in_chunks(folders):
    """Chunked coding equals the VAE on every frame alone, whatever the chunk size."""
    prior = _prior(folders, "t2v")
    frames_vae = VAELatent(prior.vae)
    videos = torch.rand(2, FRAMES, 3, 16, 16, generator=torch.Generator().manual_seed(2)) * 2 - 1
    with torch.no_grad():
        alone = torch.stack([torch.stack([frames_vae.encode(videos[i, f : f + 1])[0] for f in range(FRAMES)]) for i in range(2)])
        for chunk in (1, 2, 8):
            latent = VideoLatent(frames_vae, chunk=chunk)
            z = latent.encode(videos)
            assert z.shape == (2, FRAMES, 4, 8, 8)
            assert torch.allclose(z, alone, atol=1e-6)
            back = latent.decode(z)
            frame = frames_vae.decode(z[1, 2:3])[0]
            assert back.shape == videos.shape and torch.allclose(back[1, 2], frame, atol=1e-6)
    assert prior.latent.image_shape((7, 4, 8, 8)) == (7, 3, 16, 16)
    with pytest.raises(DiffcoreError, match="chunk must be a positive number"):
        VideoLatent(frames_vae, chunk=0)
    with pytest.raises(ShapeError, match="expected videos"):
        prior.latent.encode(videos[0])


def test_sampling_reproduces_text_to_video_pipeline(folders):
    """diffcore's DDIM on the guided prior gives the latents of TextToVideoSDPipeline from the same noise."""
    from diffusers import TextToVideoSDPipeline

    pipe = TextToVideoSDPipeline.from_pretrained(folders["t2v"])
    pipe.set_progress_bar_config(disable=True)
    prompt, scale, steps = "a cat", 4.0, 6
    guided = _prior(folders, "t2v", prompt=prompt, guidance_scale=scale)
    assert isinstance(guided, Guided)
    noise = torch.randn((1, *guided.sample_shape), generator=torch.Generator().manual_seed(3))
    ref = pipe(
        prompt,
        num_frames=FRAMES,
        height=16,
        width=16,
        num_inference_steps=steps,
        guidance_scale=scale,
        latents=to_channels_first(noise),
        output_type="latent",
    ).frames
    ours = ddim(guided, noise.clone(), guided.schedule.timesteps(steps))
    assert float((to_channels_first(ours) - ref).abs().max()) <= 1e-5 * max(1.0, float(ref.abs().max()))


def test_sampling_reproduces_animatediff_pipeline(folders):
    from diffusers import AnimateDiffPipeline

    pipe = AnimateDiffPipeline.from_pretrained(folders["animatediff"])
    pipe.set_progress_bar_config(disable=True)
    prompt, scale, steps = "a dog", 3.0, 5
    guided = _prior(folders, "animatediff", prompt=prompt, guidance_scale=scale)
    noise = torch.randn((1, *guided.sample_shape), generator=torch.Generator().manual_seed(4))
    ref = pipe(
        prompt,
        num_frames=FRAMES,
        height=16,
        width=16,
        num_inference_steps=steps,
        guidance_scale=scale,
        latents=to_channels_first(noise),
        output_type="latent",
    ).frames
    ours = ddim(guided, noise.clone(), guided.schedule.timesteps(steps))
    assert float((to_channels_first(ours) - ref).abs().max()) <= 1e-5 * max(1.0, float(ref.abs().max()))


def test_sample_decodes_videos(folders):
    prior = Conditioned(_prior(folders, "t2v"), Cond(text="a cat"))
    videos = diffcore.sample(prior, 2, steps=2, generator=torch.Generator().manual_seed(5))
    assert videos.shape == (2, FRAMES, 3, 16, 16) and float(videos.abs().max()) <= 1


def test_temporal_layers_train(folders, kind):
    """The trainable contract on 5-D data: the loss reaches the temporal layers and only the selected ones change."""
    from diffcore.training import denoising_loss, train_only

    prior = _prior(folders, kind)
    chosen = train_only(prior, "temporal")
    names = [n for n, _ in chosen]
    assert names and all(("temp_" in n or "transformer_in" in n or "motion_modules" in n) for n in names)
    x0 = torch.randn(2, FRAMES, 4, 8, 8, generator=torch.Generator().manual_seed(6))
    loss = denoising_loss(prior, x0, cond=Cond(text="a cat"), generator=torch.Generator().manual_seed(7))
    loss.backward()
    assert all(p.grad is not None for _, p in chosen)
    assert all(p.grad is None for n, p in prior.network.named_parameters() if n not in set(names))


def test_loader_errors(folders, tmp_path):
    with pytest.raises(
        CheckpointError,
        match="UNet2DConditionModel UNet; the video prior needs a UNet3DConditionModel or UNetMotionModel; use the stable-diffusion prior",
    ):
        diffcore.create("prior", "diffusers-video", path=folders["sd"])
    (tmp_path / "unet").mkdir()
    with pytest.raises(CheckpointError, match="not a text-to-video pipeline folder: no vae, text_encoder, tokenizer"):
        diffcore.create("prior", "diffusers-video", path=tmp_path)
    config = json.loads((folders["t2v"] / "unet" / "config.json").read_text())
    assert config["_class_name"] == "UNet3DConditionModel"
    with pytest.raises(DiffcoreError, match="takes a UNet3DConditionModel or UNetMotionModel, got UNet2DConditionModel"):
        from diffusers import UNet2DConditionModel

        sd = diffcore.create("prior", "sd", path=folders["sd"])
        VideoDiffusionPrior(
            UNet2DConditionModel.from_pretrained(folders["sd"], subfolder="unet"),
            sd.vae,
            sd.text_encoder,
            sd.tokenizer,
            sd.scheduler_config,
        )
