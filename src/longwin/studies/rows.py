"""A named model row of a comparison: the one definition shared by the studies and `longwin demo`, so that
"base", "yarn-free" or "cream-yarn" mean the same kind of model everywhere."""

from __future__ import annotations

from dataclasses import dataclass

MAKES = ("base", "free", "train")


@dataclass(frozen=True)
class ModelRow:
    """How a row's model is made: the base as shipped (`base`), its RoPE rescaled without training (`free`,
    the `*-free` rows), or fine-tuned (`train`) with training method `method` (`positions` on position
    `scheme`, or `sharedllm`). `rope` empty means the comparison's default; `rope_options` are
    `--rope-options` (e.g. YaRN's attention factor), `distill` a `--distill-weight`, `mixed` a share of the
    examples kept on the base's own RoPE and positions (mixed context windows: `--native-fraction` with
    `--native-rope original`); `label` is the
    row's one-line description in a report. `training` names the study's training that makes a trained row
    when several rows read one model (empty: the row's own); `eval_options` are further `longwin eval` flags
    of the row (truncation, adapter options: one model read two ways is two rows)."""

    make: str
    scheme: str = ""
    rope: str = ""
    rope_options: str = ""
    distill: str = ""
    mixed: str = ""
    method: str = "positions"
    label: str = ""
    training: str = ""
    eval_options: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.make not in MAKES:
            raise ValueError(f"unknown row make {self.make!r}; known: {', '.join(MAKES)}")

    @property
    def trained(self) -> bool:
        return self.make == "train"

    def rope_flags(self) -> list[str]:
        """`--rope-options` for the command line, or nothing."""
        return ["--rope-options", self.rope_options] if self.rope_options else []

    def eval_flags(self, model: str, target: int) -> list[str]:
        """The `longwin eval` flags that load this row: `model` is the base's name for a base or training-free
        row (rescaled for `target` tokens), the trained model's folder for a trained one."""
        if self.make == "free":
            rope = ["--rope", self.rope, "--target-length", str(target), *self.rope_flags()]
            return ["--model", model, *rope, *self.eval_options]
        return ["--model", model, *self.eval_options]

    def train_flags(self) -> list[str]:
        """The `longwin train` flags that set this row's positions (a `positions` row only)."""
        distill = ["--distill-weight", self.distill] if self.distill else []
        mixed = ["--native-fraction", self.mixed, "--native-rope", "original"] if self.mixed else []
        return ["--scheme", self.scheme, "--rope", self.rope, *self.rope_flags(), *distill, *mixed]
