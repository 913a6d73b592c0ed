"""A diffcore prior from a diffusers ``UNet2DModel`` and its scheduler config.

The scheduler config fixes the forward process: its betas become a
:class:`~diffcore.schedules.DiscreteSchedule` (:func:`schedule_from_config`), so that training
step ``i`` sits at ``t = (i + 1) / T`` and the network is fed ``i = t T - 1``. The network's
output is read according to the config's ``prediction_type``:

- ``epsilon``: the noise, ``x0 = (x_t - sigma eps) / alpha``;
- ``v_prediction``: ``v = alpha eps - sigma x0`` (Salimans & Ho 2022);
- ``sample``: ``x0`` itself.

If the config asks for ``clip_sample``, ``x0`` is clamped to ``±clip_sample_range`` while
``eps`` stays the network's, which is what diffusers' ``DDIMScheduler`` does by default
(``use_clipped_model_output=False``); with ``thresholding`` it applies the dynamic
thresholding of Saharia et al. (2022) instead. Either way ``x_t = alpha x0 + sigma eps`` no
longer holds exactly and the prior says so (``consistent = False``).

Driven by :func:`diffcore.samplers.ddim` with the scheduler's own spacing (``leading``,
diffusers' default), this prior reproduces ``DDIMPipeline`` step for step. With ``trailing``
or ``linspace`` spacing diffusers' DDIM steps from ``t`` to ``t - T // steps`` rather than to
the next grid point; diffcore steps to the next grid point.

>>> s = schedule_from_config({"beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012,
...                           "steps_offset": 1, "set_alpha_to_one": False})
>>> s.model_time(s.timesteps(4)[:-1])
tensor([751., 501., 251.,   1.], dtype=torch.float64)
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch

from diffcore.errors import CheckpointError, DiffcoreError, ShapeError
from diffcore.protocols import Cond, Prediction, PriorBase, check_cond
from diffcore.schedules import DiscreteSchedule

PREDICTION_TYPES = ("epsilon", "v_prediction", "sample")
# schedulers whose config does not describe a discrete DDPM forward process
_NOT_DDPM = {
    "ScoreSdeVeScheduler",
    "KarrasVeScheduler",
    "EDMEulerScheduler",
    "EDMDPMSolverMultistepScheduler",
    "CMStochasticIterativeScheduler",
}


def _config_dict(config) -> dict:
    """A plain dict from a dict, a diffusers config (FrozenDict) or a scheduler object."""
    if hasattr(config, "config") and not isinstance(config, Mapping):
        config = config.config
    if not isinstance(config, Mapping):
        raise DiffcoreError(f"scheduler config must be a mapping or a diffusers scheduler, got {type(config).__name__}")
    return dict(config)


def _betas(config: dict, T: int) -> torch.Tensor:
    """The betas exactly as diffusers builds them (float32), so alphas_cumprod matches bitwise."""
    if config.get("trained_betas") is not None:
        betas = torch.tensor(config["trained_betas"], dtype=torch.float32)
        if betas.shape != (T,):
            raise DiffcoreError(f"trained_betas has {betas.numel()} values; expected num_train_timesteps={T}")
        return betas
    kind = config.get("beta_schedule", "linear")
    start, end = float(config.get("beta_start", 0.0001)), float(config.get("beta_end", 0.02))
    if kind == "linear":
        return torch.linspace(start, end, T, dtype=torch.float32)
    if kind == "scaled_linear":
        return torch.linspace(start**0.5, end**0.5, T, dtype=torch.float32) ** 2
    if kind == "squaredcos_cap_v2":  # Nichol & Dhariwal (2021) eq. 17, s = 0.008, betas capped at 0.999

        def f(u):
            return math.cos((u + 0.008) / 1.008 * math.pi / 2) ** 2

        return torch.tensor([min(1 - f((i + 1) / T) / f(i / T), 0.999) for i in range(T)], dtype=torch.float32)
    raise DiffcoreError(f"unsupported beta_schedule {kind!r}; supported: linear, scaled_linear, squaredcos_cap_v2, or trained_betas")


@dataclass(frozen=True, eq=False)
class DiffusersSchedule(DiscreteSchedule):
    """A :class:`DiscreteSchedule` whose values on the training grid are diffusers' own.

    diffusers' schedulers compute ``alpha_bar ** 0.5`` and ``(1 - alpha_bar) ** 0.5`` in
    float32 on 0-d tensors, which differs from the correctly rounded values in the last bit for
    about a fifth of the steps. An untrained test network can amplify such a bit over a few dozen steps, so
    at ``t = (i + 1) / T`` this schedule returns exactly those float32 values (held in float64);
    between grid points it interpolates as :class:`DiscreteSchedule` does.
    """

    _alpha_grid: torch.Tensor = field(init=False, repr=False)
    _sigma_grid: torch.Tensor = field(init=False, repr=False)
    _memo: dict = field(init=False, repr=False)

    def __post_init__(self):
        super().__post_init__()
        # One 0-d operation per step, as a scheduler's step() does: a vectorised pow may round
        # differently from the scalar one on some CPUs.
        ab = self.alphas_cumprod.float()
        object.__setattr__(self, "_alpha_grid", torch.stack([a**0.5 for a in ab]).double())
        object.__setattr__(self, "_sigma_grid", torch.stack([(1 - a) ** 0.5 for a in ab]).double())
        # A sampler asks for the same few scalar times at every step; a dozen tiny tensor ops
        # per lookup cost more than the update itself, so scalar results are memoised.
        object.__setattr__(self, "_memo", {})

    def _scalar_key(self, t):
        if isinstance(t, (float, int)):
            return float(t), torch.float64
        if isinstance(t, torch.Tensor) and t.ndim == 0 and t.device.type == "cpu" and t.is_floating_point() and not t.requires_grad:
            return float(t), t.dtype
        return None

    def _lookup(self, t, which: int) -> torch.Tensor:
        key = self._scalar_key(t)
        if key is None:
            value = DiscreteSchedule.alpha(self, t) if which == 0 else DiscreteSchedule.sigma(self, t)
            return self._on_grid(t, value, self._alpha_grid if which == 0 else self._sigma_grid)
        pair = self._memo.get(key)
        if pair is None:
            tt = torch.tensor(key[0], dtype=key[1])
            pair = (
                self._on_grid(tt, DiscreteSchedule.alpha(self, tt), self._alpha_grid),
                self._on_grid(tt, DiscreteSchedule.sigma(self, tt), self._sigma_grid),
            )
            if len(self._memo) < 4096:
                self._memo[key] = pair
        return pair[which].clone()  # a caller may modify it in place; the memo must not change

    def _on_grid(self, t, value: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
        t = torch.as_tensor(t)
        pos = t.double() * self.num_train_timesteps
        step = pos.round()
        hit = ((pos - step).abs() < 1e-6) & (step >= 1)
        index = (step.clamp(1, self.num_train_timesteps) - 1).long()
        return torch.where(hit, grid.to(value.device)[index].to(value.dtype), value)

    def init_std(self, t) -> torch.Tensor:
        """Exactly 1 (diffusers' ``init_noise_sigma``): ``alpha^2 + sigma^2 = 1`` holds exactly for
        a DDPM schedule, and the last-bit rounding of the two float32 values must not rescale the
        starting noise."""
        return torch.ones_like(torch.as_tensor(t, dtype=torch.float64))

    def alpha(self, t) -> torch.Tensor:
        return self._lookup(t, 0)

    def sigma(self, t) -> torch.Tensor:
        return self._lookup(t, 1)


def schedule_from_config(config) -> DiscreteSchedule:
    """The :class:`DiscreteSchedule` of a diffusers scheduler config (dict or scheduler).

    Reads ``num_train_timesteps``, ``beta_schedule`` (``linear``, ``scaled_linear``,
    ``squaredcos_cap_v2``) or ``trained_betas``, ``beta_start``/``beta_end``,
    ``timestep_spacing``, ``steps_offset`` and ``set_alpha_to_one`` (defaults as in
    ``DDIMScheduler``). ``alphas_cumprod`` is computed in float32 as diffusers does.
    """
    config = _config_dict(config)
    name = config.get("_class_name")
    if name in _NOT_DDPM:
        raise DiffcoreError(
            f"{name} does not describe a discrete DDPM schedule; the diffusers prior needs a DDPM/DDIM-style scheduler config"
        )
    if config.get("rescale_betas_zero_snr"):
        raise DiffcoreError("rescale_betas_zero_snr (zero terminal SNR) is not supported: alpha(1) = 0 has no finite x0 for eps-prediction")
    T = int(config.get("num_train_timesteps", 1000))
    alphas_cumprod = torch.cumprod(1.0 - _betas(config, T), dim=0)
    return DiffusersSchedule(
        alphas_cumprod.double(),
        spacing=config.get("timestep_spacing") or "leading",
        steps_offset=int(config.get("steps_offset", 0) or 0),
        final_alpha_one=bool(config.get("set_alpha_to_one", True)),
    )


def _dtype(dtype) -> torch.dtype | None:
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    value = getattr(torch, str(dtype).removeprefix("torch."), None)
    if not isinstance(value, torch.dtype):
        raise DiffcoreError(f"unknown dtype {dtype!r}; use e.g. float32, float16 or bfloat16")
    return value


def _first(value, n: int, what: str, dims: int):
    """Broadcast a batch of 1 to n; reject any other batch size than n."""
    if value.ndim != dims:
        raise ShapeError(f"{what} has shape {tuple(value.shape)}; expected {dims} dimensions with batch first")
    if value.shape[0] == 1 and n > 1:
        return value.expand(n, *value.shape[1:])
    if value.shape[0] != n:
        raise ShapeError(f"{what} has batch {value.shape[0]}; expected 1 or {n} to match x_t")
    return value


class DiffusersUNetPrior(PriorBase):
    """A pixel prior: a diffusers ``UNet2DModel`` read through its scheduler config.

    Args:
        unet: a ``UNet2DModel`` (class-conditional ones accept ``Cond(labels=...)``).
        scheduler_config: the scheduler's config dict, or the scheduler itself.
        device, dtype: where and in what precision the network runs (default: where it is,
            float32). Predictions come back in ``x_t``'s dtype.
        clip_x0: clamp ``x0`` to ``±clip_sample_range`` (eps stays the network's). ``None``
            follows the config: ``clip_sample``, or dynamic ``thresholding``; absent keys mean
            no clipping (schedulers such as PNDM or Euler do not clip).
        channels_last: run the network's convolutions in channels-last memory format (about 1.5x
            faster for the zoo's small UNets on a CPU; the values agree with the default layout
            up to float rounding, so off by default: with it off, samples match diffusers'
            pipelines to 1e-5). Inputs and outputs stay in the usual layout.
        null_label: for a class-conditional UNet trained with label dropout, the label that means
            "no class" (it makes ``null_cond``); class_names: the names of its labels.
        owned: the prior owns ``unet`` (the loaders pass True): it is put in eval mode with its
            parameters frozen once. Otherwise (a module you pass in) the prior never changes its
            mode or ``requires_grad``: each ``predict`` runs it in eval mode and restores the mode
            after, and where parameters require gradients it runs on detached copies of them, so
            ``predict`` is differentiable in ``x_t`` only. ``device`` and ``dtype`` move the module
            you pass (``Module.to`` works in place), as diffusers' pipelines do.

    ``predict`` takes ``x_t`` of shape (N, C, H, W) (any H, W the network accepts; the
    trained size is ``sample_shape``) and ``t`` in [0, 1] as a float, 0-d or (N,) tensor.
    ``t`` is mapped to the timestep ``t T - 1`` in float64, rounded to the nearest integer
    when within 1e-4 of one and clamped to ``[0, T - 1]``. ``network`` is the torch module.
    """

    latent = None
    name = "diffusers"

    def __init__(
        self,
        unet,
        scheduler_config,
        device=None,
        dtype=None,
        clip_x0: bool | None = None,
        channels_last: bool = False,
        null_label: int | None = None,
        class_names=None,
        owned: bool = False,
    ):
        config = _config_dict(scheduler_config)
        self.scheduler_config = config
        self.schedule = schedule_from_config(config)
        self.prediction_type = config.get("prediction_type", "epsilon")
        if self.prediction_type not in PREDICTION_TYPES:
            raise DiffcoreError(f"unsupported prediction_type {self.prediction_type!r}; supported: {', '.join(PREDICTION_TYPES)}")
        if clip_x0 is None:
            self.clip_x0 = bool(config.get("clip_sample", False)) and not config.get("thresholding", False)
            self.threshold_x0 = bool(config.get("thresholding", False))
        else:
            self.clip_x0, self.threshold_x0 = bool(clip_x0), False
        self.clip_range = float(config.get("clip_sample_range", 1.0))
        self.threshold_ratio = float(config.get("dynamic_thresholding_ratio", 0.995))
        self.threshold_max = float(config.get("sample_max_value", 1.0))
        self.consistent = not (self.clip_x0 or self.threshold_x0)
        self._memo: dict = {}

        dtype = _dtype(dtype)
        if device is not None:
            unet = unet.to(device)
        if dtype is not None:
            unet = unet.to(dtype)
        self.owned = bool(owned)
        if self.owned:
            unet = unet.eval().requires_grad_(False)
        self.network = unet
        param = next(unet.parameters())
        self.device, self.dtype = param.device, param.dtype
        self.channels_last = bool(channels_last)
        if self.channels_last:
            self.network = self.network.to(memory_format=torch.channels_last)
        ucfg = unet.config
        size = ucfg.sample_size
        size = (int(size), int(size)) if isinstance(size, int) else tuple(int(s) for s in size)
        self.in_channels = int(ucfg.in_channels)
        self.sample_shape = (self.in_channels, *size)
        self.accepts = self._accepts()
        self.null_label = None if null_label is None else int(null_label)
        self.class_names = None if class_names is None else tuple(str(c) for c in class_names)
        if "labels" in self.accepts:
            self.null_cond = None if self.null_label is None else Cond(labels=torch.tensor([self.null_label]))

    @property
    def unet(self):
        """The network (the name diffusers uses); the same object as ``network``."""
        return self.network

    def _run(self, *args, **kwargs):
        """Call the network for a prediction: eval mode, no parameter gradients, the caller's module unchanged."""
        net = self.network
        if self.owned and not net.training:
            if not any(p.requires_grad for p in net.parameters()):
                return net(*args, **kwargs)
        was_training = net.training
        if was_training:
            net.eval()
        try:
            if any(p.requires_grad for p in net.parameters()):
                from torch.func import functional_call

                state = {k: v.detach() for k, v in [*net.named_parameters(), *net.named_buffers()]}
                return functional_call(net, state, args, kwargs)
            return net(*args, **kwargs)
        finally:
            if was_training:
                net.train()

    def _accepts(self) -> frozenset[str]:
        cfg = self.unet.config
        conditional = getattr(cfg, "num_class_embeds", None) is not None or getattr(cfg, "class_embed_type", None) is not None
        return frozenset({"labels"}) if conditional else frozenset()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(sample_shape={self.sample_shape}, prediction_type={self.prediction_type!r}, "
            f"T={self.schedule.num_train_timesteps}, device={self.device})"
        )

    # -- time ---------------------------------------------------------------------------
    def _coefficients(self, t, x_t):
        """``alpha(t)``, ``sigma(t)`` in x_t's dtype and the network's timestep (memoised for scalar t).

        The timestep ``t T - 1`` is computed in float64, snapped to the nearest integer within
        1e-4 and clamped to [0, T - 1]; integer steps go to the network as int64, exactly what
        diffusers feeds it.
        """
        scalar = not isinstance(t, torch.Tensor) or t.ndim == 0
        if scalar:
            key = (float(t), x_t.dtype, x_t.device)
            hit = self._memo.get(key)
            if hit is not None:
                return hit
        t64 = torch.as_tensor(t, dtype=torch.float64).detach().cpu()
        if t64.ndim > 1 or (t64.ndim == 1 and t64.shape[0] != x_t.shape[0]):
            raise DiffcoreError(f"t has shape {tuple(t64.shape)}; expected a scalar or ({x_t.shape[0]},) to match x_t")
        T = self.schedule.num_train_timesteps
        step = self.schedule.model_time(t64)
        nearest = step.round()
        step = torch.where((step - nearest).abs() < 1e-4, nearest, step).clamp(0, T - 1)
        timestep = step.long() if bool((step == step.round()).all()) else step.float()
        alpha = self.schedule.alpha(t64).to(x_t.dtype)
        sigma = self.schedule.sigma(t64).to(x_t.dtype)
        if t64.ndim == 1:  # a 0-d CPU tensor multiplies tensors on any device; (N,) ones must move
            alpha, sigma = alpha.to(x_t.device), sigma.to(x_t.device)
        timestep = timestep.to(x_t.device)  # memoised on the device for scalar t: no copy per network call
        result = (alpha, sigma, timestep)
        if scalar and len(self._memo) < 4096:
            self._memo[key] = result
        return result

    # -- the network --------------------------------------------------------------------
    def _network(self, x, timestep, cond: Cond | None, direct: bool = False) -> torch.Tensor:
        labels = None
        if self.accepts:
            if cond is None or cond.labels is None:
                raise DiffcoreError("this UNet is class-conditional: pass cond=Cond(labels=...) with class indices")
            labels = _first(torch.as_tensor(cond.labels, device=x.device), x.shape[0], "cond.labels", 1)
        run = self.network if direct else self._run
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
            return run(x, timestep, class_labels=labels, return_dict=False)[0].contiguous()
        return run(x, timestep, class_labels=labels, return_dict=False)[0]

    def _check_x(self, x_t):
        if not isinstance(x_t, torch.Tensor) or x_t.ndim != 4 or x_t.shape[1] != self.in_channels:
            shape = tuple(x_t.shape) if isinstance(x_t, torch.Tensor) else type(x_t).__name__
            raise ShapeError(
                f"x_t has shape {shape}; expected (N, {self.in_channels}, H, W), e.g. (N, {', '.join(map(str, self.sample_shape))})"
            )

    def predict(self, x_t: torch.Tensor, t, cond: Cond | None = None) -> Prediction:
        """``Prediction(x0, eps)`` at ``(x_t, t)``; differentiable in ``x_t``."""
        check_cond(self.name, self.accepts, cond)
        self._check_x(x_t)
        alpha, sigma, timestep = self._coefficients(t, x_t)
        out = self._network(x_t.to(self.dtype), timestep, cond).to(x_t.dtype)
        if out.shape[1] == 2 * x_t.shape[1]:  # learned variance: the second half is not used here
            out = out[:, : x_t.shape[1]]
        if self.prediction_type == "epsilon":
            pred = Prediction.from_eps(x_t, out, alpha, sigma)
        elif self.prediction_type == "v_prediction":
            pred = Prediction.from_v(x_t, out, alpha, sigma)
        else:
            pred = Prediction.from_x0(x_t, out, alpha, sigma)
        return self._limit(pred)

    def network_output(self, x_t: torch.Tensor, t, cond: Cond | None = None) -> torch.Tensor:
        """The network's raw output at ``(x_t, t)`` in its ``prediction_type``, for training.

        Unlike ``predict``, this calls ``network`` as it is (its mode, its ``requires_grad``), so
        the output has gradients to the parameters being trained; it comes back in the network's
        dtype. A learned-variance network's second half of channels is dropped, as in ``predict``.
        """
        check_cond(self.name, self.accepts, cond)
        self._check_x(x_t)
        _, _, timestep = self._coefficients(t, x_t)
        out = self._network(x_t.to(self.dtype), timestep, cond, direct=True)
        return out[:, : x_t.shape[1]] if out.shape[1] == 2 * x_t.shape[1] else out

    def _limit(self, pred: Prediction) -> Prediction:
        """Clip or threshold x0 as the scheduler config asks, keeping eps."""
        if self.clip_x0:
            return dataclasses.replace(pred, x0=pred.x0.clamp(-self.clip_range, self.clip_range))
        if self.threshold_x0:  # Saharia et al. (2022): per-sample percentile s of |x0|, clamp to ±s, divide by s
            x0 = pred.x0
            flat = x0.reshape(x0.shape[0], -1).float().abs()
            s = torch.quantile(flat, self.threshold_ratio, dim=1).clamp(1.0, self.threshold_max)
            s = s.reshape(-1, *([1] * (x0.ndim - 1))).to(x0.dtype)
            return dataclasses.replace(pred, x0=torch.maximum(torch.minimum(x0, s), -s) / s)
        return pred


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"cannot read {path}: {exc}") from None


def find_scheduler_config(folder: Path, subfolder: str | None = None) -> dict:
    """The scheduler config of a pipeline folder (``scheduler/``) or a flat model folder."""
    candidates = [folder / "scheduler" / "scheduler_config.json"]
    if subfolder:
        candidates.append(folder / subfolder / "scheduler_config.json")
    candidates.append(folder / "scheduler_config.json")
    for c in candidates:
        if c.is_file():
            return _read_json(c)
    raise CheckpointError(f"{folder} has no scheduler config (looked for scheduler/scheduler_config.json and scheduler_config.json)")


def load_unet_prior(
    path,
    subfolder: str | None = None,
    device=None,
    dtype=None,
    trust_pickle: bool = False,
    clip_x0: bool | None = None,
    channels_last: bool = False,
    null_label: int | None = None,
    class_names=None,
) -> DiffusersUNetPrior:
    """Load a :class:`DiffusersUNetPrior` from a local folder or a Hugging Face Hub id.

    The folder is either what ``DDPMPipeline``/``DDIMPipeline.save_pretrained`` writes
    (``unet/`` and ``scheduler/``) or a flat folder holding the UNet's ``config.json``, its
    weights and a ``scheduler_config.json``; ``subfolder`` names the UNet's folder explicitly.
    Weights load from safetensors only unless ``trust_pickle=True``.
    """
    from diffcore.weights import check_model_folder, from_pretrained, resolve_model

    folder = resolve_model(path, trust_pickle=trust_pickle)
    if subfolder is None:
        if (folder / "unet" / "config.json").is_file():
            subfolder = "unet"
        elif not (folder / "config.json").is_file():
            raise CheckpointError(f"{folder} holds no UNet config (expected unet/config.json or config.json)")
    config = _read_json(folder / subfolder / "config.json" if subfolder else folder / "config.json")
    kind = config.get("_class_name", "UNet2DModel")
    if kind != "UNet2DModel":
        hint = "; use the stable-diffusion prior" if kind == "UNet2DConditionModel" else ""
        raise CheckpointError(f"{folder} holds a {kind}; the diffusers prior needs a UNet2DModel{hint}")
    scheduler_config = find_scheduler_config(folder, subfolder)
    check_model_folder(folder, trust_pickle=trust_pickle, components=[subfolder or ""])
    try:
        from diffusers import UNet2DModel
    except ImportError as exc:
        raise ImportError('the diffusers prior needs diffusers: pip install "diffcore[diffusers]"') from exc
    unet = from_pretrained(UNet2DModel, folder, subfolder=subfolder, trust_pickle=trust_pickle)
    return DiffusersUNetPrior(
        unet,
        scheduler_config,
        device=device,
        dtype=dtype,
        clip_x0=clip_x0,
        channels_last=channels_last,
        null_label=null_label,
        class_names=class_names,
        owned=True,
    )
