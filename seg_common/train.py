"""Train from the command line, on one GPU or many: ``python -m seg_common.train`` (``seg-train``).

    seg-train --config configs/06_deeplabv3plus.yaml --epochs 30 --output_dir runs/cli/deeplab
    torchrun --nproc_per_node=4 -m seg_common.train --config configs/06_deeplabv3plus.yaml
    seg-train --help            # every key: type, default, meaning
    seg-train --config configs/sample/voc_fcn.yaml --print-config

The configuration is :class:`TrainConfig`: its defaults, then a YAML file (``--config``), then
``--key value`` overrides. Every key is checked before anything is built; a mistake gets an error
that names the key, the valid values and the nearest valid name.

Training runs the notebooks' engine (:func:`seg_common.engine.fit`): the same ``last.pt`` /
``best.pt`` in ``output_dir``, the same ``resume`` (``auto``: continue when ``last.pt`` is there),
the run recorded with ``save_run`` (``run.json``, ``weights.pt``) at the end. Under ``torchrun``
each process trains a DistributedDataParallel copy on ``batch`` images (see
:mod:`seg_common.distributed`); ``lr`` is the rate of the whole batch, ``batch x processes`` images.
"""
from __future__ import annotations

import argparse
import dataclasses
import difflib
import sys
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

DATASETS = ("voc", "voc-aug", "cityscapes", "ade20k")
OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("poly", "onecycle", "constant")
LOSSES = ("ce", "lovasz")
PROFILES = ("auto", "sample", "full")
DEVICES = ("auto", "cpu", "cuda", "mps")
AMP = ("auto", "true", "false", "bf16", "fp16")
RESUME = ("auto", "true", "false")
# Keys that say how or where to run, not what is trained: a resume may change them.
NOT_SETTINGS = ("profile", "data_root", "cache", "workers", "device", "output_dir", "resume", "epochs",
                "tensorboard", "progress", "batch")


def _key(default: Any, meaning: str, choices: Sequence[Any] | None = None) -> Any:
    metadata = {"help": meaning, "choices": tuple(choices) if choices else None}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=metadata)
    return field(default=default, metadata=metadata)


def _models() -> tuple[str, ...]:
    from .models import MODELS

    return tuple(MODELS)


@dataclass
class TrainConfig:
    """One training run. The defaults are a small run of the sample data on a CPU."""

    # what is trained
    model: str = _key("deeplabv3plus_resnet18", "the network, one of seg_common.models.MODELS "
                      "(the _os8 variants: output stride 8)")
    pretrained: bool = _key(False, "start the backbone from ImageNet weights (torchvision downloads them)")
    atrous_rates: Optional[list[int]] = _key(None, "DeepLabV3+ only: the ASPP rates (null: 6,12,18 at "
                                             "output stride 16, 12,24,36 at 8)")
    separable: bool = _key(False, "DeepLabV3+ only: depthwise-separable 3x3 convolutions in ASPP and decoder")
    aux_weight: float = _key(0.4, "PSPNet only: weight of the auxiliary loss on layer3 (0: no auxiliary head)")
    # the data
    dataset: str = _key("voc", "voc (VOC 2012 train), voc-aug (VOC + SBD, train_aug), cityscapes, ade20k",
                        choices=DATASETS)
    profile: str = _key("auto", "sample: the offline sample datasets (built when missing); full: the real "
                        "ones (download_data.sh); auto: SEG_PROFILE, else full when real VOC is present",
                        choices=PROFILES)
    data_root: str = _key("", "the data folder (empty: SEG_DATA, else data/ of the checkout)")
    scale: float = _key(1.0, "Cityscapes only: downscale factor applied when frames are read (0.25: 512x256)")
    train_images: int = _key(0, "train on the first N training images only (0: all; for smoke tests)")
    val_images: int = _key(0, "validate on the first N validation images only (0: all)")
    cache: bool = _key(False, "keep decoded images in memory (small datasets only)")
    # augmentation (seg_common.data.transforms.train_transforms)
    crop: list[int] = _key([128, 128], "training crop [height, width] (images smaller than the crop "
                           "are padded with void)")
    base_size: int = _key(150, "the shorter side is rescaled to a random length in scales x base_size")
    scales: list[float] = _key([0.75, 1.25], "[low, high] multiples of base_size for the random rescale")
    rotation: float = _key(0.0, "maximum random rotation in degrees (0: none)")
    hflip: float = _key(0.5, "probability of a horizontal flip")
    blur: float = _key(0.0, "probability of a Gaussian blur (0: none)")
    color_jitter: float = _key(0.0, "strength of brightness/contrast/saturation jitter (0: none)")
    eval_size: Optional[int] = _key(None, "validate with the shorter side resized to this (null: native size)")
    # optimisation
    batch: int = _key(8, "images per batch in each process (torchrun: the whole batch is batch x processes)")
    epochs: int = _key(4, "passes over the training set")
    optimizer: str = _key("adamw", "sgd (with momentum) or adamw", choices=OPTIMIZERS)
    lr: float = _key(3e-3, "learning rate of the whole batch (poly: the first rate; onecycle: the peak)")
    momentum: float = _key(0.9, "SGD's momentum (0: plain SGD)")
    weight_decay: float = _key(1e-4, "weight decay")
    backbone_lr_scale: float = _key(1.0, "backbone rate = lr x this (DeepLabV3+, PSPNet; 0.1 for a "
                                    "pretrained backbone)")
    schedule: str = _key("onecycle", "poly (power 0.9), onecycle (torch's defaults) or constant, stepped "
                         "per iteration", choices=SCHEDULES)
    loss: str = _key("ce", "ce (cross-entropy over labelled pixels) or lovasz (Lovasz-Softmax)", choices=LOSSES)
    amp: str = _key("auto", "number format: auto (mixed precision where the device has fast 16-bit "
                    "units), true, false (float32), bf16, fp16", choices=AMP)
    freeze_bn: bool = _key(False, "keep every BatchNorm in eval mode (running statistics fixed)")
    sync_bn: bool = _key(True, "torchrun on GPUs: SyncBatchNorm, statistics over the whole batch "
                         "(ignored on CPUs, where PyTorch's SyncBatchNorm does not run)")
    seed: int = _key(0, "seed of the initial weights and of the batches (order, crops, flips)")
    # running
    device: str = _key("auto", "auto (CUDA, then MPS, then CPU), cpu, cuda, mps", choices=DEVICES)
    workers: int = _key(0, "data-loading processes per training process")
    eval_every: int = _key(1, "validate every N epochs (and after the last)")
    output_dir: str = _key("", "checkpoints (last.pt, best.pt), run.json and TensorBoard logs (empty: "
                           "runs/cli/<dataset>_<model>_seed<seed>)")
    resume: str = _key("auto", "auto: continue from output_dir/last.pt when it exists; true: it must "
                       "exist; false: start anew (refused when last.pt exists)", choices=RESUME)
    tensorboard: bool = _key(True, "write TensorBoard logs to output_dir/tensorboard (needs tensorboard)")
    progress: bool = _key(True, "progress bars (rank 0 only)")


class ConfigError(ValueError):
    """A configuration key or value that cannot work; the message names the key and the fix."""


def _fields() -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(TrainConfig)}


def _types() -> dict[str, Any]:
    return typing.get_type_hints(TrainConfig)


def _type_name(tp: Any) -> str:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Union:
        inner = [a for a in args if a is not type(None)]
        return f"{_type_name(inner[0])} or null"
    if origin is list:
        return f"list of {_type_name(args[0])}"
    return tp.__name__


def _suggest(word: str, valid: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, list(valid), n=3, cutoff=0.5)
    if not close:                                  # "deeplab": the names that contain it
        close = [v for v in valid if word and word.lower() in v.lower()][:3]
    return f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


def _coerce(key: str, value: Any, tp: Any) -> Any:
    """``value`` as the type ``tp`` of ``key``, or a ConfigError that says what was expected."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Union:
        if value is None:
            return None
        return _coerce(key, value, [a for a in args if a is not type(None)][0])
    wrong = ConfigError(f"{key}: expected {_type_name(tp)}, got {value!r} ({type(value).__name__}).")
    if origin is list:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = [value]
        if not isinstance(value, (list, tuple)):
            raise wrong
        try:
            return [_coerce(key, item, args[0]) for item in value]
        except ConfigError:
            raise wrong from None
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise wrong
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise wrong
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise wrong
    if tp is str:
        if isinstance(value, bool) and key in ("amp", "resume"):   # YAML reads `true` as a bool
            return "true" if value else "false"
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise wrong
    raise TypeError(f"no coercion for {tp}")


def _parse_value(text: str) -> Any:
    """A command-line value read as YAML: ``0.01`` is a float, ``true`` a bool, ``64,64`` or
    ``[64, 64]`` a list, ``null`` None, anything else a string."""
    import yaml

    if "," in text and not text.lstrip().startswith("["):
        text = f"[{text}]"
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def check_keys(values: dict[str, Any], source: str) -> None:
    """Unknown keys: an error naming the key, where it came from and the nearest valid keys."""
    known = _fields()
    for key in values:
        if key not in known:
            raise ConfigError(f"unknown key {key!r} in {source}.{_suggest(str(key), list(known))} "
                              f"Valid keys: {', '.join(known)} (seg-train --help explains each).")


def build_config(values: dict[str, Any]) -> TrainConfig:
    """A validated :class:`TrainConfig` from plain values (a YAML file's, the overrides)."""
    check_keys(values, "the configuration")
    types = _types()
    config = TrainConfig(**{key: _coerce(key, value, types[key]) for key, value in values.items()})
    validate(config)
    return config


def _choice(config: TrainConfig, key: str, valid: Sequence[str]) -> None:
    value = getattr(config, key)
    if value not in valid:
        raise ConfigError(f"{key}: {value!r} is not one of {', '.join(valid)}.{_suggest(str(value), valid)}")


def _model_family(name: str) -> str:
    return name.split("_")[0]


def validate(config: TrainConfig) -> None:
    """Every check that can be made before data or models are loaded."""
    models = _models()
    _choice(config, "model", models)
    for key, valid in (("dataset", DATASETS), ("profile", PROFILES), ("optimizer", OPTIMIZERS),
                       ("schedule", SCHEDULES), ("loss", LOSSES), ("amp", AMP), ("resume", RESUME),
                       ("device", DEVICES)):
        _choice(config, key, valid)
    positive = {"batch": config.batch, "epochs": config.epochs, "eval_every": config.eval_every,
                "base_size": config.base_size}
    for key, value in positive.items():
        if value < 1:
            raise ConfigError(f"{key}: must be at least 1, got {value}.")
    for key in ("workers", "train_images", "val_images", "weight_decay", "rotation", "color_jitter",
                "backbone_lr_scale", "aux_weight"):
        if getattr(config, key) < 0:
            raise ConfigError(f"{key}: must be 0 or more, got {getattr(config, key)}.")
    if config.lr <= 0:
        raise ConfigError(f"lr: must be positive, got {config.lr}.")
    for key in ("hflip", "blur"):
        if not 0 <= getattr(config, key) <= 1:
            raise ConfigError(f"{key}: a probability in [0, 1], got {getattr(config, key)}.")
    if not 0 <= config.momentum < 1:
        raise ConfigError(f"momentum: must be in [0, 1), got {config.momentum}.")
    if len(config.crop) != 2 or min(config.crop) < 1:
        raise ConfigError(f"crop: [height, width] of positive pixels, got {config.crop}.")
    if len(config.scales) != 2 or not 0 < config.scales[0] <= config.scales[1]:
        raise ConfigError(f"scales: [low, high] with 0 < low <= high, got {config.scales}.")
    if not 0 < config.scale <= 1:
        raise ConfigError(f"scale: a downscale factor in (0, 1], got {config.scale}.")
    if config.scale != 1 and config.dataset != "cityscapes":
        raise ConfigError(f"scale: only Cityscapes frames are downscaled when read (dataset is "
                          f"{config.dataset!r}); use base_size for the others.")
    if config.eval_size is not None and config.eval_size < 1:
        raise ConfigError(f"eval_size: a positive number of pixels or null, got {config.eval_size}.")
    family = _model_family(config.model)
    if family != "deeplabv3plus":
        for key in ("atrous_rates", "separable"):
            if getattr(config, key) not in (None, False):
                raise ConfigError(f"{key}: a DeepLabV3+ setting; model {config.model!r} has no ASPP. "
                                  "Remove the key or choose a deeplabv3plus_* model.")
    if config.atrous_rates is not None and (not config.atrous_rates or min(config.atrous_rates) < 1):
        raise ConfigError(f"atrous_rates: positive integers, got {config.atrous_rates}.")
    if config.backbone_lr_scale != 1 and family not in ("deeplabv3plus", "pspnet"):
        raise ConfigError(f"backbone_lr_scale: {config.model!r} has no separate `backbone` to train at "
                          "another rate (DeepLabV3+ and PSPNet have one); set it to 1.")
    from .distributed import launched_by_torchrun

    if not (launched_by_torchrun() and config.sync_bn and config.device != "cpu"):   # else: checked in run()
        check_single_image_batch(config, sync_bn=False)


def check_single_image_batch(config: TrainConfig, sync_bn: bool) -> None:
    """A batch of one image per process trains a model with BatchNorm after a global pooling only
    with SyncBatchNorm (statistics over all processes) or with BatchNorm frozen."""
    if config.batch == 1 and _model_family(config.model) in ("deeplabv3plus", "pspnet") \
            and not config.freeze_bn and not sync_bn:
        raise ConfigError(
            f"batch: 1 image per process cannot train {config.model!r}: its BatchNorm after a global pooling "
            "(ASPP's image pooling, PSPNet's 1x1 pyramid level) would normalise a single value per channel. "
            "Use batch 2 or more, freeze_bn: true, or (torchrun on GPUs) sync_bn: true.")


def _help_text() -> str:
    types, lines = _types(), []
    for name, f in _fields().items():
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        choices = f.metadata["choices"]
        if name == "model":
            choices = _models()
        shown = "null" if default is None else (str(default).lower() if isinstance(default, bool) else default)
        line = f"  --{name} ({_type_name(types[name])}, default {shown}): {f.metadata['help']}"
        if choices:
            line += f" [{', '.join(map(str, choices))}]"
        lines.append(line)
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> tuple[TrainConfig, bool]:
    """The configuration from the command line (defaults < ``--config`` file < ``--key value``)
    and whether ``--print-config`` was given. Raises ConfigError."""
    import yaml

    parser = argparse.ArgumentParser(
        prog="seg-train", allow_abbrev=False, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Train a segmentation model of the course (the notebooks' engine; torchrun for "
                    "several GPUs). Values are read as YAML: 0.01, true, null, 64,64.",
        epilog="configuration keys (in a --config YAML file, or as --key value):\n" + _help_text())
    parser.add_argument("--config", type=Path, help="a YAML file of keys (configs/ holds the recipes)")
    parser.add_argument("--print-config", action="store_true", help="print the resolved configuration and exit")
    for name in _fields():
        parser.add_argument(f"--{name}", dest=f"key_{name}", metavar="VALUE", default=argparse.SUPPRESS,
                            help=argparse.SUPPRESS)
    args, unknown = parser.parse_known_args(argv)
    for word in unknown:
        if word.startswith("-"):
            key = word.lstrip("-").split("=")[0]
            options = list(_fields()) + ["config", "print-config"]
            raise ConfigError(f"unknown key {key!r} on the command line.{_suggest(key, options)} "
                              "seg-train --help lists every key.")
        raise ConfigError(f"unexpected value {word!r} on the command line: keys are given as --key value.")
    values: dict[str, Any] = {}
    if args.config is not None:
        if not args.config.is_file():
            raise ConfigError(f"--config: no file {args.config}.")
        loaded = yaml.safe_load(args.config.read_text()) or {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"--config: {args.config} must hold `key: value` lines, not {type(loaded).__name__}.")
        check_keys(loaded, str(args.config))
        values.update(loaded)
    for name in _fields():
        if hasattr(args, f"key_{name}"):
            values[name] = _parse_value(getattr(args, f"key_{name}"))
    return build_config(values), args.print_config


def to_yaml(config: TrainConfig) -> str:
    import yaml

    return yaml.safe_dump(dataclasses.asdict(config), sort_keys=False, default_flow_style=None)


# ---------------------------------------------------------------------------------------------
# Building the run
# ---------------------------------------------------------------------------------------------

def output_dir(config: TrainConfig) -> Path:
    from .profile import runs_dir

    if config.output_dir:
        return Path(config.output_dir).expanduser()
    return runs_dir() / "cli" / f"{config.dataset}_{config.model}_seed{config.seed}"


def _profile(config: TrainConfig):
    """The data profile: SEG_PROFILE / SEG_DATA as the notebooks read them, overridden by the
    configuration's ``profile`` and ``data_root``."""
    import os

    from .profile import Profile

    env = {k: v for k, v in os.environ.items() if k in ("SEG_PROFILE", "SEG_DATA")}
    if config.data_root:
        env["SEG_DATA"] = config.data_root
    if config.profile != "auto":
        env["SEG_PROFILE"] = config.profile
    return Profile.from_env(env)


def prepare_data(config: TrainConfig) -> Path:
    """Build the sample or check the real dataset (``prepare_*``); returns the dataset root."""
    from .data import prepare_ade20k, prepare_cityscapes, prepare_voc

    profile = _profile(config)
    prepare = {"voc": prepare_voc, "voc-aug": prepare_voc, "cityscapes": prepare_cityscapes,
               "ade20k": prepare_ade20k}[config.dataset]
    return prepare(profile)


def datasets(config: TrainConfig, root: Path):
    """``(train_set, val_set, class_names)`` with the configuration's transforms."""
    from torch.utils.data import Subset

    from .data.transforms import eval_transforms, train_transforms

    augment = train_transforms(tuple(config.crop), base_size=config.base_size, scale_range=tuple(config.scales),
                               rotation=config.rotation, hflip=config.hflip, blur=config.blur,
                               color_jitter=config.color_jitter)
    evaluate = eval_transforms(size=config.eval_size)
    if config.dataset in ("voc", "voc-aug"):
        from .data.voc import VOCSegmentation

        split = "train_aug" if config.dataset == "voc-aug" else "train"
        train_set = VOCSegmentation(root, split, augment, cache=config.cache)
        val_set = VOCSegmentation(root, "val", evaluate, cache=config.cache)
    elif config.dataset == "cityscapes":
        from .data.cityscapes import CityscapesSegmentation

        train_set = CityscapesSegmentation(root, "train", augment, scale=config.scale, cache=config.cache)
        val_set = CityscapesSegmentation(root, "val", evaluate, scale=config.scale, cache=config.cache)
    else:
        from .data.ade20k import ADE20KSegmentation

        train_set = ADE20KSegmentation(root, "training", augment, cache=config.cache)
        val_set = ADE20KSegmentation(root, "validation", evaluate, cache=config.cache)
    classes = list(train_set.classes)
    if config.train_images:
        train_set = Subset(train_set, range(min(config.train_images, len(train_set))))
    if config.val_images:
        val_set = Subset(val_set, range(min(config.val_images, len(val_set))))
    return train_set, val_set, classes


def build_model(config: TrainConfig, num_classes: int):
    """The configured network (``torch.manual_seed(seed)`` first: the initial weights)."""
    import torch

    from .models import DeepLabV3Plus, PSPNet, build_model as build_named

    torch.manual_seed(config.seed)
    parts = config.model.split("_")
    if parts[0] == "deeplabv3plus":
        stride = 8 if parts[-1] == "os8" else 16
        return DeepLabV3Plus(num_classes, parts[1], stride, pretrained=config.pretrained,
                             separable=config.separable, atrous_rates=config.atrous_rates)
    if parts[0] == "pspnet":
        return PSPNet(num_classes, parts[1], pretrained=config.pretrained, aux=config.aux_weight > 0)
    return build_named(config.model, num_classes, pretrained=config.pretrained)


def make_optimizer(config: TrainConfig, model):
    import torch

    from .optim import param_groups

    if _model_family(config.model) in ("deeplabv3plus", "pspnet"):
        params = param_groups(model, config.lr, backbone_lr_scale=config.backbone_lr_scale,
                              weight_decay=config.weight_decay)
    else:
        params = [{"params": [p for p in model.parameters() if p.requires_grad], "lr": config.lr,
                   "weight_decay": config.weight_decay}]
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum)
    return torch.optim.AdamW(params, lr=config.lr)


def make_scheduler(config: TrainConfig, optimizer, total_steps: int):
    import torch

    if config.schedule == "poly":
        return torch.optim.lr_scheduler.PolynomialLR(optimizer, total_iters=total_steps, power=0.9)
    if config.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=[group["lr"] for group in optimizer.param_groups], total_steps=total_steps)
    return None


def make_loss(config: TrainConfig, distributed: bool):
    from . import losses
    from .distributed import GlobalMeanCrossEntropy

    base = (GlobalMeanCrossEntropy() if distributed else losses.cross_entropy) if config.loss == "ce" \
        else losses.lovasz_softmax
    if _model_family(config.model) == "pspnet" and config.aux_weight > 0:
        return losses.with_aux(base, config.aux_weight)
    return base


def settings_of(config: TrainConfig, world_size: int) -> dict[str, Any]:
    """What the checkpoints record: the keys that change what is trained. The whole batch, not the
    per-process one: 1 process x 8 images and 2 x 4 train the same batches and may resume each other."""
    settings = {k: v for k, v in dataclasses.asdict(config).items() if k not in NOT_SETTINGS}
    settings["global_batch"] = config.batch * world_size
    return settings


def _notebook_view(config: TrainConfig, world_size: int) -> dict[str, Any]:
    """The configuration under the names the notebooks give their settings (06: ``backbone``,
    ``output_stride``, ``rates``, ``split``...), to compare with a notebook's checkpoint."""
    parts = config.model.split("_")
    family = parts[0]
    return {
        "model": family, "backbone": parts[1] if len(parts) > 1 else None,
        "output_stride": 8 if parts[-1] == "os8" or family == "pspnet" else 16,
        "pretrained": config.pretrained, "crop": list(config.crop), "batch": config.batch * world_size,
        "lr": config.lr, "optimizer": config.optimizer, "schedule": config.schedule,
        "backbone_lr_scale": config.backbone_lr_scale, "seed": config.seed, "loss": config.loss,
        "aux_weight": config.aux_weight, "aux": config.aux_weight > 0, "separable": config.separable,
        "scale": config.scale, "rates": config.atrous_rates, "size": config.eval_size, "passes": 1,
        "split": "train_aug" if config.dataset == "voc-aug" else "train",
    }


def adopt_notebook_settings(saved: dict | None, config: TrainConfig, world_size: int) -> tuple[dict, list[str]]:
    """A checkpoint that a notebook wrote records the notebook's settings, under its own names. The
    command line continues it when every setting it can compare agrees, and then keeps the notebook's
    record in the checkpoints, so that the notebook can load or resume the run again. Returns the
    settings to train with and the names that could not be compared; raises ConfigError on a difference."""
    ours = _notebook_view(config, world_size)
    compared = {k: v for k, v in (saved or {}).items() if k in ours and k != "epochs"}
    differences = [f"{k}: notebook {v!r} vs this configuration {ours[k]!r}" for k, v in compared.items()
                   if (list(v) if isinstance(v, tuple) else v) != ours[k]]
    if differences:
        raise ConfigError("the checkpoint in output_dir was written by a notebook with other settings:\n  "
                          + "\n  ".join(differences) + "\nSet these keys to the notebook's values, or use another "
                          "output_dir for a new run.")
    return dict(saved or {}), sorted(set(saved or {}) - set(compared) - {"epochs"})


def _device(config: TrainConfig):
    import torch

    from .engine import default_device

    if config.device == "auto":
        return default_device()
    if config.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device: cuda was asked for, but PyTorch sees no CUDA GPU here.")
    return torch.device(config.device)


def run(config: TrainConfig) -> list[dict[str, Any]]:
    """Train as configured (one process, or one of torchrun's); returns the history."""
    import torch
    from torch.nn.parallel import DistributedDataParallel

    from . import distributed as dist_util
    from .engine import LAST, fit, save_run

    device = _device(config)
    context = dist_util.setup(device.type)
    try:
        if device.type == "cuda" and context.distributed:
            device = torch.device("cuda", context.local_rank)
        main = context.is_main
        say = print if main else (lambda *a, **k: None)
        # The sample datasets are built by one process; the others wait and then read them.
        if main:
            root = prepare_data(config)
        dist_util.barrier()
        if not main:
            root = prepare_data(config)
        train_set, val_set, classes = datasets(config, root)
        world, global_batch = context.world_size, config.batch * context.world_size
        if len(train_set) < global_batch:
            raise ConfigError(f"batch: {config.batch} x {world} process(es) = {global_batch} images per step, but "
                              f"the training set has {len(train_set)}: no full batch (the last short batch "
                              "is dropped). Lower batch or raise train_images.")
        if context.distributed:
            train_loader = dist_util.seeded_loader(train_set, config.batch, context, seed=config.seed,
                                                   num_workers=config.workers)
        else:
            from .data.loading import seeded_loader

            train_loader = seeded_loader(train_set, config.batch, seed=config.seed, drop_last=True,
                                         num_workers=config.workers)
        val_loader = torch.utils.data.DataLoader(dist_util.shard(val_set, context), batch_size=1,
                                                 num_workers=config.workers)

        try:
            model = build_model(config, len(classes)).to(device)
        except RuntimeError as exc:
            if not (config.pretrained and "ImageNet weights" in str(exc)):
                raise
            raise ConfigError(f"pretrained: {exc}") from exc
        sync_bn = context.distributed and device.type == "cuda" and config.sync_bn and not config.freeze_bn
        check_single_image_batch(config, sync_bn)
        if sync_bn:
            model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        from .devices import use_channels_last

        if use_channels_last("auto", device):
            model = model.to(memory_format=torch.channels_last)
        optimizer = make_optimizer(config, model)
        scheduler = make_scheduler(config, optimizer, config.epochs * len(train_loader))
        trained = model
        if context.distributed:
            trained = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
        out = output_dir(config)
        resume = {"auto": "auto", "true": True, "false": False}[config.resume]
        found = dist_util.agree((out / LAST).exists())
        if resume is False and found:
            raise ConfigError(f"resume: false, but {out / LAST} exists. Use resume: auto to continue it, or "
                              "another output_dir for a new run.")
        bn = ("frozen (eval mode)" if config.freeze_bn else "SyncBatchNorm over all processes" if sync_bn
              else "per process" + (" (SyncBatchNorm does not run on CPUs)" if context.distributed else ""))
        say(f"seg-train: {config.model} on {config.dataset} ({len(train_set)} training, {len(val_set)} validation "
            f"images, {len(classes)} classes), {world} process(es) on {device.type}")
        say(f"  batch {config.batch} per process x {world} = {global_batch} per step; lr {config.lr:g} for the "
            f"whole batch ({config.optimizer}, {config.schedule}); {len(train_loader)} steps per epoch; "
            f"BatchNorm {bn}")
        if context.distributed:
            print(f"  rank {context.rank}: batch {config.batch}, lr {config.lr:g} (gradients averaged over the "
                  f"{world} processes: the rate of the whole batch), "
                  f"{len(train_loader)} steps per epoch, {len(val_loader)} validation images", flush=True)
        settings = settings_of(config, world)
        if found and resume:
            from .engine import load_checkpoint

            saved = load_checkpoint(out / LAST).get("settings")
            if saved is not None and "global_batch" not in saved:         # written by a notebook
                settings, unchecked = adopt_notebook_settings(saved, config, world)
                say(f"  continuing a notebook's run; its settings {', '.join(unchecked) or '(none)'} cannot be "
                    "compared with the configuration: make sure they match")
        say(f"  output: {out}" + ("  (resuming from last.pt)" if found and resume else ""))
        tensorboard_dir = None
        if config.tensorboard and main:
            try:
                import torch.utils.tensorboard  # noqa: F401
                tensorboard_dir = out / "tensorboard"
            except ImportError:
                say("  TensorBoard logs are off: the tensorboard package is missing (pip install tensorboard, "
                    "or set tensorboard: false to silence this line)")
        history = fit(trained, train_loader, val_loader, optimizer=optimizer, scheduler=scheduler,
                      scheduler_per_iteration=scheduler is not None, loss_fn=make_loss(config, context.distributed),
                      epochs=config.epochs, num_classes=len(classes), device=device, checkpoint_dir=out,
                      resume=resume, amp={"true": True, "false": False}.get(config.amp, config.amp),
                      eval_every=config.eval_every, freeze_bn=config.freeze_bn, tensorboard_dir=tensorboard_dir,
                      settings=settings, progress=config.progress and main, verbose=main,
                      all_reduce=dist_util.all_reduce_sum if context.distributed else None,
                      write_checkpoints=main)
        if main and any("miou" in h for h in history):
            save_run(out, history=history, settings=settings, class_names=classes, model=model)
            say(f"recorded {out / 'run.json'}: val mIoU {[h for h in history if 'miou' in h][-1]['miou']:.3f}")
        dist_util.barrier()
        return history
    finally:
        dist_util.teardown()


def main(argv: Sequence[str] | None = None) -> int:
    try:
        config, print_only = parse_args(argv)
        if print_only:
            print(to_yaml(config), end="")
            return 0
        run(config)
    except ConfigError as exc:
        print(f"seg-train: error: {exc}", file=sys.stderr)
        return 2
    except (FileNotFoundError, RuntimeError) as exc:      # missing data, a checkpoint that does not fit
        from .engine import CheckpointError

        if not isinstance(exc, (FileNotFoundError, CheckpointError)):
            raise
        print(f"seg-train: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
