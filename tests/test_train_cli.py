"""seg-train (seg_common.train): configuration errors, --print-config, the recipes in configs/ kept
equal to the notebooks' full column, and torchrun on the CPU (gloo) against one process."""
from __future__ import annotations

import ast
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from seg_common import train

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"


def errors_of(capsys, *argv: str) -> str:
    assert train.main(list(argv)) == 2
    return capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# Configuration errors and --print-config
# ---------------------------------------------------------------------------------------------

def test_unknown_key_on_the_command_line_says_did_you_mean(capsys):
    err = errors_of(capsys, "--modle", "fcn8s_resnet18")
    assert "unknown key 'modle'" in err and "Did you mean 'model'" in err


def test_unknown_key_in_a_yaml_file_names_the_file(tmp_path, capsys):
    config = tmp_path / "run.yaml"
    config.write_text("model: fcn8s_resnet18\nlearning_rate: 0.01\n")
    err = errors_of(capsys, "--config", str(config))
    assert f"unknown key 'learning_rate' in {config}" in err
    assert "Valid keys:" in err and "batch" in err


def test_bad_model_name_lists_the_valid_ones_and_the_nearest(capsys):
    err = errors_of(capsys, "--model", "deeplabv3_resnet50")
    assert "model: 'deeplabv3_resnet50' is not one of" in err
    from seg_common.models import MODELS
    assert all(name in err for name in MODELS)
    assert "Did you mean 'deeplabv3plus_resnet50'" in err


def test_bad_dataset_name(capsys):
    err = errors_of(capsys, "--dataset", "cityscape")
    assert "dataset: 'cityscape' is not one of voc, voc-aug, cityscapes, ade20k" in err
    assert "Did you mean 'cityscapes'" in err


def test_wrong_types(capsys):
    assert "batch: expected int, got 'four' (str)" in errors_of(capsys, "--batch", "four")
    assert "crop: expected list of int" in errors_of(capsys, "--crop", "big")
    assert "pretrained: expected bool" in errors_of(capsys, "--pretrained", "3")


def test_impossible_settings(capsys):
    err = errors_of(capsys, "--model", "pspnet_resnet18", "--batch", "1")
    assert "batch: 1 image per process" in err and "freeze_bn" in err
    assert "atrous_rates: a DeepLabV3+ setting" in errors_of(capsys, "--model", "unet_resnet18", "--atrous_rates", "1,2,3")
    assert "backbone_lr_scale" in errors_of(capsys, "--model", "fcn8s_resnet18", "--backbone_lr_scale", "0.1")
    assert "scales: [low, high]" in errors_of(capsys, "--scales", "2,1")


def test_print_config_resolves_file_then_overrides(capsys):
    assert train.main(["--config", str(CONFIGS / "sample" / "voc_fcn.yaml"), "--lr", "0.01", "--crop", "32,48",
                       "--print-config"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["model"] == "fcn8s_resnet18"          # from the file
    assert printed["lr"] == 0.01 and printed["crop"] == [32, 48]   # from the command line
    assert printed["seed"] == 0                           # a default
    assert set(printed) == {f.name for f in train.dataclasses.fields(train.TrainConfig)}


def test_every_config_file_is_valid():
    for path in sorted(CONFIGS.rglob("*.yaml")):
        train.build_config(yaml.safe_load(path.read_text()))


# ---------------------------------------------------------------------------------------------
# configs/ = the notebooks' full column. The test reads the notebooks' own settings: every top-level
# `NAME = P.pick(sample=..., full=...)` (its `full` value) and `NAME = literal` of their code cells.
# ---------------------------------------------------------------------------------------------

def notebook_full_values(number: str) -> tuple[dict, str]:
    """The full values and the code of notebook ``number`` (all its parts: ``06_*.ipynb``). A name
    that two parts set to different values is an error of the notebooks, and fails here."""
    values, sources = {}, []
    for path in sorted((REPO / "notebooks").glob(f"{number}_*.ipynb")):
        cells = [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]
        sources += ["".join(c["source"]) for c in cells]
        for cell in cells:
            try:
                tree = ast.parse("".join(cell["source"]))
            except SyntaxError:                     # a cell with IPython magics
                continue
            for node in tree.body:
                if not isinstance(node, ast.Assign) or len(node.targets) != 1:
                    continue
                target, value = node.targets[0], node.value
                pairs = (list(zip(target.elts, value.elts))
                         if isinstance(target, ast.Tuple) and isinstance(value, ast.Tuple) else [(target, value)])
                for name_node, expr in pairs:
                    if not isinstance(name_node, ast.Name) or not name_node.id.isupper():
                        continue
                    if isinstance(expr, ast.Call) and getattr(expr.func, "attr", "") == "pick":
                        expr = next(k.value for k in expr.keywords if k.arg == "full")
                    try:
                        found = ast.literal_eval(expr)
                    except ValueError:
                        continue
                    assert values.get(name_node.id, found) == found, \
                        f"{path.name}: {name_node.id} = {found!r}, another part of notebook {number} says {values[name_node.id]!r}"
                    values[name_node.id] = found
    assert sources, f"no notebook {number}_*.ipynb"
    return values, "\n\n".join(sources)


def recipe(name: str) -> dict:
    return yaml.safe_load((CONFIGS / name).read_text())


def as_list(value):
    return list(value) if isinstance(value, (tuple, list)) else value


def test_config_06_is_the_notebook_full_column():
    nb, source = notebook_full_values("06")
    config = recipe("06_deeplabv3plus.yaml")
    expected = {
        "model": f"deeplabv3plus_{nb['BACKBONE']}", "pretrained": nb["PRETRAINED"],
        "dataset": "voc-aug" if nb["TRAIN_SPLIT"] == "train_aug" else "voc", "crop": as_list(nb["CROP"]),
        "base_size": nb["BASE_SIZE"], "scales": as_list(nb["SCALES"]), "rotation": nb["ROTATION"],
        "blur": nb["BLUR"], "batch": nb["BATCH"], "epochs": nb["EPOCHS"], "optimizer": nb["OPTIMIZER"],
        "schedule": nb["SCHEDULE"], "lr": nb["LR"], "momentum": nb["MOMENTUM"],
        "weight_decay": nb["WEIGHT_DECAY"], "backbone_lr_scale": nb["BACKBONE_LR_SCALE"],
        "atrous_rates": as_list(nb["RATES"]), "eval_every": nb["EVAL_EVERY"],
    }
    assert {k: config[k] for k in expected} == expected
    assert "color_jitter=0" in source and config["color_jitter"] == 0
    assert 'dict(loss="ce", output_stride=16' in source and config["loss"] == "ce"   # the baseline run


def test_config_07_is_the_notebook_full_column():
    nb, source = notebook_full_values("07")
    config = recipe("07_pspnet.yaml")
    expected = {
        "model": f"pspnet_{nb['STUDENT']}", "pretrained": nb["PRETRAINED"],
        "dataset": "voc-aug" if nb["TRAIN_SPLIT"] == "train_aug" else "voc", "eval_size": nb["SIZE"],
        "base_size": nb["BASE_SIZE"], "crop": as_list(nb["CROP"]), "scales": as_list(nb["SCALES"]),
        "batch": nb["BATCH"], "epochs": nb["EPOCHS"], "optimizer": nb["OPTIMIZER"], "schedule": nb["SCHEDULE"],
        "lr": nb["LR"], "backbone_lr_scale": nb["BACKBONE_LR_SCALE"], "momentum": nb["MOMENTUM"],
        "weight_decay": nb["WEIGHT_DECAY"], "aux_weight": nb["AUX_WEIGHT"],
        "eval_every": nb["EPOCHS"],                     # eval_every=spec["epochs"]: after the last epoch
    }
    assert {k: config[k] for k in expected} == expected
    assert "rotation=10, hflip=0.5, color_jitter=0)" in source
    assert config["rotation"] == 10 and config["color_jitter"] == 0


def test_config_08_is_the_notebook_full_column():
    nb, source = notebook_full_values("08")
    config = recipe("08_cityscapes.yaml")
    expected = {
        "model": f"deeplabv3plus_{nb['BACKBONE']}", "pretrained": nb["PRETRAINED"], "separable": nb["SEPARABLE"],
        "scale": nb["SCALE"], "crop": as_list(nb["CROP"]), "base_size": nb["BASE"], "scales": as_list(nb["SCALES"]),
        "batch": nb["BATCH"], "epochs": nb["EPOCHS"], "optimizer": nb["OPTIMIZER"], "lr": nb["LR"],
        "schedule": nb["SCHEDULE"], "weight_decay": nb["WEIGHT_DECAY"], "momentum": nb["MOMENTUM"],
        "backbone_lr_scale": nb["BACKBONE_LR_SCALE"],
    }
    assert {k: config[k] for k in expected} == expected
    assert nb["EPOCH_PASSES"] == 1                       # one pass per epoch: no key needed
    assert "rotation=0, hflip=0.5, color_jitter=0.2)" in source
    assert config["dataset"] == "cityscapes" and config["rotation"] == 0 and config["color_jitter"] == 0.2


def test_config_03_is_the_notebook_full_column():
    nb, source = notebook_full_values("03")
    config = recipe("03_fcn.yaml")
    expected = {"pretrained": nb["PRETRAINED"], "crop": as_list(nb["CROP"]), "batch": nb["BATCH"],
                "epochs": nb["EPOCHS"], "eval_every": nb["EVAL_EVERY"]}
    assert {k: config[k] for k in expected} == expected
    # The engine runs' optimiser and augmentation are written in the notebook's cells, not in names:
    assert "torch.optim.SGD(model.parameters(), lr=0.001 * BATCH, weight_decay=0.001 / BATCH), None" in source
    assert config["optimizer"] == "sgd" and config["momentum"] == 0 and config["schedule"] == "constant"
    assert config["lr"] == pytest.approx(0.001 * nb["BATCH"]) and config["weight_decay"] == pytest.approx(0.001 / nb["BATCH"])
    assert "base_size=P.pick(sample=150, full=400), scale_range=(0.75, 1.25),\n                           rotation=0" in source
    assert config["base_size"] == 400 and config["scales"] == [0.75, 1.25] and config["rotation"] == 0
    assert 'train_fcn(fcn_resnet18_d2l, "fcn32s")' in source and config["model"] == "fcn32s_resnet18"


# ---------------------------------------------------------------------------------------------
# torchrun: 2 processes x 4 images = 1 process x 8 images
# ---------------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def seg_train(args: list[str], processes: int = 1) -> subprocess.CompletedProcess:
    env = {**os.environ, "SEG_DRY_RUN": "", "PYTHONWARNINGS": "ignore"}
    if processes == 1:
        command = [sys.executable, "-m", "seg_common.train", *args]
    else:
        command = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={processes}",
                   f"--master_port={free_port()}", "-m", "seg_common.train", *args]
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def weights(folder: Path) -> dict[str, torch.Tensor]:
    return torch.load(folder / "last.pt", map_location="cpu", weights_only=False)["model"]


def test_two_processes_of_4_train_as_one_process_of_8_and_resume(sample_root, tmp_path):
    """FCN-8s (no dropout) with BatchNorm frozen: on the CPU PyTorch's SyncBatchNorm does not run,
    and per-process BatchNorm statistics over 4 images differ from those over 8 by design. Plain
    SGD with momentum, float32. The torchrun run is interrupted after epoch 1 and resumed by a
    second torchrun. Tolerance: the two runs' weights differ by less than 1e-4 of how far training
    moved them (measured: about 2e-6; gloo sums the gradients in another order than one backward
    pass over 8 images, and convolutions of 4 and 8 images round differently); a torchrun that did
    not average gradients, or saw other batches, is off by tens of percent. The rate is small (0.005)
    on purpose: at 0.02 the from-scratch network is chaotic enough to blow rounding up to 3e-4 in
    two steps."""
    common = ["--model", "fcn8s_resnet18", "--profile", "full", "--data_root", str(sample_root),
              "--train_images", "16", "--val_images", "4", "--crop", "48,64", "--base_size", "60",
              "--optimizer", "sgd", "--lr", "0.005", "--momentum", "0.9", "--schedule", "constant",
              "--freeze_bn", "true", "--amp", "false", "--tensorboard", "false", "--progress", "false"]
    one, two = tmp_path / "one", tmp_path / "two"
    seg_train(common + ["--batch", "8", "--epochs", "2", "--output_dir", str(one)])
    first = seg_train(common + ["--batch", "4", "--epochs", "1", "--output_dir", str(two)], processes=2)
    assert "batch 4 per process x 2 = 8 per step" in first.stdout
    assert "rank 1: batch 4" in first.stdout and "rank 0: batch 4" in first.stdout
    resumed = seg_train(common + ["--batch", "4", "--epochs", "2", "--output_dir", str(two)], processes=2)
    assert "resumed from last.pt after epoch 1" in resumed.stdout + resumed.stderr

    start = train.build_model(train.build_config({"model": "fcn8s_resnet18", "seed": 0}), 21).state_dict()
    single, parallel = weights(one), weights(two)
    moved = torch.cat([(single[k].float() - start[k].float()).flatten() for k in start])
    apart = torch.cat([(single[k].float() - parallel[k].float()).flatten() for k in start])
    assert moved.norm() > 0.01                            # training did move the weights
    assert apart.norm() / moved.norm() < 1e-4, f"relative difference {apart.norm() / moved.norm():.2e}"

    runs = [json.loads((folder / "run.json").read_text()) for folder in (one, two)]
    assert [len(r["history"]) for r in runs] == [2, 2]
    # the confusion matrix summed over the two processes' shares of the validation images
    assert runs[1]["final"]["pixel_acc"] == pytest.approx(runs[0]["final"]["pixel_acc"], abs=1e-3)
    assert runs[0]["settings"]["global_batch"] == runs[1]["settings"]["global_batch"] == 8
    assert not list(two.glob(".*.tmp-*")) and sorted(p.name for p in two.iterdir()) == \
        ["best.pt", "last.pt", "run.json", "weights.pt"]      # rank 0 alone wrote, and nothing else


# ---------------------------------------------------------------------------------------------
# A run started in a notebook, continued on the command line (the same files, the same resume)
# ---------------------------------------------------------------------------------------------

def notebook_06_style_run(root: Path, folder: Path, epochs: int) -> list:
    """What notebook 06's `train_run` does (sample column shrunk), for `epochs` epochs of a 2-epoch
    OneCycle run: its settings dict, its optimiser and schedule, seeded_loader, fit(resume="auto")."""
    from seg_common.data.loading import seeded_loader
    from seg_common.data.transforms import eval_transforms, train_transforms
    from seg_common.data.voc import VOCSegmentation
    from seg_common.engine import fit
    from seg_common.losses import cross_entropy
    from seg_common.models import DeepLabV3Plus
    from seg_common.optim import param_groups

    crop, rates, lr, batch = (64, 64), (1, 2, 3), 3e-3, 4
    train_set = VOCSegmentation(root, "train", train_transforms(crop, base_size=80, scale_range=(0.75, 1.25),
                                                                 rotation=0, hflip=0.5, blur=0.0, color_jitter=0))
    val_set = VOCSegmentation(root, "val", eval_transforms())
    torch.manual_seed(0)
    model = DeepLabV3Plus(21, "resnet18", 16, pretrained=False, atrous_rates=rates)
    optimizer = torch.optim.AdamW(param_groups(model, lr, backbone_lr_scale=1.0, weight_decay=1e-4), lr=lr)
    loader = seeded_loader(train_set, batch, seed=0, drop_last=True)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=[g["lr"] for g in optimizer.param_groups],
                                                    total_steps=2 * len(loader))
    settings = {"run": "baseline", "seed": 0, "loss": "ce", "output_stride": 16, "backbone": "resnet18",
                "pretrained": False, "split": "train", "crop": list(crop), "batch": batch, "epochs": 2,
                "optimizer": "adamw", "schedule": "onecycle", "lr": lr, "backbone_lr_scale": 1.0, "rates": list(rates)}
    return fit(model, loader, torch.utils.data.DataLoader(val_set, batch_size=1), optimizer=optimizer,
               scheduler=scheduler, scheduler_per_iteration=True, loss_fn=cross_entropy, epochs=epochs,
               num_classes=21, device="cpu", amp=False, checkpoint_dir=folder, resume="auto", settings=settings,
               progress=False, verbose=False)


def test_a_notebook_run_continues_on_the_command_line(sample_root, tmp_path):
    notebook_06_style_run(sample_root, tmp_path / "started", epochs=1)
    cli = ["--model", "deeplabv3plus_resnet18", "--atrous_rates", "1,2,3", "--profile", "full", "--data_root",
           str(sample_root), "--crop", "64,64", "--base_size", "80", "--batch", "4", "--epochs", "2",
           "--optimizer", "adamw", "--lr", "0.003", "--schedule", "onecycle", "--amp", "false", "--device", "cpu",
           "--tensorboard", "false", "--progress", "false", "--output_dir", str(tmp_path / "started")]
    refused = subprocess.run([sys.executable, "-m", "seg_common.train", *cli, "--lr", "0.01"],
                             capture_output=True, text=True, cwd=REPO)
    assert refused.returncode == 2 and "lr: notebook 0.003 vs this configuration 0.01" in refused.stderr
    continued = seg_train(cli)
    assert "continuing a notebook's run; its settings run cannot be compared" in continued.stdout

    history = notebook_06_style_run(sample_root, tmp_path / "in_one_go", epochs=2)
    ours, theirs = weights(tmp_path / "started"), weights(tmp_path / "in_one_go")
    assert all(torch.allclose(ours[k].float(), theirs[k].float(), atol=1e-5) for k in ours)
    # and the notebook finds its run finished, under its own settings
    again = notebook_06_style_run(sample_root, tmp_path / "started", epochs=2)
    assert len(again) == 2 and again[-1]["miou"] == pytest.approx(history[-1]["miou"], abs=1e-6)


def test_help_lists_every_key_with_type_default_and_meaning(capsys):
    with pytest.raises(SystemExit) as exit_:
        train.main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    for f in train.dataclasses.fields(train.TrainConfig):
        assert f"--{f.name} (" in out and f.metadata["help"][:30] in " ".join(out.split()), f.name
    assert "--lr (float, default 0.003)" in out and "--resume (str, default auto)" in out
