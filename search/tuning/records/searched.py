"""What a study searches, as search.run's flags give it: the space (and the network it
fine-tunes), the epochs every trial plans, the objectives, the parameters pinned, a user's
module of spaces. Fixed when the study is created (but for the module)."""

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import spaces
from registry import UsageError
from registry.options import OptionGroup, check_positive, flag
from search.tuning.records.settings import check_objectives, parse_objectives


@dataclasses.dataclass(frozen=True)
class Searched(OptionGroup):
    title: ClassVar[str] = "what is searched"

    space: str | None = flag(
        None, help=f"search space: {', '.join(spaces.list_spaces())} (required)"
    )
    init_from: str | None = flag(
        None, type=Path,
        help="a checkpoint.pt from search.train to fine-tune (--space finetune); its head is "
        "replaced when the class count differs",
    )  # fmt: skip
    epochs: int = flag(
        20, type=int,
        help="epochs every trial plans (its schedule spans them); the pruner stops the ones "
        "that fall behind (default 20)",
    )  # fmt: skip
    objectives: str = flag(
        "accuracy",
        help="what to optimise: accuracy (default), or accuracy,params or accuracy,latency "
        "(also minimise the parameter count or the forward time per batch on the trial's "
        "device) for a multi-objective study with a Pareto front, pruned by --pruner moasha "
        "unless --pruner none. Fixed when the study is created",
    )
    fix: str | None = flag(
        None,
        help="pin parameters of the space, NAME=VALUE,NAME=VALUE (e.g. image_size=0): every "
        "trial takes these, the sampler chooses the rest (Optuna's PartialFixedSampler)",
    )
    space_module: str | None = flag(
        None,
        help="import this module first: its @spaces.register_space functions add spaces "
        "(workers import it too; it must be importable on every host)",
    )

    def check(self, given: Mapping[str, Any]) -> None:
        """A known space, with --init-from exactly where it fine-tunes, parameters it has,
        objectives it can rank."""
        check_positive(given, "epochs")
        if self.space is None:
            raise UsageError("--space is required (see --list-spaces)")
        spaces.get(self.space)
        if (self.space in spaces.FINE_TUNING) != bool(self.init_from):
            raise UsageError(
                f"--space {self.space} needs --init-from CHECKPOINT"
                if self.space in spaces.FINE_TUNING
                else "--init-from is for the fine-tuning spaces "
                f"({', '.join(sorted(spaces.FINE_TUNING))})"
            )
        fixed = parse_fixed(self.fix)
        if fixed:
            context = spaces.SpaceContext(given["dataset"], self.epochs, given["seed"],
                                          pretrained=spaces.describe.LISTED_CHECKPOINT)  # fmt: skip
            spaces.describe.check_fixed(self.space, context, fixed)
        check_objectives(parse_objectives(self.objectives))

    def settings(self, given: Mapping[str, Any]) -> dict[str, Any]:
        """--init-from resolved here, so that workers on every host read the same path."""
        return {
            "space": self.space,
            "init_from": str(Path(self.init_from).resolve()) if self.init_from else "",
            "epochs": self.epochs,
            "objectives": parse_objectives(self.objectives),
            "fixed_params": parse_fixed(self.fix),
            "space_module": self.space_module,
        }


def parse_fixed(text: str | Mapping[str, object] | None) -> dict[str, object]:
    """'image_size=0,flip=true' -> {'image_size': 0, 'flip': True} (values read as YAML); a
    mapping (from search.api) as it is."""
    import yaml

    if isinstance(text, Mapping):
        return dict(text)
    fixed: dict[str, object] = {}
    for item in text.split(",") if text else []:
        name, equals, value = item.partition("=")
        if not equals or not name.strip():
            raise UsageError(f"--fix takes NAME=VALUE,NAME=VALUE, not '{text}'")
        try:
            fixed[name.strip()] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise UsageError(f"--fix {item}: cannot read the value '{value}'") from None
    return fixed
