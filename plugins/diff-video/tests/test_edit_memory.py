"""Memory bounded in the frame count: a chunked FateZero edit's peak memory hardly grows from 8 to 32 frames, while the
same edit run as one chunk grows with the frames (so the measurement can see growth)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from diffcore.testing import save_tiny_unet_pipeline


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux's /proc peak-memory reset")
def test_peak_memory_grows_sub_linearly_in_frames(tmp_path):
    folder = save_tiny_unet_pipeline(tmp_path / "tiny", sample_size=8, channels=1, clip_sample=False)
    command = [sys.executable, "-m", "diff_video.editing.memory", "--prior", f"diffusers:path={folder}", "--editor", "fatezero"]
    command += ["--frames", "8,32", "--chunk", "4,0", "--size", "32", "--steps", "2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env, check=True)
    rows = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    growth = {(r["chunk"], r["frames"]): r["peak_growth_bytes"] for r in rows}
    # four times the frames: chunked, well under twice the memory (linear would be four times) ...
    assert growth[(4, 32)] < 1.5 * growth[(4, 8)]
    # ... while the unchunked edit, holding every frame's maps and activations, grows with them
    assert growth[(0, 32)] > 1.8 * growth[(0, 8)]
    assert growth[(0, 32)] > 2 * growth[(4, 32)]
