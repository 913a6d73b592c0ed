"""Loading weights safely: safetensors only, pickle only when the user says so.

A pickle checkpoint (``.bin``, ``.pt``, ``.ckpt``, ``.pth``, ``.pkl``) can run arbitrary code
when it is loaded, so diffcore refuses it unless ``trust_pickle=True`` is passed explicitly;
even then it is read with ``torch.load(weights_only=True)``. A safetensors file is checked
before use (its header must parse and its data must cover the file exactly), so a truncated
or corrupt download fails with a :class:`~diffcore.errors.CheckpointError` naming the file
instead of a stack trace from deep inside a loader.

- :func:`load_state_dict`: one weights file to a ``{name: tensor}`` dict;
- :func:`check_safetensors`: validate a safetensors file without reading its tensors;
- :func:`check_model_folder`: validate every weights file of a diffusers/transformers folder
  and refuse folders whose weights are pickle only;
- :func:`resolve_model`: a local folder as is, or a Hugging Face Hub id downloaded (configs and
  safetensors only unless trusted) into the local cache.

>>> import tempfile, pathlib, torch
>>> from safetensors.torch import save_file
>>> tmp = tempfile.TemporaryDirectory()
>>> folder = pathlib.Path(tmp.name)
>>> save_file({"w": torch.ones(2)}, str(folder / "model.safetensors"))
>>> load_state_dict(folder / "model.safetensors")["w"]
tensor([1., 1.])
>>> torch.save({"w": torch.ones(2)}, folder / "model.bin")
>>> load_state_dict(folder / "model.bin")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
diffcore.errors.CheckpointError: refusing to load pickle checkpoint .../model.bin: ...
>>> tmp.cleanup()
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path

import torch

from diffcore.errors import CheckpointError, DiffcoreError

SAFETENSORS_SUFFIX = ".safetensors"
PICKLE_SUFFIXES = (".bin", ".pt", ".ckpt", ".pth", ".pkl")

_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*(/[A-Za-z0-9][A-Za-z0-9_.-]*)?$")
_PICKLE_ADVICE = (
    "pickle files can run arbitrary code when loaded; convert them to safetensors or pass trust_pickle=True if you trust their source"
)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def is_pickle(path: str | os.PathLike) -> bool:
    """Whether ``path`` names a pickle checkpoint by its suffix."""
    return Path(path).suffix.lower() in PICKLE_SUFFIXES


def check_safetensors(path: str | os.PathLike) -> None:
    """Raise :class:`CheckpointError` naming ``path`` unless it is a well-formed safetensors file.

    Only the header is parsed (the file is memory-mapped, tensors are not read), which catches
    truncated downloads and files that are not safetensors at all.
    """
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"weights file {path} does not exist")
    try:
        with safe_open(str(path), framework="pt") as f:
            f.keys()
    except Exception as exc:  # SafetensorError, OSError: all mean the file cannot be used
        raise CheckpointError(f"corrupt or truncated safetensors file {path}: {_one_line(exc)}") from None


def load_state_dict(path: str | os.PathLike, *, trust_pickle: bool = False, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """Load a ``{name: tensor}`` dict from a safetensors file (or, if trusted, a pickle one).

    Args:
        path: a ``.safetensors`` file, or a pickle checkpoint when ``trust_pickle`` is True.
        trust_pickle: allow pickle checkpoints; they are then read with ``weights_only=True``.
        device: where to put the tensors.
    """
    path = Path(path)
    if is_pickle(path):
        if not trust_pickle:
            raise CheckpointError(f"refusing to load pickle checkpoint {path}: {_PICKLE_ADVICE}")
        if not path.is_file():
            raise CheckpointError(f"weights file {path} does not exist")
        try:
            state = torch.load(path, map_location=device, weights_only=True)
        except Exception as exc:
            raise CheckpointError(f"cannot load pickle checkpoint {path}: {_one_line(exc)}") from None
        if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
            state = state["state_dict"]  # Lightning / CompVis checkpoints nest the weights
        if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
            raise CheckpointError(f"{path} does not hold a state dict of tensors")
        return state
    if path.suffix.lower() != SAFETENSORS_SUFFIX:
        raise CheckpointError(
            f"unsupported weights file {path}: expected {SAFETENSORS_SUFFIX} (or a pickle checkpoint with trust_pickle=True)"
        )
    check_safetensors(path)
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device=str(device))
    except Exception as exc:
        raise CheckpointError(f"corrupt safetensors file {path}: {_one_line(exc)}") from None


def _weight_files(folder: Path, recursive: bool = True) -> dict[Path, list[Path]]:
    """Weights files grouped by the directory that holds them (hidden directories skipped)."""
    groups: dict[Path, list[Path]] = {}
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".")) if recursive else []
        for name in sorted(files):
            p = Path(root) / name
            if p.suffix.lower() == SAFETENSORS_SUFFIX or is_pickle(p):
                groups.setdefault(Path(root), []).append(p)
    return groups


def check_model_folder(folder: str | os.PathLike, *, trust_pickle: bool = False, components: Iterable[str] | None = None) -> list[Path]:
    """Validate the weights of a diffusers/transformers model or pipeline folder.

    Every safetensors file must be well formed; a directory (the folder itself or a component
    such as ``unet/``) whose weights are pickle files only is refused unless ``trust_pickle``;
    a directory with a model ``config.json`` and no usable weights is refused too.
    ``components`` limits the check to those subfolders (``""`` is the folder itself), so that
    parts a loader never reads (a pipeline's safety checker) do not matter. Returns the weights
    files that loading may use.

    >>> import tempfile, pathlib, torch
    >>> tmp = tempfile.TemporaryDirectory()
    >>> folder = pathlib.Path(tmp.name)
    >>> (folder / "unet").mkdir()
    >>> torch.save({"w": torch.ones(1)}, folder / "unet" / "diffusion_pytorch_model.bin")
    >>> check_model_folder(folder)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    diffcore.errors.CheckpointError: .../unet holds only pickle weights (diffusion_pytorch_model.bin): ...
    >>> [p.name for p in check_model_folder(folder, trust_pickle=True)]
    ['diffusion_pytorch_model.bin']
    >>> tmp.cleanup()
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(f"model folder {folder} does not exist")
    roots = [folder] if components is None else [folder / c if c else folder for c in components]
    usable: list[Path] = []
    for root in roots:
        if not root.is_dir():
            raise CheckpointError(f"{folder} has no {root.name!r} folder; expected a diffusers model folder")
        groups = _weight_files(root) if components is None else _weight_files(root, recursive=False)
        for directory, files in groups.items():
            safe = [p for p in files if p.suffix.lower() == SAFETENSORS_SUFFIX]
            pickled = [p for p in files if is_pickle(p)]
            for p in safe:
                check_safetensors(p)
            if not safe and pickled and not trust_pickle:
                names = ", ".join(p.name for p in pickled)
                raise CheckpointError(f"{directory} holds only pickle weights ({names}): {_PICKLE_ADVICE}")
            usable.extend(safe + (pickled if trust_pickle else []))
        configs = [root / "config.json"] if components is not None else sorted(root.rglob("config.json"))
        for config in configs:
            hidden = any(part.startswith(".") for part in config.relative_to(root).parts)
            if config.is_file() and not hidden and config.parent not in groups:
                hint = "" if trust_pickle else " (pickle weights are neither fetched nor loaded unless trust_pickle=True)"
                raise CheckpointError(f"{config.parent} has a model config but no safetensors weights{hint}")
    return usable


def _hub_patterns(trust_pickle: bool) -> tuple[list[str], list[str]]:
    """Which files of a hub repo to fetch: configs, tokenizers and single-model weights."""
    allow = ["*.json", "*.txt", "*.model"]
    weights = ["diffusion_pytorch_model*.safetensors", "model*.safetensors"]
    if trust_pickle:
        weights += ["diffusion_pytorch_model*.bin", "pytorch_model*.bin"]
    allow += weights + [f"*/{w}" for w in weights]
    # variants, the safety checker and single-file checkpoints are large and never used here
    ignore = ["*.fp16.*", "*non_ema*", "*.msgpack", "*.onnx", "*.h5", "safety_checker/*"]
    return allow, ignore


def resolve_model(path: str | os.PathLike, *, trust_pickle: bool = False) -> Path:
    """A local folder holding the model: ``path`` itself, or a hub id fetched into the cache.

    Hub downloads take configs, tokenizers and safetensors weights only (pickle weights too
    when ``trust_pickle``). A name that is neither a folder nor reachable on the hub gives one
    :class:`~diffcore.errors.DiffcoreError` line.
    """
    local = Path(os.path.expanduser(str(path)))
    if local.is_dir():
        return local
    text = str(path)
    if local.exists():
        raise DiffcoreError(f"{text} is a file; expected a diffusers model folder (with config files) or a hub id")
    if not _REPO_ID.match(text) or text.startswith(".") or text.count("/") > 1:
        raise DiffcoreError(f"model {text!r} was not found: no such folder, and it is not a Hugging Face Hub id")
    try:
        from huggingface_hub import snapshot_download
    except ImportError as exc:  # pragma: no cover - huggingface_hub ships with diffusers
        raise ImportError('loading from the hub needs huggingface_hub: pip install "diffcore[diffusers]"') from exc
    allow, ignore = _hub_patterns(trust_pickle)
    try:
        return Path(snapshot_download(text, allow_patterns=allow, ignore_patterns=ignore))
    except Exception as exc:  # offline, unknown repo, gated repo, ...: all end the same way
        raise DiffcoreError(f"model {text!r} was not found locally and hub access failed ({_one_line(exc)})") from None


def from_pretrained(
    cls, folder: str | os.PathLike, *, subfolder: str | None = None, trust_pickle: bool = False, weights: bool = True, **options
):
    """``cls.from_pretrained`` on a checked local folder, with loader errors as :class:`CheckpointError`.

    For classes that load weights (``weights=True``; not tokenizers) ``use_safetensors=True`` is
    passed unless ``trust_pickle`` (then the loader may fall back to pickle files, which
    diffusers and transformers read with ``weights_only=True``).
    """
    folder = Path(folder)
    where = folder / subfolder if subfolder else folder
    if not where.is_dir():
        raise CheckpointError(f"{folder} has no {subfolder!r} folder; expected a diffusers model folder")
    if weights and not trust_pickle:
        options["use_safetensors"] = True
    if subfolder:
        options["subfolder"] = subfolder
    from safetensors import SafetensorError

    try:
        return cls.from_pretrained(str(folder), local_files_only=True, **options)
    except DiffcoreError:
        raise
    except (OSError, ValueError, RuntimeError, KeyError, TypeError, SafetensorError) as exc:
        raise CheckpointError(f"cannot load {cls.__name__} from {where}: {_one_line(exc)}") from None
