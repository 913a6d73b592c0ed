"""The tour: every installed plugin's showcase, run on embedded defaults, in one HTML report.

A plugin registers a section with the ``register_tour`` hook; the section is a function
``section(tour)`` that receives a :class:`Tour` and adds content to it in reading order::

    def section(tour):
        prior = ...
        x = diffcore.sample(prior, 16, steps=20 if tour.quick else 50, generator=tour.generator(0))
        tour.text("Samples from the **digits** prior.")
        tour.image("samples", x, caption="16 samples, 50 DDIM steps")
        tour.metric("time per sample", 0.012, unit="s")

:func:`run_tour` runs each section inside its own guard (a failing section shows its error in
the report and the others still run), times it, and writes ``index.html`` with each section's
files in a folder of its own next to it: readable from disk, no server needed. Every file is
written atomically (temporary file in the same folder, fsync, rename).

Pictures need matplotlib, the ``tour`` extra: ``pip install "diffcore[tour]"``.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import tempfile
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import torch

from diffcore.errors import DiffcoreError, closest

_INSTALL_HINT = 'pip install "diffcore[tour]"'


# -- files ---------------------------------------------------------------------------------------
def write_atomic(path: str | os.PathLike, data: bytes | str) -> Path:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never a part.

    The bytes go to a temporary file in the same folder, are flushed to disk, and replace
    ``path`` with :func:`os.replace` (atomic on POSIX and Windows). On any error the temporary
    file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    if isinstance(data, str):
        data = data.encode("utf-8")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def write_folder(out: str | os.PathLike, files: dict[str, bytes | str], *, marker: str = "metrics.json", result_names=None) -> Path:
    """Write ``files`` (name -> bytes) as the folder ``out``, which appears whole or not at all.

    The files go to a temporary folder next to ``out``, which is then renamed into place. An
    existing ``out`` is replaced as a whole (no file of an earlier run is left beside the new
    ones) when it is empty or holds ``marker`` (the earlier output of a diffcore command);
    any other existing path is refused with a one-line :class:`DiffcoreError`, and nothing is
    written. With ``result_names`` (the names a result can hold), an existing folder is replaced
    only when it holds nothing else, instead of the ``marker`` rule. On any error the temporary
    folder is removed and ``out`` is left as it was.

    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> _ = write_folder(root / "run", {"a.txt": "1", "metrics.json": "{}"})
    >>> _ = write_folder(root / "run", {"b.txt": "2", "metrics.json": "{}"})
    >>> sorted(p.name for p in (root / "run").iterdir())
    ['b.txt', 'metrics.json']
    """
    import shutil

    from diffcore.errors import DiffcoreError

    out = Path(out)
    if result_names is not None and out.is_dir():
        foreign = sorted(p.name for p in out.iterdir() if p.name not in set(result_names))
        if foreign:
            shown = ", ".join(foreign[:3]) + (" ..." if len(foreign) > 3 else "")
            raise DiffcoreError(f"--out {str(out)!r} holds files that are not an earlier result ({shown}); give a new or empty folder")
    elif out.exists() and not (out.is_dir() and (not any(out.iterdir()) or (out / marker).is_file())):
        what = "a file" if not out.is_dir() else f"a folder that is not an earlier output (no {marker})"
        raise DiffcoreError(f"--out {str(out)!r} exists and is {what}; choose another folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".part"))
    old = None
    try:
        for name, data in files.items():
            (tmp / name).write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
        os.chmod(tmp, 0o755)
        if out.exists():
            old = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".old"))
            os.rename(out, old / "previous")
        os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and (old / "previous").exists() and not out.exists():
            os.rename(old / "previous", out)  # put the earlier output back
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    return out


def require_matplotlib():
    """Import matplotlib, or raise an ImportError that names the extra to install."""
    try:
        import matplotlib
    except ImportError as exc:
        raise ImportError(f"pictures need matplotlib, which is not installed: {_INSTALL_HINT}") from exc
    return matplotlib


# -- images --------------------------------------------------------------------------------------
def image_grid(images, nrow: int | None = None, padding: int = 2) -> Any:
    """Images in [-1, 1] -> one RGB grid as a uint8 numpy array (H, W, 3).

    ``images`` is (N, C, H, W), (C, H, W) or (H, W) with C = 1 or 3 (a fourth, alpha channel is
    dropped), as a tensor or numpy array; a uint8 (H, W, 3) array is taken as a finished grid.
    ``nrow`` images per row, default about square.

    >>> image_grid(torch.zeros(5, 1, 4, 4)).shape  # 3 per row, 2 rows, 2 px padding
    (14, 20, 3)
    """
    import numpy as np

    if isinstance(images, np.ndarray) and images.dtype == np.uint8 and images.ndim == 3 and images.shape[2] == 3:
        return images
    x = torch.as_tensor(images).detach().to("cpu", torch.float32)
    if x.ndim == 2:
        x = x[None, None]
    elif x.ndim == 3:
        x = x[None]
    if x.ndim != 4 or x.shape[1] not in (1, 3, 4) or x.shape[0] == 0:
        raise DiffcoreError(f"images have shape {tuple(x.shape)}; expected (N, C, H, W) with C = 1 or 3, values in [-1, 1]")
    x = x[:, :3] if x.shape[1] == 4 else x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x
    n, _, h, w = x.shape
    cols = nrow or math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    grid = torch.ones(3, rows * (h + padding) + padding, cols * (w + padding) + padding)
    for i in range(n):
        r, c = divmod(i, cols)
        top, left = padding + r * (h + padding), padding + c * (w + padding)
        grid[:, top : top + h, left : left + w] = (x[i].nan_to_num(0.0).clamp(-1, 1) + 1) / 2
    return (grid.permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()


def encode_png(grid) -> bytes:
    """A uint8 (H, W, 3) array as PNG bytes (through matplotlib)."""
    require_matplotlib()
    from matplotlib.image import imsave

    buf = io.BytesIO()
    imsave(buf, grid, format="png")
    return buf.getvalue()


def encode_gif(frames, fps: float = 8.0, loop: bool = True) -> bytes:
    """Frames (F, C, H, W) in [-1, 1] with C = 1 or 3 -> the bytes of an animated GIF (Pillow).

    >>> data = encode_gif(torch.zeros(3, 1, 4, 4))
    >>> data[:6]
    b'GIF89a'
    """
    from diffcore.errors import ShapeError

    frames = torch.as_tensor(frames)
    if frames.ndim != 4 or frames.shape[1] not in (1, 3) or frames.shape[0] < 1:
        raise ShapeError(f"frames have shape {tuple(frames.shape)}; expected (F, C, H, W) with C = 1 or 3")
    try:
        from PIL import Image
    except ImportError as exc:
        raise ImportError('animations in the tour need Pillow: pip install "diffcore[tour]"') from exc
    pixels = ((frames.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    pixels = pixels.expand(-1, 3, -1, -1).permute(0, 2, 3, 1).numpy()
    images = [Image.fromarray(p) for p in pixels]
    out = io.BytesIO()
    images[0].save(out, format="GIF", save_all=True, append_images=images[1:], duration=max(1, round(1000 / fps)), loop=0 if loop else 1)
    return out.getvalue()


def upscale(grid, target: int = 320, most: int = 8):
    """Nearest-neighbour upscaling so that tiny images stay crisp and visible."""
    h, w = grid.shape[:2]
    k = min(most, max(1, target // max(h, w)))
    return grid.repeat(k, axis=0).repeat(k, axis=1) if k > 1 else grid


# -- report content ------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Picture:
    src: str
    caption: str
    alt: str


@dataclass(frozen=True)
class _Table:
    columns: list[str]
    rows: list[dict]
    caption: str
    src: str


@dataclass(frozen=True)
class _Text:
    markdown: str


@dataclass(frozen=True)
class _Metric:
    name: str
    value: Any
    unit: str


@dataclass(frozen=True)
class Section:
    """One section of the report: ``run(tour)`` adds the content."""

    name: str
    run: Callable[[Tour], Any]
    summary: str = ""
    plugin: str = ""


@dataclass
class SectionResult:
    """What running one section produced."""

    section: Section
    status: str  # "ok", "failed" or "skipped" (a missing optional dependency)
    seconds: float
    blocks: list = field(default_factory=list)
    error: str | None = None
    traceback: str | None = None


def _slug(name: str) -> str:
    s = re.sub(r"[^a-z0-9._-]+", "-", name.lower()).strip("-.")
    return s or "section"


class Tour:
    """What a section receives: a place to put pictures, tables, text and metrics, in order.

    - ``quick``: True when the user asked for a fast run (``diffcore tour --quick``): cut sizes;
    - ``generator(seed)``: a fresh seeded CPU :class:`torch.Generator`;
    - ``progress(items, description)``: iterate while showing progress on the section's line
      (prefer it to ``diffcore.sample(..., progress=True)``, which opens a display of its own);
    - ``section_dir``: the section's folder, for any extra files it wants to write.
    """

    def __init__(self, out_dir: str | os.PathLike, name: str, *, quick: bool = False, on_progress: Callable | None = None):
        self.out_dir = Path(out_dir)
        self.name = name
        self.quick = bool(quick)
        self.blocks: list = []
        self._on_progress = on_progress
        self._files: set[str] = set()

    @property
    def section_dir(self) -> Path:
        """The folder for this section's files (created on first use)."""
        d = self.out_dir / _slug(self.name)
        d.mkdir(parents=True, exist_ok=True)
        return d

    def generator(self, seed: int = 0) -> torch.Generator:
        """A new CPU generator seeded with ``seed``: the same seed gives the same pictures."""
        return torch.Generator().manual_seed(int(seed))

    def progress(self, items: Iterable, description: str | None = None, total: int | None = None) -> Iterator:
        """Yield ``items``, advancing this section's progress line after each one."""
        if total is None and hasattr(items, "__len__"):
            total = len(items)
        self._report(description, 0, total)
        for i, item in enumerate(items, 1):
            yield item
            self._report(description, i, total)

    def _report(self, description, done, total):
        if self._on_progress is not None:
            self._on_progress(description, done, total)

    def _file(self, name: str, suffix: str) -> tuple[Path, str]:
        fname = _slug(Path(name).stem if name.endswith(suffix) else name) + suffix
        if fname in self._files:
            raise DiffcoreError(
                f"tour section {self.name!r} already wrote a file named {fname!r}; give each picture and table its own name"
            )
        self._files.add(fname)
        path = self.section_dir / fname
        return path, f"{path.parent.name}/{fname}"

    def image(self, name: str, images, caption: str = "", nrow: int | None = None) -> Path:
        """Images (NCHW in [-1, 1], or a finished uint8 grid) -> one PNG grid in the report."""
        grid = upscale(image_grid(images, nrow=nrow))
        path, rel = self._file(name, ".png")
        write_atomic(path, encode_png(grid))
        self.blocks.append(_Picture(rel, caption, caption or name))
        return path

    def animation(self, name: str, frames, caption: str = "", fps: float = 8.0) -> Path:
        """A looping GIF that plays in the report: GIF bytes as they are, or frames (F, C, H, W) in [-1, 1]
        (C = 1 or 3) encoded here with Pillow (which matplotlib brings)."""
        if isinstance(frames, (bytes, bytearray)):
            if bytes(frames[:6]) not in (b"GIF87a", b"GIF89a"):
                raise DiffcoreError(f"tour animation {name!r}: the bytes are not a GIF")
            data = bytes(frames)
        else:
            data = encode_gif(frames, fps=fps)
        path, rel = self._file(name, ".gif")
        write_atomic(path, data)
        self.blocks.append(_Picture(rel, caption, caption or name))
        return path

    def new_figure(self, **kwargs):
        """A matplotlib :class:`~matplotlib.figure.Figure` not tied to any GUI (constrained layout)."""
        require_matplotlib()
        from matplotlib.figure import Figure

        kwargs.setdefault("layout", "constrained")
        return Figure(**kwargs)

    def figure(self, name: str, fig, caption: str = "", dpi: int = 110) -> Path:
        """A matplotlib figure -> PNG in the report. The figure is closed afterwards."""
        require_matplotlib()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=dpi, facecolor="white")
        path, rel = self._file(name, ".png")
        write_atomic(path, buf.getvalue())
        import sys

        if "matplotlib.pyplot" in sys.modules:  # figures made with pyplot stay alive until closed
            sys.modules["matplotlib.pyplot"].close(fig)
        self.blocks.append(_Picture(rel, caption, caption or name))
        return path

    def table(self, name: str, rows: Sequence[dict], caption: str = "") -> Path:
        """Rows of dicts -> a table in the report, and a CSV file next to it."""
        rows = [dict(r) for r in rows]
        columns: list[str] = []
        for r in rows:
            columns.extend(k for k in r if k not in columns)
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: _plain(v) for k, v in r.items()} for r in rows)
        path, rel = self._file(name, ".csv")
        write_atomic(path, buf.getvalue())
        self.blocks.append(_Table(columns, rows, caption, rel))
        return path

    def text(self, markdown: str) -> None:
        """A paragraph of plain text or simple markdown (``**bold**``, ``*em*``, ``code``, lists, links)."""
        self.blocks.append(_Text(str(markdown)))

    def metric(self, name: str, value, unit: str = "") -> None:
        """A headline number, shown as a card and recorded in report.json."""
        self.blocks.append(_Metric(str(name), _plain(value), unit))

    @property
    def metrics(self) -> dict[str, dict]:
        return {b.name: {"value": b.value, "unit": b.unit} for b in self.blocks if isinstance(b, _Metric)}


def _plain(v):
    """Tensors and numpy scalars -> Python numbers, so they format and serialise."""
    if isinstance(v, torch.Tensor) and v.numel() == 1:
        return v.item()
    if hasattr(v, "item") and getattr(v, "ndim", None) == 0:
        return v.item()
    return v


# -- running -------------------------------------------------------------------------------------
def registered_sections() -> list[Section]:
    """The sections that installed plugins registered (kind ``tour``), sorted by name with diffcore's first."""
    from diffcore.plugin_host import BUILTIN, available

    comps = available("tour")
    comps.sort(key=lambda c: (c.plugin != BUILTIN, c.name))
    return [Section(c.name, c.factory, c.summary, c.plugin) for c in comps]


def _select(sections: list[Section], only: Sequence[str] | None) -> list[Section]:
    if not only:
        return sections
    names = [s.name for s in sections]
    for name in only:
        if name not in names:
            hint = closest(name, names)
            raise DiffcoreError(
                f"unknown tour section {name!r}; known sections: {', '.join(names) or 'none'}"
                + (f". Did you mean {hint!r}?" if hint else "")
            )
    return [s for s in sections if s.name in set(only)]


class _Display:
    """One progress line per section on stderr: live with rich on a terminal, plain lines otherwise."""

    def __init__(self, console, sections: list[Section]):
        self.console = console
        self.live = console.is_terminal
        self.progress = None
        if self.live:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

            self.progress = Progress(
                SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
            )
            self.tasks = {s.name: self.progress.add_task(f"[dim]{s.name}[/] waiting", total=None, start=False) for s in sections}

    def __enter__(self):
        if self.progress is not None:
            self.progress.start()
        return self

    def __exit__(self, *exc):
        if self.progress is not None:
            self.progress.stop()

    def start(self, name: str):
        if self.progress is not None:
            self.progress.start_task(self.tasks[name])
            self.progress.update(self.tasks[name], description=f"[bold]{name}[/]")

    def update(self, name: str, description: str | None, done: int, total: int | None):
        if self.progress is not None:
            label = f"[bold]{name}[/]" + (f" {description}" if description else "")
            self.progress.update(self.tasks[name], description=label, completed=done, total=total)

    def finish(self, result: SectionResult):
        from rich.markup import escape

        name = result.section.name
        mark = {"ok": "[green]ok[/]", "failed": "[red]failed[/]", "skipped": "[yellow]skipped[/]"}[result.status]
        note = f": {escape(result.error)}" if result.error else ""  # 'pip install "diffcore[tour]"' is not markup
        if self.progress is not None:
            task = self.progress.tasks[self.tasks[name]]
            total = task.total if task.total else 1
            self.progress.update(
                self.tasks[name], description=f"[bold]{name}[/] {mark} {result.seconds:.1f} s", total=total, completed=total
            )
            if note:
                self.progress.console.print(f"  [bold]{name}[/]{note}", markup=True, highlight=False)
        else:
            self.console.print(f"tour: [bold]{name}[/] {mark} in {result.seconds:.1f} s{note}", highlight=False)


def run_section(section: Section, out_dir: Path, *, quick: bool = False, on_progress: Callable | None = None) -> SectionResult:
    """Run one section inside a guard: its exceptions become the result's error."""
    tour = Tour(out_dir, section.name, quick=quick, on_progress=on_progress)
    start = time.perf_counter()
    try:
        section.run(tour)
    except ImportError as exc:  # an optional dependency is missing: say which, skip the section
        return SectionResult(
            section, "skipped", time.perf_counter() - start, tour.blocks, f"{type(exc).__name__}: {exc}", traceback.format_exc()
        )
    except Exception as exc:  # noqa: BLE001 - one broken section must not break the report
        return SectionResult(
            section, "failed", time.perf_counter() - start, tour.blocks, f"{type(exc).__name__}: {exc}", traceback.format_exc()
        )
    return SectionResult(section, "ok", time.perf_counter() - start, tour.blocks)


def run_tour(
    out_dir: str | os.PathLike,
    only: Sequence[str] | None = None,
    quick: bool = False,
    *,
    sections: Sequence[Section] | None = None,
    console=None,
) -> Path:
    """Run the tour and write ``out_dir/index.html``; return its path.

    ``sections`` defaults to every registered section; ``only`` keeps the named ones (unknown
    names fail before anything runs). Progress goes to ``console`` (default: a rich console
    on stderr). Also writes ``report.json`` with each section's status, time and metrics.
    """
    from rich.console import Console

    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise DiffcoreError(f"--out {str(out)!r} is a file; the tour needs a folder")
    chosen = _select(list(sections) if sections is not None else registered_sections(), only)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DiffcoreError(f"cannot create the report folder {str(out)!r}: {exc.strerror or exc}") from None
    console = console if console is not None else Console(stderr=True)
    started = datetime.now().astimezone()
    t0 = time.perf_counter()
    results: list[SectionResult] = []
    with _Display(console, chosen) as display:
        for section in chosen:
            display.start(section.name)
            result = run_section(section, out, quick=quick, on_progress=lambda d, i, n, name=section.name: display.update(name, d, i, n))
            display.finish(result)
            results.append(result)
    total = time.perf_counter() - t0
    meta = {
        "version": _diffcore_version(),
        "created": started.isoformat(timespec="seconds"),
        "seconds": total,
        "quick": bool(quick),
        "plugins": _plugin_list(),
    }
    write_atomic(out / "report.json", json.dumps(_report_json(meta, results), indent=2, default=str) + "\n")
    return write_atomic(out / "index.html", render_html(meta, results))


def _diffcore_version() -> str:
    import diffcore

    return diffcore.__version__


def _plugin_list() -> list[dict]:
    try:
        from diffcore.plugin_host import plugins

        return [p.as_dict() for p in plugins()]
    except Exception as exc:  # noqa: BLE001 - the header must not break the report
        return [{"name": "?", "version": None, "module": "", "registered": {}, "error": f"{type(exc).__name__}: {exc}"}]


def _report_json(meta: dict, results: list[SectionResult]) -> dict:
    sections = []
    for r in results:
        sections.append(
            {
                "name": r.section.name,
                "plugin": r.section.plugin,
                "summary": r.section.summary,
                "status": r.status,
                "seconds": round(r.seconds, 3),
                "error": r.error,
                "metrics": {b.name: {"value": b.value, "unit": b.unit} for b in r.blocks if isinstance(b, _Metric)},
                "files": [b.src for b in r.blocks if isinstance(b, _Picture | _Table)],
            }
        )
    return {**meta, "seconds": round(meta["seconds"], 3), "sections": sections}


def render_html(meta: dict, results: list[SectionResult]) -> str:
    """The report page; see :mod:`diffcore.tour_html`."""
    from diffcore.tour_html import render_html as render

    return render(meta, results)


__all__ = [
    "Section",
    "SectionResult",
    "Tour",
    "encode_png",
    "image_grid",
    "registered_sections",
    "require_matplotlib",
    "run_section",
    "run_tour",
    "upscale",
    "write_atomic",
]
