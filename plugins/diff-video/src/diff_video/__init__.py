"""diff-video: video diffusion with diffcore."""
