"""Editing metrics: warping by a known flow, the warp error sees inconsistency, exact frame differences, CLIP score
against transformers' own logits."""

from __future__ import annotations

import torch

from diff_video.editing.metrics import edit_metrics, frame_difference, structure_psnr, warp, warp_error
from diff_video.editing.synthetic import moving_rotating_digit


def test_warp_by_a_whole_pixel_flow_is_a_shift():
    frame = torch.randn(2, 8, 8, generator=torch.Generator().manual_seed(0))
    flow = torch.zeros(2, 8, 8)
    flow[0] = 1.0  # sample one pixel to the right
    torch.testing.assert_close(warp(frame, flow)[:, :, :-1], frame[:, :, 1:])


def test_warp_error_follows_the_source_motion():
    video, _ = moving_rotating_digit(2, 8)
    consistent = warp_error(video, video)
    flicker = video + 0.2 * torch.randn(video.shape, generator=torch.Generator().manual_seed(1))
    reversed_motion = torch.flip(video, [0])
    assert consistent < 0.01
    assert warp_error(video, flicker) > 5 * consistent
    assert warp_error(video, reversed_motion) > 5 * consistent


def test_frame_difference_and_structure():
    video = torch.zeros(3, 1, 4, 4)
    video[1] += 0.5
    assert frame_difference(video) == 0.5  # |0.5 - 0| and |0 - 0.5|, averaged
    assert structure_psnr(video, video) > 100
    assert structure_psnr(video, video + 0.1) < 30
    digits, label = moving_rotating_digit(0, 4)
    metrics = edit_metrics(digits, digits, target=label)
    assert set(metrics) == {"warp_error", "frame_difference", "structure_psnr", "fidelity"} and metrics["fidelity"] == 1.0


def test_clip_score_matches_transformers_logits():
    from transformers import CLIPConfig, CLIPModel

    from diff_video.editing.clip_score import clip_pixels, clip_score
    from diffcore.testing import tiny_clip_tokenizer

    tokenizer = tiny_clip_tokenizer()
    text = {
        "vocab_size": tokenizer.vocab_size,
        "hidden_size": 16,
        "intermediate_size": 32,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
    }
    vision = {
        "hidden_size": 16,
        "intermediate_size": 32,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "image_size": 32,
        "patch_size": 8,
    }
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=8)).eval()
    frames = torch.rand(3, 1, 16, 16, generator=torch.Generator().manual_seed(2)) * 2 - 1
    score = clip_score(frames, "a digit three", (model, tokenizer))
    tokens = tokenizer(["a digit three"], return_tensors="pt")
    with torch.no_grad():
        out = model(input_ids=tokens.input_ids, attention_mask=tokens.attention_mask, pixel_values=clip_pixels(frames, 32))
        expected = float(100 * (out.logits_per_image[:, 0] / model.logit_scale.exp()).clamp_min(0).mean())
    assert abs(score - expected) < 1e-4 and 0 <= score <= 100
    metrics = edit_metrics(frames, frames, prompt="a digit three", clip=(model, tokenizer))
    assert abs(metrics["clip_score"] - score) < 1e-6
