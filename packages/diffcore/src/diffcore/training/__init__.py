"""Fine-tuning priors: the trainable contract's tools and one training loop.

A :class:`~diffcore.protocols.Trainable` prior (the diffusers adapters, the zoo priors) exposes
its ``network``, ``prediction_type``, ``schedule`` and ``network_output``. On top of that:

- :func:`denoising_loss` (``loss``): the MSE to the target in the prior's own parameterisation, at
  times from :func:`draw_times` (a discrete schedule's training grid), for losses of one's own too;
- :func:`train_only`, :func:`frozen_copy` (``parameters``): what trains, and a frozen teacher;
- :func:`add_lora`, :func:`lora_disabled`, :func:`set_lora_enabled` (``lora``): LoRA through peft;
- :func:`save_finetuned`, :func:`load_finetuned` (``finetuned``): the trained tensors as
  safetensors, loaded back as the prior ``finetuned``;
- :func:`fit` (``loop``): optimiser, learning-rate schedule (``lr_schedule``), :class:`EMA`
  (``ema``), accumulation, mixed precision, progress (``progress``), time budget, resumable
  checkpoints (``checkpoint``) and several processes (``processes``).
"""

from diffcore.training.ema import EMA, ema_decay
from diffcore.training.finetuned import load_finetuned, read_finetuned, save_finetuned
from diffcore.training.loop import TrainingRecord, device_name, fit
from diffcore.training.lora import add_lora, lora_disabled, lora_parameters, lora_settings, set_lora_enabled
from diffcore.training.loss import denoising_loss, draw_times, min_snr_weights
from diffcore.training.lr_schedule import lr_factor
from diffcore.training.parameters import frozen_copy, train_only, trainable_parameters
from diffcore.training.processes import training_device

__all__ = [
    "EMA",
    "TrainingRecord",
    "add_lora",
    "denoising_loss",
    "device_name",
    "draw_times",
    "ema_decay",
    "fit",
    "frozen_copy",
    "load_finetuned",
    "lora_disabled",
    "lora_parameters",
    "lora_settings",
    "lr_factor",
    "min_snr_weights",
    "read_finetuned",
    "save_finetuned",
    "set_lora_enabled",
    "train_only",
    "trainable_parameters",
    "training_device",
]
