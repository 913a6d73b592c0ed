"""Tiled decoding of a latent canvas: the window prior's autoencoder run window by window.

A latent collage (Stable Diffusion through diffcore's adapter) samples its canvas in latent space;
decoding it whole would need the decoder's memory for the whole image. :class:`TiledLatent`
decodes the collage's own windows, ``max_batch`` at a time, and blends them where they overlap
with weights that fall linearly towards each tile's border (a tile's border is where its decoder
saw the least context), wrapping around the axes the graph wraps (360°). Memory is bounded by one
batch of tiles and the output image. ``encode`` does the reverse, averaging the tiles' latents.
"""

from __future__ import annotations

import torch

from diffcore.errors import DiffcoreError


def _ramp(n: int) -> torch.Tensor:
    """Weights ``min(k + 1/2, n - k - 1/2)`` over a tile of length ``n``: positive, highest in the middle."""
    k = torch.arange(n, dtype=torch.float64)
    return torch.minimum(k + 0.5, n - k - 0.5)


class TiledLatent:
    """The :class:`~diffcore.protocols.Latent` of a latent collage: ``decode`` / ``encode`` tile by tile.

    ``latent`` is the window prior's (it must say its ``image_shape`` for a latent shape, as
    diffcore's ``VAELatent`` does); ``layout`` the collage's windows in latent cells.
    """

    def __init__(self, latent, layout, max_batch: int | None = None):
        from diff_collage.layout import Layout

        shape_of = getattr(latent, "image_shape", None)
        if not callable(shape_of):
            raise DiffcoreError(
                f"{type(latent).__name__} does not say the image shape of a latent shape; a latent collage needs it to decode in tiles"
            )
        self.latent, self.layout = latent, layout
        self.max_batch = max_batch
        window_image = tuple(shape_of(layout.window_shape))
        if len(window_image) != len(layout.window_shape):
            raise DiffcoreError(f"images {window_image} and latents {layout.window_shape} have different numbers of axes")
        factors = []
        for d in layout.axes:
            f, rest = divmod(window_image[d], layout.window_shape[d])
            if rest or f < 1:
                raise DiffcoreError(
                    f"the decoder maps {layout.window_shape[d]} latent cells to {window_image[d]} pixels along axis {d}, not a whole factor"
                )
            factors.append(f)
        self.factors = tuple(factors)
        self.image_layout = Layout(layout.graph.scaled(factors), window_image)
        w = torch.ones(window_image, dtype=torch.float64)
        for d in self.image_layout.axes:
            view = [1] * len(window_image)
            view[d] = window_image[d]
            w = w * _ramp(window_image[d]).reshape(view)
        self.weights = w.reshape(-1)

    def image_shape(self, latent_shape=None) -> tuple[int, ...]:
        """The shape of the decoded canvas."""
        if latent_shape is not None and tuple(latent_shape) != self.layout.canvas_shape:
            raise DiffcoreError(f"this decoder takes latent canvases of shape {self.layout.canvas_shape}, got {tuple(latent_shape)}")
        return self.image_layout.canvas_shape

    def _batches(self, total: int):
        step = self.max_batch or total
        return [(i, min(total, i + step)) for i in range(0, total, step)]

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        lay, img = self.layout, self.image_layout
        n = latents.shape[0]
        tiles = lay.windows(latents.reshape(n, -1)).reshape(lay.n_windows * n, *lay.window_shape)
        out, weight = None, None
        w = self.weights.to(device=latents.device)
        for i, j in self._batches(tiles.shape[0]):
            images = self.latent.decode(tiles[i:j])
            if out is None:
                out = torch.zeros(n, img.numel, dtype=images.dtype, device=images.device)
                weight = torch.zeros(img.numel, dtype=images.dtype, device=images.device)
            win = torch.arange(i, j, device=images.device) // n  # window of each tile
            sample = torch.arange(i, j, device=images.device) % n
            cells = img.on(images.device)["window"][win]  # (B, P_img)
            ww = w.to(images.dtype)
            flat = images.reshape(j - i, -1) * ww
            out.index_put_((sample[:, None].expand_as(cells), cells), flat, accumulate=True)
            first = sample == 0
            weight.index_put_((cells[first].reshape(-1),), ww.expand(int(first.sum()), -1).reshape(-1), accumulate=True)
        return (out / weight).reshape(n, *img.canvas_shape)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        lay, img = self.layout, self.image_layout
        n = images.shape[0]
        tiles = img.windows(images.reshape(n, -1)).reshape(lay.n_windows * n, *img.window_shape)
        parts = [self.latent.encode(tiles[i:j]) for i, j in self._batches(tiles.shape[0])]
        codes = torch.cat(parts).reshape(lay.n_windows, n, -1)
        coverage = lay.on(codes.device)["coverage"].to(codes.dtype)
        return (lay.add_windows(codes) / coverage).reshape(n, *lay.canvas_shape)
