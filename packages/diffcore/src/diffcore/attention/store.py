"""Record attention probabilities per layer and step, in memory or on disk in chunks.

Prompt-to-prompt (Hertz et al. 2022) reads the cross-attention maps of a generation;
FateZero (Qi et al. 2023) and Video-P2P (Liu et al. 2023) record the maps of an inversion pass
and fuse them into an editing pass. :class:`StoreMaps` does the recording: each selected layer's
probabilities ``softmax(Q K^T / sqrt(d))`` of shape ``(B, heads, L_q, L_k)`` (or ``(B, L_q, L_k)``
averaged over heads) are copied to the CPU at the chosen steps, either kept in memory or written
to a folder in safetensors chunks that a later pass reads back one map at a time.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Container
from pathlib import Path

import torch

from diffcore.attention.processor import AttentionCall, AttentionProcessor, step_filter
from diffcore.errors import DiffcoreError

__all__ = ["StoreMaps"]

_CHUNK = re.compile(r"^maps-(\d{5})\.safetensors$")
_FORMAT = "diffcore-attention-maps"


def _key(layer: str, step: int) -> str:
    return f"{layer}@{step}"


def _parse(key: str) -> tuple[str, int]:
    layer, step = key.rsplit("@", 1)
    return layer, int(step)


class StoreMaps(AttentionProcessor):
    """Store the attention probabilities of the selected layers, per layer and step.

    Args:
        folder: None to keep the maps in memory, or a folder (created if needed, and empty of
            maps) to write them to in chunks ``maps-00000.safetensors``, ``maps-00001...``.
        steps: the steps (layer calls, from 0) to store: None for all, a container such as
            ``range(10)`` or ``{0, 25}``, or a predicate.
        average_heads: store the mean over heads, ``(B, L_q, L_k)``, instead of ``(B, heads, L_q, L_k)``.
        dtype: the dtype maps are stored in (float32 by default; float16 halves the bytes).
        max_bytes: in memory, the most bytes of maps this object may hold; the map that would
            pass it raises a :class:`~diffcore.errors.DiffcoreError` instead.
        chunk_bytes: on disk, maps are buffered until they reach this size, then written as one
            chunk; the buffer never holds more than ``chunk_bytes`` plus one map.

    Memory: a map takes ``B * heads * L_q * L_k * bytes`` (Stable Diffusion 1.5 at 512 px,
    batch 2 with guidance, cross-attention at the first level: 2 * 8 * 4096 * 77 * 4 bytes =
    10 MB; self-attention there: 1 GiB), so in memory the total is bounded by ``max_bytes`` and on
    disk by ``chunk_bytes`` plus one map. Steps not stored run the fused attention kernel.

    Maps are stored as the processor receives them (in a :class:`~diffcore.attention.Chain`,
    after the edits of the processors before it). Each chunk is written to a temporary file in
    the folder and renamed, so a folder never holds a partial chunk. ``StoreMaps.load(folder)``
    opens a record written earlier (in this or another process).

    >>> import torch
    >>> from diffcore.attention import StoreMaps
    >>> store = StoreMaps()
    >>> store.keys()
    []
    """

    def __init__(
        self,
        folder=None,
        *,
        steps: Container[int] | Callable[[int], bool] | None = None,
        average_heads: bool = False,
        dtype: torch.dtype = torch.float32,
        max_bytes: int = 2**30,
        chunk_bytes: int = 64 * 2**20,
    ):
        super().__init__()
        self._wanted = step_filter(steps)
        self.average_heads = bool(average_heads)
        self.dtype = dtype
        self.max_bytes, self.chunk_bytes = int(max_bytes), int(chunk_bytes)
        self.folder = None if folder is None else Path(folder)
        self._memory: dict[tuple[str, int], torch.Tensor] = {}  # in memory: every map; on disk: the unwritten buffer
        self._where: dict[tuple[str, int], Path] = {}  # on disk: key -> chunk file holding it
        self._chunks = 0
        if self.folder is not None:
            self.folder.mkdir(parents=True, exist_ok=True)
            if any(_CHUNK.match(p.name) for p in self.folder.iterdir()):
                raise DiffcoreError(
                    f"{self.folder} already holds attention maps; read them with StoreMaps.load or record into an empty folder"
                )

    @classmethod
    def load(cls, folder) -> StoreMaps:
        """Open the maps a ``StoreMaps(folder)`` wrote; they are read from disk one at a time."""
        from safetensors import safe_open

        folder = Path(folder)
        chunks = sorted(p for p in folder.iterdir() if _CHUNK.match(p.name)) if folder.is_dir() else []
        if not chunks:
            raise DiffcoreError(f"{folder} holds no attention maps (maps-NNNNN.safetensors)")
        store = cls()
        store.folder = folder
        for path in chunks:
            with safe_open(path, framework="pt") as f:
                meta = f.metadata() or {}
                if meta.get("format") != _FORMAT:
                    raise DiffcoreError(f"{path.name} is not a diffcore attention-map chunk")
                store.average_heads = json.loads(meta.get("average_heads", "false"))
                for key in f.keys():
                    store._where[_parse(key)] = path
        store._chunks = int(_CHUNK.match(chunks[-1].name).group(1)) + 1
        return store

    # -- recording -------------------------------------------------------------------------
    def needs_probabilities(self, call: AttentionCall) -> bool:
        return bool(self._wanted(call.step))

    def edit_probabilities(self, call: AttentionCall, probabilities: torch.Tensor) -> torch.Tensor:
        key = (call.layer.name, call.step)
        if key in self._memory or key in self._where:
            raise DiffcoreError(f"StoreMaps already holds the map of {key[0]} at step {key[1]}; clear() it or record into a new StoreMaps")
        m = probabilities.detach()
        if self.average_heads:
            m = m.mean(dim=1)
        size = m.numel() * torch.finfo(self.dtype).bits // 8
        if self.folder is None and self.nbytes + size > self.max_bytes:
            raise DiffcoreError(
                f"StoreMaps would hold {self.nbytes + size} bytes of maps, past max_bytes={self.max_bytes} (at {key[0]}, step {key[1]}); "
                "store to a folder, average heads, or select fewer layers or steps"
            )
        self._memory[key] = m.to(device="cpu", dtype=self.dtype, copy=True).contiguous()
        if self.folder is not None and self.nbytes >= self.chunk_bytes:
            self.flush()
        return probabilities

    def flush(self) -> None:
        """Write the buffered maps as one chunk (on disk; nothing to do in memory)."""
        if self.folder is None or not self._memory:
            return
        from safetensors.torch import save_file

        path = self.folder / f"maps-{self._chunks:05d}.safetensors"
        temporary = self.folder / f".{path.name}.tmp"
        tensors = {_key(*key): m for key, m in self._memory.items()}
        metadata = {"format": _FORMAT, "average_heads": json.dumps(self.average_heads)}
        try:
            save_file(tensors, str(temporary), metadata=metadata)
            os.replace(temporary, path)
        finally:
            if temporary.exists():
                temporary.unlink()
        self._chunks += 1
        self._where.update(dict.fromkeys(self._memory, path))
        self._memory = {}

    def release(self) -> None:
        """End of a controlled call: the buffered maps are written; stored maps stay."""
        super().release()
        self.flush()

    # -- reading ---------------------------------------------------------------------------
    @property
    def nbytes(self) -> int:
        """Bytes of maps held in memory now (on disk: the unwritten buffer)."""
        return sum(m.numel() * m.element_size() for m in self._memory.values())

    def keys(self) -> list[tuple[str, int]]:
        """The stored (layer name, step) pairs, in recording order."""
        return [*self._where, *(k for k in self._memory if k not in self._where)]

    def map(self, layer, step: int) -> torch.Tensor:
        """The map of ``layer`` (a name or an ``AttentionLayer``) at ``step``; from disk, only that tensor is read."""
        name = getattr(layer, "name", layer)
        key = (name, int(step))
        if key in self._memory:
            return self._memory[key]
        path = self._where.get(key)
        if path is None:
            steps = sorted({s for n, s in self.keys() if n == name})
            held = f"steps {steps[0]}..{steps[-1]} ({len(steps)})" if steps else "no steps"
            raise DiffcoreError(f"no stored attention map of {name} at step {step}; this record holds {held} of it")
        from safetensors import safe_open

        with safe_open(path, framework="pt") as f:
            return f.get_tensor(_key(*key))

    def maps(self, *, layer=None, step: int | None = None) -> dict[tuple[str, int], torch.Tensor]:
        """The stored maps of one layer, of one step, or all of them, by (layer name, step)."""
        name = getattr(layer, "name", layer)
        return {k: self.map(*k) for k in self.keys() if (name is None or k[0] == name) and (step is None or k[1] == step)}

    def clear(self) -> None:
        """Drop every stored map: the memory, and on disk the chunk files this record holds."""
        for path in set(self._where.values()):
            path.unlink(missing_ok=True)
        self._memory, self._where = {}, {}

    def __repr__(self) -> str:
        where = "memory" if self.folder is None else "folder"
        return f"StoreMaps({len(self.keys())} maps in {where})"
