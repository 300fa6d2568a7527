"""Every flag parses and is documented; every mistake a person can make gets one clear line on
stderr and a non-zero exit, never a traceback."""

import pytest
import torch

from search import (
    bench,
    dashboard,
    export,
    final,
    predict,
    report,
    run,
    status,
    train,
    worker,
)
from search.tuning.strategies import strategy
from tests.conftest import run_command

PARSERS = {
    "search.run": run,
    "search.export": export,
    "search.train": train,
    "search.final": final,
    "search.worker": worker,
    "search.status": status,
    "search.report": report,
    "search.dashboard": dashboard,
    "search.predict": predict,
    "search.bench": bench,
}


@pytest.mark.parametrize("module", PARSERS)
def test_help_documents_every_flag(module, capsys):
    parser = PARSERS[module].get_args_parser()
    with pytest.raises(SystemExit) as exited:
        parser.parse_args(["--help"])
    shown = capsys.readouterr().out
    assert exited.value.code == 0
    for action in parser._actions:
        assert action.help, f"{action.option_strings} has no help"
        for option in action.option_strings:
            assert option in shown


def test_every_run_flag_parses():
    args = run.get_args_parser().parse_args(
        "--space resnet --trials 7 --storage postgresql://u@h/db --study s --dataset cifar100 "
        "--data-dir /d --epochs 9 --sampler qmc --pruner sha --timeout 60 --seed 3 "
        "--device cpu --gpus 0,1 --workers-per-gpu 4 --space-module my.spaces "
        "--heartbeat-interval 5 --grace-period 20 --objectives accuracy,latency "
        "--warm-start".split()
    )
    assert (args.objectives, args.warm_start) == ("accuracy,latency", True)
    assert (args.gpus, args.workers_per_gpu, args.space_module) == ("0,1", 4, "my.spaces")
    assert (args.heartbeat_interval, args.grace_period) == (5, 20)
    assert (args.space, args.trials, args.storage, args.study) == (
        "resnet",
        7,
        "postgresql://u@h/db",
        "s",
    )
    assert (args.dataset, str(args.data_dir), args.epochs) == ("cifar100", "/d", 9)
    assert (args.sampler, args.pruner, args.timeout, args.seed, args.device) == (
        "qmc",
        "sha",
        60.0,
        3,
        "cpu",
    )
    defaults = run.get_args_parser().parse_args(["--space", "resnet"])
    assert (defaults.storage, defaults.dataset, defaults.sampler, defaults.objectives) == (
        "sqlite:///studies.db", "cifar10", None, "accuracy"
    )  # fmt: skip
    assert not defaults.warm_start
    # No --sampler or --pruner: multi-fidelity TPE with successive halving at eta 3, waiting
    # at the cheap rungs, paused (the replay's choice), for one objective; its stopping type
    # without checkpoints; TPE pruned by Pareto front for several
    assert strategy.chosen_sampler(defaults.sampler, 1) == "mf-tpe"
    assert strategy.chosen_sampler(defaults.sampler, 2) == "tpe"
    assert strategy.check_choice("mf-tpe", defaults.pruner, 1) == "sha3-hybrid"
    assert strategy.check_choice("mf-tpe", defaults.pruner, 1, checkpoints=False) == "sha3"
    assert strategy.check_choice("tpe", defaults.pruner, 2) == "moasha"

    def pruning(*flags: str) -> tuple[str, bool]:
        given = {**vars(run.get_args_parser().parse_args(["--space", "resnet", *flags])),
                 "epochs": 9}  # fmt: skip
        chosen = strategy.StrategyOptions.of(given).settings(given)
        return chosen["pruner"], chosen["pause_pruned"]

    assert pruning() == ("sha3-hybrid", True)
    assert pruning("--pruner", "sha3") == ("sha3", False)
    assert pruning("--checkpoint-dir", "") == ("sha3", False)


def test_every_worker_and_status_flag_parses():
    args = worker.get_args_parser().parse_args(
        "--study s --storage sqlite:///w.db --data-dir d --device cuda --gpus 1 "
        "--workers-per-gpu 2 --timeout 30 --slot 3 --quiet".split()
    )
    assert (args.study, args.storage, str(args.data_dir), args.device) == (
        "s",
        "sqlite:///w.db",
        "d",
        "cuda",
    )
    assert (args.gpus, args.workers_per_gpu, args.timeout, args.slot, args.quiet) == (
        "1", 2, 30.0, 3, True
    )  # fmt: skip
    args = status.get_args_parser().parse_args(["--study", "s", "--storage", "sqlite:///w.db"])
    assert (args.study, args.storage) == ("s", "sqlite:///w.db")


def test_every_export_and_train_flag_parses():
    args = export.get_args_parser().parse_args(
        ["--study", "s", "--storage", "sqlite:///x.db", "-o", "o.yaml", "--top", "3"]
    )
    assert (args.study, args.storage, str(args.output), args.top) == (
        "s",
        "sqlite:///x.db",
        "o.yaml",
        3,
    )
    args = train.get_args_parser().parse_args(
        "--config c.yaml --epochs 2 --seed 5 --data-dir d --device cpu --output-dir o "
        "--classes cat,dog".split()
    )
    assert (str(args.config), args.epochs, args.seed, str(args.data_dir)) == ("c.yaml", 2, 5, "d")
    assert args.classes == ["cat", "dog"]  # parsed by the flag itself
    assert (args.device, str(args.output_dir)) == ("cpu", "o")


MISTAKES = {
    "unknown space": (
        ["search.run", "--space", "resnett", "--dataset", "sample"],
        "unknown space 'resnett'; choose one of: backbone, convnet, densenet, fast, finetune, "
        "mlp, resnet",
    ),
    "no space": (["search.run", "--dataset", "sample"], "--space is required (see --list-spaces)"),
    "unknown dataset": (
        ["search.run", "--space", "mlp", "--dataset", "mnist"],
        "unknown dataset 'mnist'",
    ),
    "missing image folder": (
        ["search.run", "--space", "mlp", "--dataset", "imagefolder", "--data-dir", "nowhere"],
        "--data-dir nowhere has no train/ folder",
    ),
    "cifar10 absent with no network": (
        ["search.run", "--space", "mlp", "--dataset", "cifar10", "--data-dir", "empty"],
        "point --data-dir at a copy",
    ),
    "malformed storage url": (
        ["search.run", "--space", "mlp", "--dataset", "sample", "--storage", "studies.db"],
        "--storage 'studies.db' is not a URL; did you mean sqlite:///studies.db?",
    ),
    "unsupported database": (
        ["search.run", "--space", "mlp", "--dataset", "sample", "--storage", "oracle://x/y"],
        "unsupported database 'oracle'",
    ),
    "unreachable storage file": (
        [
            "search.run",
            "--space",
            "mlp",
            "--dataset",
            "sample",
            "--storage",
            "sqlite:///no/dir/x.db",
        ],
        "storage sqlite:///no/dir/x.db: the folder no/dir does not exist",
    ),
    "unknown sampler": (
        ["search.run", "--space", "mlp", "--sampler", "bayes"],
        "unknown sampler 'bayes'",
    ),
    "zero trials": (["search.run", "--space", "mlp", "--trials", "0"], "--trials must be positive"),
    "gpus without a gpu": (
        ["search.run", "--space", "mlp", "--device", "cpu", "--gpus", "0"],
        "--gpus needs CUDA",
    ),
    "no workers": (
        ["search.run", "--space", "mlp", "--workers-per-gpu", "0"],
        "--workers-per-gpu must be at least 1",
    ),
    "space module that is not there": (
        ["search.run", "--space", "mine", "--space-module", "no.such.module"],
        "--space-module no.such.module cannot be imported",
    ),
    "stl10 absent with no network": (
        ["search.run", "--space", "convnet", "--dataset", "stl10", "--data-dir", "empty"],
        "STL10 is not in --data-dir empty (expected empty/stl10_binary)",
    ),
    "unknown objective": (
        ["search.run", "--space", "mlp", "--objectives", "accuracy,flops"],
        "--objectives must be accuracy, optionally followed by any of params, latency",
    ),
    "pruning a multi-objective study": (
        ["search.run", "--space", "mlp", "--objectives", "accuracy,params", "--pruner", "median"],
        "--pruner median compares one objective; with several --objectives use moasha or none",
    ),
    "cma-es on two objectives": (
        ["search.run", "--space", "mlp", "--objectives", "accuracy,latency", "--sampler", "cmaes"],
        "--sampler cmaes handles one objective only",
    ),
    "listing a space that does not exist": (
        ["search.spaces", "resnet", "vit"],
        "unknown space 'vit'",
    ),
    "config with an unknown augmentation": (
        ["search.train", "--config", "mixpu.yaml"],
        "mixpu.yaml: unknown augmentation 'mixpu'",
    ),
    "not a number": (["search.run", "--space", "mlp", "--epochs", "many"], "invalid int value"),
    "unknown flag": (["search.run", "--space", "mlp", "--trails", "3"], "unrecognized arguments"),
    "export of a study that does not exist": (
        ["search.export", "--study", "nope"],
        "no study storage at studies.db",
    ),
    "config with a typo": (
        ["search.train", "--config", "typo.yaml"],
        "typo.yaml: unknown field 'learning_rate'",
    ),
    "config file missing": (
        ["search.train", "--config", "missing.yaml"],
        "cannot read config file missing.yaml",
    ),
    "profiling the gpu on the cpu": (
        ["search.bench", "--device", "cpu", "--profile"],
        "--profile measures how busy the GPU is: it needs CUDA",
    ),
    "a bench section that does not exist": (
        ["search.bench", "--sections", "plain,speed"],
        "--sections: unknown 'speed'",
    ),
    "a bench with no timed epoch": (
        ["search.bench", "--epochs", "1"],
        "--epochs must be at least 2",
    ),
    "a bench with no seeds": (["search.bench", "--seeds", "0"], "--seeds must be positive, not 0"),
    "fixing a parameter the space lacks": (
        ["search.run", "--space", "mlp", "--fix", "widht=3"],
        "--fix widht: space mlp has no such parameter",
    ),
    "fixing a parameter outside its range": (
        ["search.run", "--space", "mlp", "--fix", "depth=99"],
        "--fix depth=99: outside its range, int 1 .. 10",
    ),
    "fine-tuning without a checkpoint": (
        ["search.run", "--space", "finetune", "--dataset", "sample"],
        "--space finetune needs --init-from CHECKPOINT",
    ),
    "a checkpoint for a space that does not fine-tune": (
        ["search.run", "--space", "mlp", "--dataset", "sample", "--init-from", "c.pt"],
        "--init-from is for the fine-tuning spaces (finetune)",
    ),
    "a bench with zero workers": (
        ["search.bench", "--workers-per-gpu", "1,0"],
        "--workers-per-gpu takes positive integers like 1,2,4, not '1,0'",
    ),
}


# A new interpreter costs ~4 s on 2 cores, most of it importing torch: each mistake goes
# through the commands' own boundary (cli.run_main) in this process, and one per command also
# through a real `python -m` process.
IN_THEIR_OWN_PROCESS = {
    "unknown flag", "unknown dataset", "export of a study that does not exist",
    "config with a typo", "listing a space that does not exist",
    "a bench section that does not exist",
}  # fmt: skip


@pytest.mark.parametrize("mistake", MISTAKES)
def test_mistakes_get_one_clear_line_and_a_nonzero_exit(mistake, tmp_path, run_here):
    (tmp_path / "empty").mkdir()
    (tmp_path / "typo.yaml").write_text("model: mlp\nlearning_rate: 0.1\ndataset: sample\n")
    (tmp_path / "mixpu.yaml").write_text("model: mlp\naugment: {mixpu: {}}\ndataset: sample\n")
    (module, *args), message = MISTAKES[mistake]
    run = run_command if mistake in IN_THEIR_OWN_PROCESS else run_here
    result = run(module, *args, cwd=tmp_path)
    code, out, err = result.returncode, result.stdout, result.stderr
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert message in lines[0]
    assert "Traceback" not in err + out
    assert not (tmp_path / "studies.db").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_asking_for_a_gpu_that_is_not_there(tmp_path, run_here):
    result = run_here("search.run", "--space", "mlp", "--device", "cuda", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "search.run: error: --device cuda: no CUDA device is visible here; use --device cpu"
    )


def test_list_spaces_shows_every_space_with_its_parameters_and_ranges(tmp_path):
    """In a process of its own: the spaces a user sees, none that tests registered here."""
    result = run_command("search.run", "--list-spaces", "--epochs", "8", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    headers = [line.split(":")[0] for line in lines if not line.startswith(" ")]
    assert headers == ["backbone", "convnet", "densenet", "fast", "finetune", "mlp", "resnet"]
    start = next(i for i, line in enumerate(lines) if line.startswith("resnet:"))
    resnet = lines[start:]
    ranges = {line.split()[0]: " ".join(line.split()[1:]) for line in resnet[1:]
              if not line.startswith("  warm start:")}  # fmt: skip
    assert ranges["family"] == "one of resnet9, resnet, rn"
    assert "epochs" not in ranges  # every trial plans the budget; the pruner cuts it
    assert ranges["sgd_lr"] == "float 0.001 .. 1, log (conditional)"
    assert ranges["block"] == (
        "one of original, bn_after_add, act_before_add, act_preact, full_preact (conditional)"
    )
    warm = [line for line in resnet if line.startswith("  warm start: ")]
    assert len(warm) == 3 and "ResNet-18" in warm[1]
    assert ranges["rn_blocks"] == "int 2 .. 32 (conditional)"  # RR32 is reachable
    backbone = lines[: next(i for i, line in enumerate(lines) if line.startswith("convnet:"))]
    convs = next(line for line in backbone if line.split()[0] == "convs")
    assert convs.split()[1:] == ["int", "1", "..", "3"]  # its bound depends on blocks


def test_search_spaces_lists_the_named_spaces(tmp_path, run_here):
    result = run_here("search.spaces", "densenet", "fast", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    headers = [line.split(":")[0] for line in result.stdout.splitlines() if line[0] != " "]
    assert headers == ["densenet", "fast"]
    assert "  growth_rate" in result.stdout and "lr_per_1024" in result.stdout
    assert "warm start: airbench94" in result.stdout


def test_warm_starts_are_written_as_configs_that_search_train_reads(tmp_path, capsys):
    from search import spaces as spaces_command
    from search.training import config

    assert spaces_command.main(["mlp", "--write-warm-starts", str(tmp_path), "--epochs", "7",
                                "--dataset", "sample"]) == 0  # fmt: skip
    written = sorted(tmp_path.glob("*.yaml"))
    assert [path.name for path in written] == ["mlp-1.yaml", "mlp-2.yaml"]
    loaded, provenance = config.read_file(written[1])
    assert (loaded.epochs, loaded.dataset, loaded.image_size) == (7, "sample", 96)
    assert provenance["warm_start"].startswith("report 004: the improved TwoLayerNet")
    assert capsys.readouterr().out.count("wrote ") == 2
