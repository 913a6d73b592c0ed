"""Point clouds in and out: binary PLY (Turk 1994; the layout every viewer reads), and reading PLY, ``.npy`` and text files.

:func:`ply_bytes` writes ``element vertex P`` with float32 ``x y z`` (and uchar ``red green blue``
when colours are given), little-endian. :func:`read_points` reads a cloud (K, 3) from a ``.ply``
(ASCII or binary, through trimesh; a mesh's vertices count as points), a ``.npy`` array or a
``.xyz`` / ``.txt`` / ``.csv`` table of x, y, z per line; a file it cannot read, or one without at
least one point of three coordinates, is a one-line :class:`~diffcore.errors.DiffcoreError`
(non-finite coordinates are the caller's to check: :func:`~diff_3d.points.completion.check_partial`).

>>> import torch, tempfile, pathlib
>>> x = torch.tensor([[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]])
>>> path = pathlib.Path(tempfile.mkdtemp()) / "a.ply"
>>> _ = path.write_bytes(ply_bytes(x))
>>> torch.equal(read_points(path), x)
True
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from diffcore.errors import DiffcoreError, ShapeError

SUFFIXES = (".ply", ".npy", ".xyz", ".txt", ".csv")


def ply_bytes(points, colors=None) -> bytes:
    """A binary little-endian PLY of ``points`` (P, 3), with ``colors`` (P, 3) in [0, 1] when given."""
    p = torch.as_tensor(points).detach().float().cpu()
    if p.ndim != 2 or p.shape[1] != 3:
        raise ShapeError(f"points have shape {tuple(p.shape)}; expected (P, 3)")
    fields = [("x", "<f4"), ("y", "<f4"), ("z", "<f4")]
    header = [
        "ply",
        "format binary_little_endian 1.0",
        f"element vertex {p.shape[0]}",
        "property float x",
        "property float y",
        "property float z",
    ]
    if colors is not None:
        c = torch.as_tensor(colors).detach().float().cpu()
        if c.shape != p.shape:
            raise ShapeError(f"colors have shape {tuple(c.shape)}; expected {tuple(p.shape)} like the points")
        fields += [("red", "u1"), ("green", "u1"), ("blue", "u1")]
        header += ["property uchar red", "property uchar green", "property uchar blue"]
    rows = np.zeros(p.shape[0], dtype=fields)
    for i, axis in enumerate("xyz"):
        rows[axis] = p[:, i].numpy()
    if colors is not None:
        rgb = (c.clamp(0, 1) * 255).round().to(torch.uint8).numpy()
        for i, name in enumerate(("red", "green", "blue")):
            rows[name] = rgb[:, i]
    return ("\n".join([*header, "end_header"]) + "\n").encode("ascii") + rows.tobytes()


def read_points(path) -> torch.Tensor:
    """The cloud (K, 3), float32, in the file ``path`` (see the module docstring)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise DiffcoreError(f"{path.name}: unknown point-cloud file type {suffix or '(none)'!r}; expected {', '.join(SUFFIXES)}")
    if not path.is_file():
        raise DiffcoreError(f"{path} does not exist or is not a file")
    try:
        if suffix == ".ply":
            import trimesh

            loaded = trimesh.load(str(path), file_type="ply", process=False)
            array = np.asarray(loaded.vertices, dtype=np.float64)
        elif suffix == ".npy":
            array = np.load(path, allow_pickle=False)
        else:
            array = np.loadtxt(path, delimiter="," if suffix == ".csv" else None, ndmin=2)
    except (OSError, ValueError, AttributeError, IndexError, KeyError) as exc:
        raise DiffcoreError(
            f"cannot read a point cloud from {path.name}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        ) from None
    array = np.asarray(array)
    if array.ndim != 2 or array.shape[1] < 3 or array.shape[0] < 1:
        raise DiffcoreError(f"{path.name} holds an array of shape {array.shape}; expected points (K, 3) with K >= 1")
    return torch.from_numpy(np.ascontiguousarray(array[:, :3], dtype=np.float32))


__all__ = ["SUFFIXES", "ply_bytes", "read_points"]
