"""Ordinary mistakes, as a new user makes them, against every command: each ends in one line on
stderr and the right exit code (2 a usage error, 1 a runtime failure), never a traceback, and a
real study's trials are the same afterwards. The cases run through the commands' own boundary
(cli.run_main) in this process, with one shared study; most fail before anything trains."""

import hashlib
import os
import socket
import sqlite3
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import optuna
import pytest
import yaml
from PIL import Image

import spaces
from tests import postgres
from tests.conftest import REPO, run_in_this_process

# PostgreSQL at its limits (make_postgres_limits): a role without CREATE, a read-only standby
NO_CREATE_ROLE, NO_CREATE_DB, STANDBY_DB = (
    "bad_input_role",
    "bad_input_nocreate",
    "bad_input_standby",
)

RUN = ["search.run", "--space", "test_tiny", "--space-module", "tests.spaces_for_tests",
       "--dataset", "sample", "--epochs", "1", "--trials", "4"]  # fmt: skip
IMAGEFOLDER_RUN = ["search.run", "--space", "mlp", "--dataset", "imagefolder", "--data-dir"]
TRAIN = ["search.train", "--config"]
REPLAY = ["search.bench", "--sections", "replay"]
RECORD = ["search.bench", "--dataset", "sample", "--device", "cpu", "--sections", "record",
          "--record-epochs", "2"]  # fmt: skip
GOOD = {"model": "mlp", "model_args": {"width": 16, "depth": 1}, "epochs": 1, "dataset": "sample",
        "schedule": "constant", "lr": 0.05}  # fmt: skip


def config(**changes) -> dict:
    return {**GOOD, **changes}


# Config files the cases train, by name: the good one with one mistake each.
CONFIGS = {
    "width0.yaml": config(model_args={"width": 0}),
    "negative-depth.yaml": config(model_args={"width": 16, "depth": -2}),
    "width-text.yaml": config(model_args={"width": "wide"}),
    "dropout1.yaml": config(model_args={"width": 16, "dropout": 1.0}),
    "unknown-arg.yaml": config(model_args={"widht": 16}),
    "unknown-model.yaml": config(model="vit"),
    "one-class.yaml": config(classes=["cat"]),
    "momentum-text.yaml": config(optimizer_args={"momentum": "high"}),
    "momentum-big.yaml": config(optimizer_args={"momentum": 1.5}),
    "beta-text.yaml": config(optimizer="adam", optimizer_args={"beta2": "x"}),
    "pct-text.yaml": config(schedule="onecycle", schedule_args={"pct_start": "soon"}),
    "step-zero.yaml": config(schedule="step", schedule_args={"step_fraction": 0}),
    "padding-text.yaml": config(augment={"crop": {"padding": "four"}}),
    "flip-p2.yaml": config(augment={"flip": {"p": 2}}),
    "cutout-number.yaml": config(augment={"cutout": 8}),
    "mixup-alpha0.yaml": config(augment={"mixup": {"alpha": 0}}),
    "every0.yaml": config(averaging="lookahead", averaging_args={"every": 0}),
    "tta-text.yaml": config(tta="mirror_translate", tta_args={"translate_weight": "half"}),
    "second-momentum.yaml": config(
        second_phase={
            "start_fraction": 0.5,
            "optimizer": "sgd",
            "lr": 0.01,
            "optimizer_args": {"momentum": "x"},
        }
    ),  # fmt: skip
    "second-cutout.yaml": config(
        second_phase={
            "start_fraction": 0.5,
            "optimizer": "sgd",
            "lr": 0.01,
            "augment": {"cutout": {"size": -1}},
        }
    ),  # fmt: skip
    "second-lr.yaml": config(second_phase={"start_fraction": 0.5, "optimizer": "sgd", "lr": "x"}),
    "group-negative.yaml": config(param_groups={"norm": {"lr_scale": -1}}),
    "freeze-text.yaml": config(freeze={"stem": "3"}),
    "seed-negative.yaml": config(seed=-1),
    "seed-huge.yaml": config(seed=2**40),
    "batch0.yaml": config(batch_size=0),
    "epochs-text.yaml": config(epochs="ten"),
    "lr-negative.yaml": config(lr=-0.1),
    "provenance-list.yaml": {**GOOD, "provenance": [1, 2]},
    "no-provenance.yaml": GOOD,
    "init-inside.yaml": config(init_from="runs/good/checkpoint.pt"),
    "one-class-folder.yaml": config(dataset="imagefolder"),
    # Config files written for other tools.
    "timm-args.yaml": {
        "model": "resnet18",
        "lr": 0.1,
        "epochs": 300,
        "sched": "cosine",
        "opt": "sgd",
        "weight_decay": 2e-5,
        "batch_size": 128,
    },
    "hydra.yaml": {
        "model": {"_target_": "torchvision.models.resnet18"},
        "trainer": {"max_epochs": 10},
    },
    "optuna-params.yaml": {"sgd_lr": 0.05, "depth": 2, "width": 64},
    "lightning.yaml": {"trainer": {"max_epochs": 5}, "model": "mlp"},
    # Numerical blow-ups.
    "lr-inf.yaml": config(lr=float("inf")),
    "lr-nan.yaml": config(lr=float("nan")),
    "wd-nan.yaml": config(weight_decay=float("nan")),
    "momentum-nan.yaml": config(optimizer_args={"momentum": float("nan")}),
    "lr-huge.yaml": config(lr=1e12, optimizer="sgd", epochs=2),
}
TEXT_FILES = {
    "latin1.yaml": "model: mlp\ndataset: sample\n# caf\xe9\n".encode("latin-1"),
    "empty.yaml": b"",
    "list.yaml": b"- model\n- mlp\n",
    "broken.yaml": b"model: [mlp\n",
    "notdb.db": b"these are my notes, not a database\n",
    "empty.db": b"",
    "corrupt.png": b"\x89PNG\r\n\x1a\nnot really a png",
    "truncated.jpg": b"",  # filled in by the fixture: half of a real JPEG
    "boom.py": b"raise RuntimeError('my module is broken')\n",
    "dupe.py": b"import spaces\n\n\n@spaces.register_space('mlp')\ndef mine(trial, context):\n"
    b"    return None\n",
    "syntax.py": b"def broken(:\n",
    # a space written for the previous release (context.max_epochs), and one with a bug
    "older.py": b"import spaces\nfrom tests.spaces_for_tests import tiny_mlp\n\n\n"
    b"@spaces.register_space('older')\ndef older(trial, context):\n"
    b"    return tiny_mlp(trial, context, epochs=context.max_epochs)\n",
    "wide.yaml": b"model: mlp\nmodel_args: {width: 1000000000, depth: 1}\nepochs: 1\n"
    b"dataset: sample\n",  # a 12 TB weight
    "huge.json": b'{"model": "mlp", "notes": "' + b"x" * 2**21 + b'"}',  # 2 MiB
    "buggy.py": b"import spaces\n\n\n@spaces.register_space('buggy')\ndef buggy(trial, context):\n"
    b"    choices = {'sgd': 0.1}\n    return choices['adam']\n",
    "params.json": b'{"model": "mlp", "lr": 0.1 "epochs": 1}',  # a comma left out
    "table.csv": b"number,value,params_lr\n0,0.5,0.1\n",
    "model.pth": b"",  # filled in by the fixture: a torchvision-style state dict
    "scripted.pt": b"",  # a TorchScript module
    "weights.safetensors": b"",  # a safetensors file of another model
    "half.pt": b"",  # the first half of a real checkpoint
    # exported configs edited by hand before the retrain
    "tabbed.yaml": b"model: mlp\nmodel_args:\n\twidth: 16\nepochs: 1\ndataset: sample\n",
    "no-model.yaml": b"model_args: {width: 16, depth: 1}\nepochs: 1\ndataset: sample\n",
    "unicorn.yaml": b"model: mlp\nmodel_args: {width: 16, depth: 1}\nepochs: 1\n"
    b"dataset: sample\nclasses: [cat, unicorn]\n",
    "cats.yaml": "model: mlp\nmodel_args: {width: 16, depth: 1}\nepochs: 1\ndataset: sample\n"
    "classes: [\u732b, \u72ac]\n".encode(),
}

CASES = {  # name: (command and arguments, exit code, a fragment of the stderr line)
    # Outputs never destroy inputs.
    "report over the study storage": (
        ["search.report", "--study", "s", "-o", "studies.db"], 2,
        "will not write over studies.db: it is an SQLite database"),
    "export over the study storage": (
        ["search.export", "--study", "s", "-o", "studies.db"], 2,
        "will not write over studies.db: it is an SQLite database"),
    "export --pareto of one objective": (
        ["search.export", "--study", "s", "--pareto"], 2, "--pareto needs several"),
    "report over a checkpoint": (
        ["search.report", "--study", "s", "-o", "runs/good/checkpoint.pt"], 2,
        "it is a zip archive (a checkpoint?)"),
    "export over a checkpoint": (
        ["search.export", "--study", "s", "-o", "runs/good/checkpoint.pt"], 2,
        "it is a zip archive (a checkpoint?)"),
    "report to a folder": (["search.report", "--study", "s", "-o", "runs"], 2,
                           "runs is a folder; name a file to write"),
    "export to a folder": (["search.export", "--study", "s", "-o", "runs"], 2,
                           "runs is a folder; name a file to write"),
    "report into an unwritable folder": (
        ["search.report", "--study", "s", "-o", "locked-dir/r.html"], 2,
        "cannot write in locked-dir"),
    "export below a file": (["search.export", "--study", "s", "-o", "good.yaml/best.yaml"], 2,
                            "good.yaml is a file, not a folder"),
    "report into a missing folder makes it": (
        ["search.report", "--study", "s", "-o", "new/folder/r.html"], 0, ""),
    "train into a file": (TRAIN + ["good.yaml", "--output-dir", "good.yaml"], 2,
                          "--output-dir good.yaml is a file, not a folder"),
    "train over the config it reads": (
        TRAIN + ["runs/good/config.yaml", "--output-dir", "runs/good", "--overwrite"], 2,
        "will not write runs/good/config.yaml over the file this command reads"),
    "train over the checkpoint it starts from": (
        TRAIN + ["init-inside.yaml", "--output-dir", "runs/good", "--overwrite"], 2,
        "will not write runs/good/checkpoint.pt over the file this command reads"),
    "train into an earlier run": (TRAIN + ["good.yaml", "--output-dir", "runs/good"], 2,
                                  "--output-dir runs/good holds an earlier run; pass --overwrite"),
    "train below a file": (TRAIN + ["good.yaml", "--output-dir", "good.yaml/out"], 2,
                           "good.yaml is a file, not a folder"),
    "train into an unwritable folder": (
        TRAIN + ["good.yaml", "--output-dir", "locked-dir/run"], 2, "cannot write in"),
    "train --attach without provenance": (
        TRAIN + ["no-provenance.yaml", "--attach"], 2,
        "--attach needs a config written by search.export"),
    "train --attach into an unwritable artifact folder": (
        TRAIN + ["good.yaml", "--attach", "--artifact-dir", "locked-dir/artifacts"], 2,
        "cannot write in locked-dir/artifacts"),
    "bench json over the study storage": (
        ["search.bench", "--json", "studies.db"], 2, "will not write over studies.db"),
    "bench json to a folder": (["search.bench", "--json", "runs"], 2, "runs is a folder"),
    # Settings that would poison a study: refused before anything is recorded.
    "seed too large": (RUN + ["--seed", "99999999999"], 2,
                       "--seed must be less than or equal to 4294967295, not 99999999999"),
    "negative seed": (RUN + ["--seed", "-1"], 2, "--seed must be greater than or equal to 0"),
    "zero trials": (RUN + ["--trials", "0"], 2, "--trials must be positive, not 0"),
    "negative trials": (RUN + ["--trials", "-3"], 2, "--trials must be positive, not -3"),
    "zero epochs": (RUN + ["--epochs", "0"], 2, "--epochs must be positive, not 0"),
    "zero heartbeat": (RUN + ["--heartbeat-interval", "0"], 2, "--heartbeat-interval must be"),
    "negative grace period": (RUN + ["--grace-period", "-1"], 2, "--grace-period must be"),
    "negative run timeout": (RUN + ["--timeout", "-5"], 2, "--timeout must be positive"),
    "negative epoch budget": (RUN + ["--epoch-budget", "-1"], 2,
                              "--epoch-budget must be greater than or equal to 0"),
    "pausing with a pruner that has no rungs": (
        RUN + ["--pause-pruned", "--pruner", "median"], 2,
        "--pause-pruned needs a pruner whose rungs can promote a paused trial (hyperband, sha, sha3, "
        "sha3-promotion, sha3-hybrid), "
        "not --pruner median"),
    "pausing without checkpoints": (
        RUN + ["--pause-pruned", "--checkpoint-dir", ""], 2,
        "--pause-pruned needs --checkpoint-dir: a paused trial goes on from its checkpoint"),
    "promotion-type halving without pausing": (
        RUN + ["--pruner", "sha3-promotion", "--no-pause-pruned"], 2, "--pruner sha3-promotion "
        "holds a rung's trials paused until enough have reached it: it needs --pause-pruned"),
    "the default pruner without pausing": (
        RUN + ["--no-pause-pruned"], 2, "--pruner sha3-hybrid holds a rung's trials paused until "
        "enough have reached it: it needs --pause-pruned"),
    "a thaw rule without pausing": (
        RUN + ["--thaw", "forecast", "--pruner", "sha3"], 2,
        "--thaw forecast ranks paused trials: it needs --pause-pruned"),
    "a prior without an earlier study": (
        RUN + ["--warm-start-by", "prior"], 2, "--warm-start-by prior says how an earlier study's "
        "best configs guide the search; name that study with --warm-start-from STUDY"),
    "an unknown warm start's guide": (
        RUN + ["--warm-start-from", "s", "--warm-start-by", "nearest"], 2,
        "argument --warm-start-by: invalid choice: 'nearest'"),
    "an unknown thaw rule": (
        RUN + ["--pause-pruned", "--thaw", "warmest"], 2, "argument --thaw: invalid choice: 'warmest'"),
    # careless inputs found on 2026-12-06 (issue 44)
    "NaN run timeout": (RUN + ["--timeout", "nan"], 2, "--timeout must be positive, not nan"),
    "negative worker slot": (["search.worker", "--study", "s", "--slot", "-1"], 2,
                             "--slot must be 0 or more, not -1"),
    "negative predict top": (
        ["search.predict", "--checkpoint", "runs/good/checkpoint.pt", "cat.png", "--top", "-3"],
        2, "--top must be positive, not -3"),
    "warm starts written onto a file": (["search.spaces", "--write-warm-starts", "good.yaml"], 2,
                                        "good.yaml is a file, not a folder"),
    "500 CPU workers": (RUN + ["--device", "cpu", "--workers-per-gpu", "500"], 2,
                        "--workers-per-gpu 500 would start 500 worker processes on the CPU"),
    "negative worker timeout": (["search.worker", "--study", "s", "--timeout", "-5"], 2,
                                "--timeout must be positive, not -5.0"),
    "zero worker timeout": (["search.worker", "--study", "s", "--timeout", "0"], 2,
                            "--timeout must be positive"),
    "worker on a poisoned study": (
        ["search.worker", "--study", "poisoned"], 2,
        "study 'poisoned' holds a setting this version cannot run"),
    "final on a poisoned study": (
        ["search.final", "--study", "poisoned"], 2, "setting 'seed' must be less than"),
    "one class": (RUN + ["--classes", "cat"], 2, "names one class; a classifier needs two"),
    "a class twice": (RUN + ["--classes", "cat,cat"], 2, "got a class twice"),
    "a class the dataset lacks": (RUN + ["--classes", "cat,zebra"], 2, "has no class 'zebra'"),
    "no objectives": (RUN + ["--objectives", ""], 2, "--objectives must be accuracy"),
    "unknown sampler": (RUN + ["--sampler", "bayes"], 2, "unknown sampler 'bayes'"),
    "unknown pruner": (RUN + ["--pruner", "always"], 2, "unknown pruner 'always'"),
    "negative workers": (RUN + ["--workers-per-gpu", "-1"], 2, "--workers-per-gpu must be"),
    "unknown device": (RUN + ["--device", "tpu"], 2, "tpu"),
    # Read-only commands never write, and none but search.run creates a storage.
    "status of a mistyped storage": (
        ["search.status", "--study", "s", "--storage", "sqlite:///typo.db"], 2,
        "no study storage at typo.db"),
    "export from a mistyped storage": (
        ["search.export", "--study", "s", "--storage", "sqlite:///typo.db"], 2,
        "no study storage at typo.db"),
    "report of a mistyped storage": (
        ["search.report", "--study", "s", "--storage", "sqlite:///typo.db"], 2,
        "no study storage at typo.db"),
    "final on a mistyped storage": (
        ["search.final", "--study", "s", "--storage", "sqlite:///typo.db"], 2,
        "no study storage at typo.db"),
    "worker on a mistyped storage": (
        ["search.worker", "--study", "s", "--storage", "sqlite:///typo.db"], 2,
        "no study storage at typo.db"),
    "dashboard on a mistyped storage": (
        ["search.dashboard", "--storage", "sqlite:///typo.db"], 2, "no study storage at typo.db"),
    "attach to a mistyped storage": (
        TRAIN + ["good.yaml", "--attach", "--storage", "sqlite:///typo.db"], 2,
        "no study storage at typo.db"),
    "status of someone else's database": (
        ["search.status", "--study", "s", "--storage", "sqlite:///people.db"], 2,
        "an SQLite database without Optuna's tables"),
    "a search in someone else's database": (
        RUN + ["--storage", "sqlite:///people.db"], 2, "without Optuna's tables"),
    "status of an empty file": (
        ["search.status", "--study", "s", "--storage", "sqlite:///empty.db"], 2,
        "holds no studies yet"),
    "status of a folder": (
        ["search.status", "--study", "s", "--storage", "sqlite:///runs"], 2,
        "is a folder, not an SQLite file"),
    "a search in a missing folder": (
        RUN + ["--storage", "sqlite:///nowhere/s.db"], 2, "the folder nowhere does not exist"),
    # A study that search.run did not create is refused by every command that runs it.
    "search.run adopting a foreign study": (
        RUN + ["--study", "foreign"], 2, "study 'foreign' was not created by search.run"),
    "worker on a foreign study": (
        ["search.worker", "--study", "foreign"], 2, "was not created by search.run"),
    "final on a foreign study": (
        ["search.final", "--study", "foreign"], 2, "was not created by search.run"),
    "a study that is not there": (["search.status", "--study", "nope"], 2,
                                  "no study named 'nope' in this storage"),
    "report of a study that is not there": (["search.report", "--study", "nope"], 2,
                                            "no study named 'nope'"),
    # Inputs that can only be mistakes, and typed values inside nested keys.
    "width 0": (TRAIN + ["width0.yaml"], 2, "'model_args.width' must be greater than 0, not 0"),
    "negative depth": (TRAIN + ["negative-depth.yaml"], 2,
                       "'model_args.depth' must be greater than 0, not -2"),
    "width as text": (TRAIN + ["width-text.yaml"], 2,
                      "'model_args.width' must be a valid integer"),
    "dropout of 1": (TRAIN + ["dropout1.yaml"], 2, "'model_args.dropout' must be less than 1"),
    "a model argument with a typo": (TRAIN + ["unknown-arg.yaml"], 2,
                                     "model 'mlp' has no argument widht"),
    "a model that does not exist": (TRAIN + ["unknown-model.yaml"], 2, "unknown model 'vit'"),
    "one class in a config": (TRAIN + ["one-class.yaml"], 2, "'classes' names one class"),
    "momentum as text": (TRAIN + ["momentum-text.yaml"], 2,
                         "'optimizer_args.momentum' must be a valid number"),
    "momentum above 1": (TRAIN + ["momentum-big.yaml"], 2,
                         "'optimizer_args.momentum' must be less than 1, not 1.5"),
    "beta as text": (TRAIN + ["beta-text.yaml"], 2, "'optimizer_args.beta2' must be a valid"),
    "schedule argument as text": (TRAIN + ["pct-text.yaml"], 2,
                                  "'schedule_args.pct_start' must be a valid number"),
    "step every 0 of the run": (TRAIN + ["step-zero.yaml"], 2,
                                "'schedule_args.step_fraction' must be greater than 0"),
    "crop padding as text": (TRAIN + ["padding-text.yaml"], 2,
                             "'augment.crop.padding' must be a valid integer"),
    "flip probability 2": (TRAIN + ["flip-p2.yaml"], 2,
                           "'augment.flip.p' must be less than or equal to 1, not 2"),
    "augmentation without a mapping": (TRAIN + ["cutout-number.yaml"], 2,
                                       "'augment.cutout' must be a mapping of its arguments"),
    "mixup alpha 0": (TRAIN + ["mixup-alpha0.yaml"], 2,
                      "'augment.mixup.alpha' must be greater than 0"),
    "averaging every 0 steps": (TRAIN + ["every0.yaml"], 2,
                                "'averaging_args.every' must be greater than 0"),
    "tta weight as text": (TRAIN + ["tta-text.yaml"], 2,
                           "'tta_args.translate_weight' must be a valid number"),
    "second phase momentum as text": (TRAIN + ["second-momentum.yaml"], 2,
                                      "'second_phase.optimizer_args.momentum' must be a valid"),
    "second phase cutout size -1": (TRAIN + ["second-cutout.yaml"], 2,
                                    "'second_phase.augment.cutout.size' must be greater than"),
    "second phase lr as text": (TRAIN + ["second-lr.yaml"], 2,
                                "'second_phase.lr' must be a finite number"),
    "negative lr scale": (TRAIN + ["group-negative.yaml"], 2,
                          "param_groups.norm.lr_scale must be a number >= 0"),
    "freeze epochs as text": (TRAIN + ["freeze-text.yaml"], 2,
                              "freeze.stem must be a whole number of epochs"),
    "negative seed in a config": (TRAIN + ["seed-negative.yaml"], 2, "'seed' must be at least 0"),
    "huge seed in a config": (TRAIN + ["seed-huge.yaml"], 2, "'seed' must be at most 4294967295"),
    "batch size 0": (TRAIN + ["batch0.yaml"], 2, "'batch_size' must be at least 1"),
    "epochs as text": (TRAIN + ["epochs-text.yaml"], 2, "'epochs' must be a whole number"),
    "negative lr": (TRAIN + ["lr-negative.yaml"], 2, "'lr' must not be negative"),
    "provenance that is not a mapping": (TRAIN + ["provenance-list.yaml"], 2,
                                         "'provenance' must be a mapping"),
    "a config that is not UTF-8": (TRAIN + ["latin1.yaml"], 2, "not a text file in UTF-8"),
    "a folder as the config": (TRAIN + ["runs"], 2, "cannot read config file runs"),
    "an empty config": (TRAIN + ["empty.yaml"], 2, "expected a mapping of config fields"),
    "a config that is a list": (TRAIN + ["list.yaml"], 2, "expected a mapping of config fields"),
    "a config that is not YAML": (TRAIN + ["broken.yaml"], 2, "broken.yaml is not valid YAML"),
    "train --epochs 0": (TRAIN + ["good.yaml", "--epochs", "0"], 2,
                         "'epochs' must be at least 1"),
    "train --seed -1": (TRAIN + ["good.yaml", "--seed", "-1"], 2, "'seed' must be at least 0"),
    "train --classes cat": (TRAIN + ["good.yaml", "--classes", "cat"], 2, "names one class"),
    "train --classes with one unknown": (TRAIN + ["good.yaml", "--classes", "cat,zebra"], 2,
                                         "has no class 'zebra'"),
    "final --top 0": (["search.final", "--study", "s", "--top", "0"], 2,
                      "--top must be positive, not 0"),
    "final --seeds 0": (["search.final", "--study", "s", "--seeds", "0"], 2,
                        "--seeds must be positive, not 0"),
    "export --top 0": (["search.export", "--study", "s", "--top", "0"], 2,
                       "--top must be at least 1"),
    "export of a trial that is not there": (["search.export", "--study", "s", "--trial", "99"],
                                            2, "the study has no trial 99"),
    # Checkpoints and images.
    "a folder as the checkpoint": (["search.predict", "--checkpoint", "runs", "cat.png"], 2,
                                   "cannot read checkpoint runs"),
    "a config as the checkpoint": (["search.predict", "--checkpoint", "good.yaml", "cat.png"],
                                   2, "good.yaml is not a checkpoint written by search.train"),
    "a study storage as the checkpoint": (
        ["search.predict", "--checkpoint", "studies.db", "cat.png"], 2, "is not a checkpoint"),
    "a checkpoint that is not there": (
        ["search.predict", "--checkpoint", "missing.pt", "cat.png"], 2, "no checkpoint at"),
    "fine-tuning a folder": (
        ["search.run", "--space", "finetune", "--dataset", "sample", "--init-from", "runs"], 2,
        "cannot read checkpoint"),
    "fine-tuning a config": (
        ["search.run", "--space", "finetune", "--dataset", "sample", "--init-from",
         "good.yaml"], 2, "is not a checkpoint written by search.train"),  # fmt: skip
    "an image that is not one": (
        ["search.predict", "--checkpoint", "runs/good/checkpoint.pt", "corrupt.png"], 2,
        "cannot read image corrupt.png"),
    "a truncated image": (
        ["search.predict", "--checkpoint", "runs/good/checkpoint.pt", "truncated.jpg"], 2,
        "cannot read image truncated.jpg"),
    "a decompression bomb": (
        ["search.predict", "--checkpoint", "runs/good/checkpoint.pt", "bomb.png"], 2,
        "bomb.png is too large to decode safely"),
    "a folder as an image": (
        ["search.predict", "--checkpoint", "runs/good/checkpoint.pt", "runs"], 2,
        "cannot read image runs"),
    "an image that is not there": (
        ["search.predict", "--checkpoint", "runs/good/checkpoint.pt", "dog.png"], 2,
        "cannot read image dog.png"),
    "a 16-bit image is read": (
        ["search.predict", "--checkpoint", "runs/good/checkpoint.pt", "deep.png"], 0, ""),
    "an unreadable image in an image folder": (
        IMAGEFOLDER_RUN + ["folders/broken"], 2, "cannot read image folders/broken/train/b/x.png"),
    "an empty class folder": (IMAGEFOLDER_RUN + ["folders/empty-class"], 2,
                              "folders/empty-class/train/c holds no images"),
    "test images of another size": (IMAGEFOLDER_RUN + ["folders/sizes"], 2,
                                    "test/ images are 3x12x12 and train/ images 3x8x8"),
    "an image folder of one class": (IMAGEFOLDER_RUN + ["folders/one-class"], 2,
                                     "imagefolder has 1 class (a)"),
    "an image folder without train/": (IMAGEFOLDER_RUN + ["runs"], 2, "has no train/ folder"),
    # --fix and the user's own space module.
    "a --fix value YAML cannot read": (RUN + ["--fix", "sgd_lr=["], 2,
                                       "--fix sgd_lr=[: cannot read the value"),
    "a --fix without a name": (RUN + ["--fix", "=3"], 2, "--fix takes NAME=VALUE"),
    "a space module that raises": (
        ["search.run", "--space", "mine", "--space-module", "boom"], 2,
        "--space-module boom failed as it was imported: RuntimeError: my module is broken"),
    "a space module that registers a name twice": (
        ["search.run", "--space", "mlp", "--space-module", "dupe"], 2,
        "ValueError: space 'mlp' is registered twice"),
    "a space written for the previous release (context.max_epochs)": (
        ["search.run", "--space", "older", "--space-module", "older", "--dataset", "sample",
         "--epochs", "1", "--trials", "2"], 0,
        "SpaceContext.max_epochs is deprecated: use context.epochs"),
    "a space that raises as it suggests": (
        ["search.run", "--space", "buggy", "--space-module", "buggy", "--dataset", "sample",
         "--epochs", "1", "--trials", "8"], 1,
        "stopped after 5 failed trials in a row, the last: trial 4: space 'buggy' raised "
        "KeyError: 'adam' ("),
    # The replay section's own inputs (it reads no dataset and trains nothing).
    "a replay budget of 0": (["search.bench", "--sections", "replay", "--replay-budget", "0"],
                             2, "--replay-budget must be positive, not 0"),
    "a replay of no seeds": (["search.bench", "--sections", "replay", "--replay-seeds", "0"],
                             2, "--replay-seeds must be positive, not 0"),
    "a replay without workers": (
        ["search.bench", "--sections", "replay", "--replay-workers", "0"], 2,
        "--replay-workers must be positive, not 0"),
    "an LCBench task that is not one": (["search.bench", "--sections", "replay", "--tasks", "1"],
                                        2, "--tasks: LCBench has no task '1'; its tasks: 3945"),
    "a strategy no curve can replay": (
        ["search.bench", "--sections", "replay", "--strategies", "pbt"], 2,
        "--strategies: 'pbt' cannot be replayed; choose from random"),
    "a replayed warm start with one task to start from": (
        ["search.bench", "--sections", "replay", "--tasks", "3945", "--strategies",
         "default-prior"], 2,
        "--strategies: 'default-prior' starts from a search of another task; name two or more "
        "--tasks of LCBench"),
    "a transfer table with no cold search first": (
        ["search.bench", "--sections", "transfer", "--transfer-strategies",
         "default-prior,default-box"], 2,
        "--transfer-strategies names a strategy started cold, then one or more that warm-start"),
    "a transfer table of an unknown strategy": (
        ["search.bench", "--sections", "transfer", "--transfer-strategies", "default,warmest"],
        2, "--transfer-strategies: unknown strategy warmest; choose of random"),
    # A recorded table of our own curves, and the record section that writes one.
    "a recorded table with an epoch missing": (
        REPLAY + ["--benchmark", "recorded:short-table"], 2,
        "short-table: configuration 1 has 1 of 2 epochs and 1 epoch times; record it again"),
    "a recorded table that is not there": (
        REPLAY + ["--benchmark", "recorded:no-table"], 2,
        "--benchmark recorded:no-table: no such folder"),
    "a folder that holds no recorded table": (
        REPLAY + ["--benchmark", "recorded:folders"], 2,
        "folders holds no recorded table (no settings.json"),
    "a recorded table without its folder": (
        REPLAY + ["--benchmark", "recorded"], 2,
        "--benchmark recorded:PATH names a recorded table's folder"),
    "a benchmark we do not have": (REPLAY + ["--benchmark", "nasbench201"], 2,
                                   "unknown benchmark 'nasbench201'; choose one of: lcbench"),
    "LCBench with a path": (REPLAY + ["--benchmark", "lcbench:3945"], 2,
                            "--benchmark lcbench takes no ':3945'"),
    "LCBench tasks for a recorded table": (
        REPLAY + ["--benchmark", "recorded:short-table", "--tasks", "3945"], 2,
        "--tasks names LCBench's tasks; a recorded table is one task"),
    "recording onto a table of other settings": (
        RECORD + ["--record-to", "short-table", "--record-epochs", "3"], 2,
        "--record-to short-table holds a table of other settings (epochs: 2)"),
    "recording with a pin the space lacks": (
        RECORD + ["--record-fix", "depht=3"], 2,
        "--fix depht: space mlp has no such parameter"),
    "recording no configurations": (RECORD + ["--record-configs", "0"], 2,
                                    "--record-configs must be positive, not 0"),
    "recording a space we do not have": (RECORD + ["--record-space", "resnt"], 2,
                                         "unknown space 'resnt'"),
    "recording into a file": (RECORD + ["--record-to", "cat.png"], 2,
                              "cat.png is a file, not a folder"),
    # Unicode and very long names, and control characters in them.
    "a study name with a newline": (RUN + ["--study", "a\nb"], 2,
                                    "--study must not hold control characters"),
    "a study name of seventy cats": (RUN + ["--study", "\u732b" * 70], 2,
                                     "--study is 210 bytes long; at most 200"),
    "a study named in Unicode": (RUN + ["--study", "\u00e9tude-\u732b"], 0, ""),
    "an export to a Unicode path": (
        ["search.export", "--study", "s", "-o", "r\u00e9sum\u00e9/\u732b.yaml"], 0, ""),
    "a report to a Unicode path": (
        ["search.report", "--study", "s", "-o", "\u732b/r\u00e9sum\u00e9.html"], 0, ""),
    "a study that does not exist, named in Unicode": (
        ["search.export", "--study", "\u00e9tude-inconnue", "-o", "x.yaml"], 2,
        "no study named '\u00e9tude-inconnue' in this storage"),
    # A study plain Optuna made (not search.run): what needs our settings says so.
    "status of a study plain Optuna made": (
        ["search.status", "--study", "plain"], 2, "study 'plain' was not created by search.run"),
    "export of a study plain Optuna made": (
        ["search.export", "--study", "plain", "-o", "plain.yaml"], 2,
        "has no stored config (not run by search.run)"),
    "a worker for a study plain Optuna made": (
        ["search.worker", "--study", "plain"], 2, "study 'plain' was not created by search.run"),
    # Exported configs edited by hand before the retrain.
    "a config indented with a tab": (TRAIN + ["tabbed.yaml"], 2, "tabbed.yaml"),
    "a config with its model taken out": (TRAIN + ["no-model.yaml"], 2, "model"),
    "a config naming a class the data lacks": (TRAIN + ["unicorn.yaml"], 2, "unicorn"),
    "a config naming classes in Unicode": (TRAIN + ["cats.yaml"], 2, "\u732b"),
    "a config too wide for memory": (TRAIN + ["wide.yaml", "--output-dir", "wide"], 1,
                                      "out of memory on cpu"),
    "a config file of megabytes": (TRAIN + ["huge.json"], 2,
                                   "huge.json is 2 MiB; a config is a few hundred bytes"),
    "XDG_CACHE_HOME a file": (
        ["search.run", "--space", "test_tiny", "--space-module", "tests.spaces_for_tests",
         "--dataset", "sample", "--epochs", "1", "--trials", "1", "--storage",
         "sqlite:///xdg.db", "{env}XDG_CACHE_HOME=notdb.db"], 0, ""),
    "a space module with a syntax error": (
        ["search.run", "--space", "mine", "--space-module", "syntax"], 2,
        "--space-module syntax failed as it was imported: SyntaxError"),
    # Storage faults, each its own line.
    "a locked storage": (RUN + ["--storage", "sqlite:///locked.db?timeout=0.5"], 1,
                         "is locked by another process (waited 0.5 s)"),
    "a read-only storage": (RUN + ["--storage", "sqlite:///readonly.db"], 1, "is read-only"),
    "status of a read-only storage works": (
        ["search.status", "--study", "s", "--storage", "sqlite:///readonly.db"], 0, ""),
    "a damaged storage": (RUN + ["--storage", "sqlite:///damaged.db"], 2,
                          "is damaged (SQLite: database disk image is malformed)"),
    "status of a damaged storage": (
        ["search.status", "--study", "s", "--storage", "sqlite:///damaged.db"], 2, "is damaged"),
    "a storage of another Optuna schema": (
        ["search.status", "--study", "s", "--storage", "sqlite:///old-schema.db"], 2,
        "optuna storage upgrade"),
    "a search in a storage of another schema": (
        RUN + ["--storage", "sqlite:///old-schema.db"], 2, "another version of Optuna's schema"),
    "a text file as the storage": (
        ["search.status", "--study", "s", "--storage", "sqlite:///notdb.db"], 2,
        "notdb.db is not an SQLite database"),
    "a search in a text file": (RUN + ["--storage", "sqlite:///notdb.db"], 2,
                                "is not an SQLite database"),
    "an unreachable PostgreSQL": (
        ["search.status", "--study", "s", "--storage", "postgresql://postgres@127.0.0.1:1/test"],
        1, "cannot reach storage postgresql+psycopg://postgres@127.0.0.1:1/test"),
    "a PostgreSQL database that does not exist": (
        ["search.status", "--study", "s", "--storage",
         "postgresql://postgres@127.0.0.1:5432/no_such_database"], 2,
        'database "no_such_database" does not exist'),  # fmt: skip
    "a PostgreSQL role that may not create Optuna's tables": (
        RUN + ["--storage", f"postgresql://{NO_CREATE_ROLE}@127.0.0.1:5432/{NO_CREATE_DB}"], 2,
        "refused this role: permission denied for schema public; Optuna makes its tables"),
    "status through that role": (
        ["search.status", "--study", "s", "--storage",
         f"postgresql://{NO_CREATE_ROLE}@127.0.0.1:5432/{NO_CREATE_DB}"], 2,
        "holds no Optuna studies"),
    "a search on a PostgreSQL standby (read-only, in recovery)": (
        RUN + ["--storage", f"postgresql://postgres@127.0.0.1:5432/{STANDBY_DB}"], 1,
        "is read-only: cannot execute INSERT in a read-only transaction (a standby in "
        "recovery, or default_transaction_read_only); point --storage at the primary"),
    "status on that standby works": (
        ["search.status", "--study", "s", "--storage",
         f"postgresql://postgres@127.0.0.1:5432/{STANDBY_DB}"], 0, ""),
    "a worker on that standby": (
        ["search.worker", "--study", "plain", "--storage",
         f"postgresql://postgres@127.0.0.1:5432/{STANDBY_DB}"], 2,
        "study 'plain' was not created by search.run"),
    # The dashboard.
    "a port out of range": (["search.dashboard", "--port", "99999"], 2,
                            "--port must be 0 to 65535, not 99999"),
    "a negative port": (["search.dashboard", "--port", "-1"], 2, "--port must be 0 to 65535"),
    "a busy port": (["search.dashboard", "--port", "{busy_port}"], 2,
                    "cannot serve on 127.0.0.1:{busy_port}: Address already in use"),
    # Config files written for other tools.
    "a timm training config": (TRAIN + ["timm-args.yaml"], 2, "timm-args.yaml"),
    "a Hydra config": (TRAIN + ["hydra.yaml"], 2, "hydra.yaml"),
    "an Optuna trial's parameters": (TRAIN + ["optuna-params.yaml"], 2, "optuna-params.yaml"),
    "a Lightning config": (TRAIN + ["lightning.yaml"], 2, "lightning.yaml"),
    "a config in JSON with a comma left out": (TRAIN + ["params.json"], 2,
                                               "params.json is not valid YAML"),
    "a CSV as the config": (TRAIN + ["table.csv"], 2, "expected a mapping of config fields"),
    # Numbers that blow up.
    "an infinite lr": (TRAIN + ["lr-inf.yaml"], 2, "'lr' must be a finite number"),
    "a NaN lr": (TRAIN + ["lr-nan.yaml"], 2, "'lr' must be a finite number"),
    "a NaN weight decay": (TRAIN + ["wd-nan.yaml"], 2, "'weight_decay' must be a finite number"),
    "a NaN momentum": (TRAIN + ["momentum-nan.yaml"], 2, "'optimizer_args.momentum'"),
    "a --fix of NaN": (RUN + ["--fix", "sgd_lr=.nan"], 2, "--fix sgd_lr=nan: outside"),
    "a diverging retrain": (TRAIN + ["lr-huge.yaml", "--output-dir", "diverged"], 1,
                            "diverged"),
    # Devices the machine does not have.
    "train on a GPU that is not there": (TRAIN + ["good.yaml", "--device", "cuda"], 2,
                                         "--device cuda"),
    "train on the fifth GPU": (TRAIN + ["good.yaml", "--device", "cuda:5"], 2, "--device cuda:5"),
    "train on Apple's GPU": (TRAIN + ["good.yaml", "--device", "mps"], 2, "--device mps"),
    "search on a GPU that is not there": (RUN + ["--device", "cuda"], 2, "--device cuda"),
    "predict on a GPU that is not there": (
        ["search.predict", "--checkpoint", "runs/good/checkpoint.pt", "cat.png", "--device",
         "cuda"], 2, "--device cuda"),  # fmt: skip
    "a worker on a GPU that is not there": (["search.worker", "--study", "s", "--device", "cuda"],
                                            2, "--device cuda"),
    # Odd study names and storage URLs.
    "an empty study name": (RUN + ["--study", ""], 2, "--study must name the study"),
    "a blank study name": (RUN + ["--study", "  "], 2, "--study must name the study"),
    # Any other name is Optuna's to keep; its checkpoint folder's name is made safe
    # (checkpoints.folder_name), so that none climbs out of --checkpoint-dir.
    "a study name that climbs out of the checkpoint folder": (
        RUN + ["--study", "../escape", "--storage", "sqlite:///odd-names.db", "--create-only"],
        0, ""),
    "a study name with a slash": (
        RUN + ["--study", "mine/first", "--storage", "sqlite:///odd-names.db", "--create-only"],
        0, ""),
    "a study name too long for a folder": (RUN + ["--study", "x" * 300], 2,
                                           "--study is 300 bytes long"),
    "a storage without a scheme": (RUN + ["--storage", "studies.db"], 2, "sqlite:///studies.db"),
    "a storage URL with two slashes": (RUN + ["--storage", "sqlite://studies.db"], 2,
                                       "sqlite:///"),
    "a postgres:// URL": (["search.status", "--study", "s", "--storage",
                           "postgres://postgres@127.0.0.1:5432/test"], 2, "postgresql://"),
    "a MySQL storage": (RUN + ["--storage", "mysql://root@127.0.0.1/test"], 2,
                        "unsupported database 'mysql'"),
    "a Redis storage": (["search.status", "--study", "s", "--storage", "redis://127.0.0.1"], 2,
                        "unsupported database 'redis'"),
    "a dashboard on a file path": (["search.dashboard", "--storage", "studies.db"], 2,
                                   "sqlite:///studies.db"),
    # Checkpoints of other kinds and origins.
    "a torchvision state dict": (
        ["search.predict", "--checkpoint", "model.pth", "cat.png"], 2,
        "model.pth is not a checkpoint written by search.train"),
    "a TorchScript module": (["search.predict", "--checkpoint", "scripted.pt", "cat.png"], 2,
                             "scripted.pt is not a checkpoint written by search.train"),
    "a safetensors file of another model": (
        ["search.predict", "--checkpoint", "weights.safetensors", "cat.png"], 2,
        "weights.safetensors"),
    "a checkpoint cut in half": (["search.predict", "--checkpoint", "half.pt", "cat.png"], 2,
                                 "half.pt"),
    "a trial's checkpoint": (["search.predict", "--checkpoint", "trial.pt", "cat.png"], 2,
                             "a search trial's checkpoint"),
    "fine-tuning from a torchvision state dict": (
        ["search.run", "--space", "finetune", "--dataset", "sample", "--init-from",
         "model.pth"], 2, "model.pth is not a checkpoint written by search.train"),  # fmt: skip
    # Unusual image files, each read as a user means it.
    "a CMYK JPEG is read": (
        ["search.predict", "--checkpoint", "runs/good/checkpoint.pt", "cmyk.jpg"], 0, ""),
    "a palette PNG with transparency is read": (
        ["search.predict", "--checkpoint", "runs/good/checkpoint.pt", "palette.png"], 0, ""),
    "an animated GIF is read": (
        ["search.predict", "--checkpoint", "runs/good/checkpoint.pt", "moving.gif"], 0, ""),
    "a one-pixel image is read": (
        ["search.predict", "--checkpoint", "runs/good/checkpoint.pt", "dot.png"], 0, ""),
    "a WebP image is read": (
        ["search.predict", "--checkpoint", "runs/good/checkpoint.pt", "photo.webp"], 0, ""),
    "a floating-point TIFF is read": (
        ["search.predict", "--checkpoint", "runs/good/checkpoint.pt", "float.tif"], 0, ""),
    # A broken environment.
    # search.status loads no torch, so no OpenMP to mind it
    "a thread count that is not a number": (
        ["search.status", "--study", "s", "{env}OMP_NUM_THREADS=many"], 0, ""),
    "an unwritable temporary folder": (
        ["search.export", "--study", "s", "-o", "exported.yaml", "{env}TMPDIR=locked-dir"], 0,
        ""),
    "a broken optuna-dashboard installed": (
        ["search.dashboard", "{env}PYTHONPATH=broken-env"], 2, "optuna_dashboard"),
    # libgomp's own warning, one line, then its default thread count: what torch users know
    "a thread count that is not a number, while training": (
        TRAIN + ["good.yaml", "--output-dir", "threads", "{env}OMP_NUM_THREADS=many"], 0,
        "Invalid value for environment variable OMP_NUM_THREADS"),
    # What a successful command must not print: Optuna's warnings about a small study.
    "a report of a small study is quiet": (["search.report", "--study", "s", "-o", "r.html"], 0,
                                           ""),
}  # fmt: skip


def make_postgres_limits() -> None:
    """A database whose schema a role may not create in (PostgreSQL 15's default for a role
    that does not own it), and a database that holds a plain Optuna study and one of ours
    (created, nothing run) and then answers as a standby in recovery does: every
    transaction read-only."""
    import psycopg

    admin = postgres.URL
    no_create, standby = (postgres.fresh_database(name) for name in (NO_CREATE_DB, STANDBY_DB))
    with psycopg.connect(admin, autocommit=True) as connection:
        if not connection.execute("SELECT 1 FROM pg_roles WHERE rolname = %s",
                                  (NO_CREATE_ROLE,)).fetchone():  # fmt: skip
            connection.execute(f"CREATE ROLE {NO_CREATE_ROLE} LOGIN")
    with psycopg.connect(no_create, autocommit=True) as db:
        db.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
    opened = optuna.storages.RDBStorage(standby)
    plain = optuna.create_study(study_name="plain", storage=opened, direction="maximize")
    plain.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=2)
    opened.engine.dispose()  # its connections would hold the database open
    from search import run

    assert run.main(RUN[1:] + ["--storage", standby, "--study", "s", "--create-only"]) == 0
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f"ALTER DATABASE {STANDBY_DB} SET default_transaction_read_only = on")


def write_image(path: Path, size: int, seed: int = 0) -> None:
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)


def make_image_folders(root: Path) -> None:
    for name, classes, test_size in (("broken", "ab", 8), ("empty-class", "ab", 8),
                                     ("sizes", "ab", 12), ("one-class", "a", 8)):  # fmt: skip
        for number, label in enumerate(classes):
            for split, size in (("train", 8), ("test", test_size)):
                for index in range(3):
                    write_image(root / name / split / label / f"{index}.png", size, number)
    (root / "broken/train/b/x.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    (root / "empty-class/train/c").mkdir()


def write_short_table(folder: Path) -> None:
    """A recorded table (search.bench --sections record) whose second configuration lost an
    epoch, as a hand edit or a cut-off write could leave it."""
    import json

    folder.mkdir()
    settings = {"space": "mlp", "dataset": "sample", "classes": [], "epochs": 2,
                "fixed_params": {"image_size": 0}, "seed": 0, "ranges": {}}  # fmt: skip
    (folder / "settings.json").write_text(json.dumps(settings))
    rows = [{"number": 0, "params": {}, "val_accuracy": [0.2, 0.3], "val_loss": [2.0, 1.9],
             "seconds": [1.0, 1.0]},
            {"number": 1, "params": {}, "val_accuracy": [0.2], "val_loss": [2.0],
             "seconds": [1.0]}]  # fmt: skip
    (folder / "curves.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))


def write_other_files(root: Path) -> None:
    """Checkpoints of other kinds and origins, and images in unusual formats."""
    import safetensors.torch
    import torch

    layer = torch.nn.Linear(4, 2)
    torch.save(layer.state_dict(), root / "model.pth")
    with warnings.catch_warnings():  # "torch.jit.script is deprecated": users still have them
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.script(layer).save(str(root / "scripted.pt"))
    safetensors.torch.save_file(layer.state_dict(), root / "weights.safetensors")
    whole = (root / "runs/good/checkpoint.pt").read_bytes()
    (root / "half.pt").write_bytes(whole[: len(whole) // 2])
    kept = next((root / "checkpoints").rglob("trial-*.pt"))  # --keep-checkpoints 1
    (root / "trial.pt").write_bytes(kept.read_bytes())
    pixels = np.random.default_rng(1).integers(0, 256, (20, 24, 3), dtype=np.uint8)
    Image.fromarray(pixels).convert("CMYK").save(root / "cmyk.jpg")
    palette = Image.fromarray(pixels).convert("P")
    palette.save(root / "palette.png", transparency=0)
    frames = [Image.fromarray(pixels).convert("P"), Image.fromarray(255 - pixels).convert("P")]
    frames[0].save(root / "moving.gif", save_all=True, append_images=frames[1:])
    Image.new("RGB", (1, 1), (200, 10, 10)).save(root / "dot.png")
    Image.fromarray(pixels).save(root / "photo.webp")
    Image.fromarray(pixels[..., 0].astype(np.float32) / 255).save(root / "float.tif")


def damage(path: Path) -> None:
    """Overwrite the pages after SQLite's first with garbage: the header still says SQLite."""
    data = bytearray(path.read_bytes())
    data[4096:12288] = os.urandom(8192)
    path.write_bytes(bytes(data))


def chattr(flag: str, *paths: Path) -> bool:
    return subprocess.run(["chattr", flag, *map(str, paths)], capture_output=True).returncode == 0


def trials_digest(storage: str) -> str:
    """Everything a study holds that a mistake could change, as one hash."""
    found = optuna.load_study(study_name="s", storage=storage)
    shown = [(t.number, t.state.name, t.values, t.params, t.user_attrs, t.intermediate_values)
             for t in found.get_trials(deepcopy=False)]  # fmt: skip
    return hashlib.sha256(repr((shown, found.user_attrs)).encode()).hexdigest()


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A folder as a user has it: a real study `s` in studies.db (3 trials), a foreign and a
    poisoned study beside it, an exported config, a trained checkpoint, broken files."""
    root = tmp_path_factory.mktemp("bad-input")
    storage = f"sqlite:///{root / 'studies.db'}"  # the default storage's name
    from search import export, run, train

    kept = ["--checkpoint-dir", str(root / "checkpoints"), "--keep-checkpoints", "1"]
    assert run.main(RUN[1:] + ["--trials", "3", "--storage", storage, "--study", "s", *kept]) == 0
    optuna.create_study(study_name="foreign", storage=storage, direction="maximize")
    plain = optuna.create_study(study_name="plain", storage=storage, direction="maximize")
    plain.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=2)  # no settings
    poisoned = optuna.create_study(study_name="poisoned", storage=storage, direction="maximize")
    for key, value in optuna.load_study(study_name="s", storage=storage).user_attrs.items():
        poisoned.set_user_attr(key, value)
    poisoned.set_user_attr("seed", 99999999999)  # as an older version recorded it
    cwd = Path.cwd()
    os.chdir(root)
    try:
        assert export.main(["--study", "s", "-o", "good.yaml"]) == 0
        assert train.main(["--config", "good.yaml", "--output-dir", "runs/good"]) == 0
    finally:
        os.chdir(cwd)
    for name, document in CONFIGS.items():
        (root / name).write_text(yaml.safe_dump(document))
    for name, data in TEXT_FILES.items():
        (root / name).write_bytes(data)
    write_image(root / "cat.png", 32)
    write_image(root / "whole.jpg", 32)
    (root / "truncated.jpg").write_bytes((root / "whole.jpg").read_bytes()[:300])
    Image.new("1", (14000, 14000)).save(root / "bomb.png")  # 196 Mpixel: over twice PIL's limit
    levels = np.linspace(0, 65535, 32 * 32).reshape(32, 32).astype(np.uint16)
    Image.fromarray(levels).save(root / "deep.png")  # 16-bit greyscale
    make_image_folders(root / "folders")
    write_short_table(root / "short-table")
    write_other_files(root)
    (root / "broken-env/optuna_dashboard").mkdir(parents=True)
    (root / "broken-env/optuna_dashboard/__init__.py").write_text(
        "raise ImportError('cannot import name _app from partially initialized module')\n"
    )
    with sqlite3.connect(root / "people.db") as people:
        people.execute("CREATE TABLE people (name TEXT)")
    for copy in ("locked.db", "readonly.db", "damaged.db", "old-schema.db"):
        with sqlite3.connect(root / "studies.db") as source, sqlite3.connect(root / copy) as to:
            source.backup(to)  # with what the write-ahead log holds
        with sqlite3.connect(root / copy) as to:
            to.execute("PRAGMA journal_mode=DELETE")  # one file, as a copied study is
    damage(root / "damaged.db")
    with sqlite3.connect(root / "old-schema.db") as old:
        old.execute("UPDATE alembic_version SET version_num = 'v3.0.0.a'")
    (root / "locked-dir").mkdir()
    make_postgres_limits()
    immutable = chattr("+i", root / "readonly.db", root / "locked-dir")
    yield root, storage, immutable
    chattr("-i", root / "readonly.db", root / "locked-dir")


def run_with_environment(module: str, args: list[str], environment: dict, root: Path):
    """`python -m module args` in `root` with these environment variables (PYTHONPATH's
    folders put before the repository's)."""
    env = {**os.environ, **environment, "PYTHONPATH": os.pathsep.join(
        [str(root / folder) for folder in environment.get("PYTHONPATH", "").split(",") if folder]
        + [str(REPO)])}  # fmt: skip
    return subprocess.run([sys.executable, "-m", module, *args], cwd=root, env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip


@pytest.mark.parametrize("case", CASES)
def test_a_mistake_is_one_line_and_its_exit_code_and_the_study_is_unchanged(
    case, folder, monkeypatch, capfd
):
    root, storage, immutable = folder
    (module, *args), expected_code, fragment = CASES[case]
    environment = dict(arg.removeprefix("{env}").split("=", 1) for arg in args
                       if arg.startswith("{env}"))  # fmt: skip
    args = [arg for arg in args if not arg.startswith("{env}")]
    if "unwritable" in case or "read-only" in case:
        if not immutable:
            pytest.skip("chattr +i is not supported here: nothing is read-only to root")
    monkeypatch.chdir(root)
    monkeypatch.syspath_prepend(str(root))  # as `python -m` puts the working directory first
    # a user's space module registers its spaces in this process: they leave with the case
    monkeypatch.setattr(spaces.SPACES, "_entries", dict(spaces.SPACES._entries))
    before = trials_digest(storage)
    people = (root / "people.db").read_bytes()
    with socket.socket() as busy, sqlite3.connect(root / "locked.db", isolation_level=None) as lock:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = str(busy.getsockname()[1])
        args = [arg.replace("{busy_port}", port) for arg in args]
        fragment = fragment.replace("{busy_port}", port)
        lock.execute("BEGIN EXCLUSIVE")  # another process's write in progress
        if environment:  # a process of its own: the environment is read as it starts
            done = run_with_environment(module, args, environment, root)
            code, out, err = done.returncode, done.stdout, done.stderr
        else:  # a warning would print a line on a user's stderr: here it is recorded
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("default")  # Python's own, as a user's shell has it
                code = run_in_this_process(module, args, monkeypatch)
            out, err = capfd.readouterr()
            err += "".join(f"{w.category.__name__}: {w.message}\n" for w in caught)
        lock.execute("ROLLBACK")
    assert "Traceback" not in out + err, err
    assert code == expected_code, err
    lines = err.strip().splitlines()
    if expected_code == 0:  # nothing the user cannot act on, or the one line to act on
        assert len(lines) == bool(fragment) and all(fragment in line for line in lines), err
    else:
        assert len(lines) == 1, err
        assert fragment in lines[0]
        assert "optuna-dashboard on" not in out  # never "listening" on a port it cannot have
    assert trials_digest(storage) == before
    assert (root / "people.db").read_bytes() == people  # someone else's database, untouched
    assert not (root / "typo.db").exists()  # read-only commands create no storage
