"""Options of position-scheme fine-tuning (section `positions:`; flags keep their short names)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from longwin.flags import parse_options


@dataclass
class PositionsOptions:
    """Which position ids the training tokens get, and how RoPE is rescaled for the target window."""

    SECTION: ClassVar[str] = "positions"
    FLAG_PREFIX: ClassVar[str] = ""

    scheme: str = field(
        default="cream",
        metadata={
            "help": "position scheme: a name of the registry `longwin.positions.SCHEMES` (docs/position-schemes.md)"
        },
    )
    scheme_options: dict[str, Any] = field(
        default_factory=dict,
        metadata={"help": "scheme options as k=v,k=v (e.g. sigma=3,mode=truncated,p_continuity=0.5)"},
    )
    rope: str = field(
        default="linear", metadata={"help": "RoPE scaling: none, linear, ntk, dynamic, yarn, revised-yarn, llama3"}
    )
    rope_options: dict[str, Any] = field(
        default_factory=dict,
        metadata={
            "help": "RoPE scaling options as k=v,k=v (yarn: beta_fast, beta_slow, attention_factor; llama3: ...)"
        },
    )
    native_fraction: float = field(
        default=0.0,
        metadata={
            "min": 0,
            "max": 1,
            "help": "share of natural-text examples kept on contiguous positions 0..N-1 as in pretraining "
            "(native replay), the rest on the scheme's positions",
        },
    )
    native_rope: str = field(
        default="scaled",
        metadata={
            "choices": ("scaled", "original"),
            "help": "RoPE of the native-replay share: scaled (the trained model's, as at inference) or original "
            "(the base's own, at its own positions: LongRoPE2's mixed context windows)",
        },
    )
    induction_weight: float = field(
        default=0.0,
        metadata={
            "min": 0,
            "help": "weight of the auxiliary induction-head loss kept on while fine-tuning (the toy's copying "
            "circuit was installed by it: longwin.methods.induction); 0 turns it off",
        },
    )
    induction_match: int = field(
        default=2, metadata={"min": 1, "help": "tokens the supervised induction head matches (as in pretrain-toy)"}
    )
    distill_weight: float = field(
        default=0.0,
        metadata={
            "min": 0,
            "help": "weight of a KL loss to the unchanged base reading the same tokens at positions 0..T-1 "
            "(positional self-distillation: longwin.methods.distill; a second copy of the model in memory); "
            "0 turns it off",
        },
    )

    def __post_init__(self) -> None:
        """`k=v,k=v` strings (flags, YAML) become typed mappings."""
        self.scheme_options = parse_options(self.scheme_options)
        self.rope_options = parse_options(self.rope_options, "rope")
