"""What a training method is to the runner: options it reads, and the parts it builds.

The runner (`longwin.training.runner.train`) owns everything methods share — the output folder, the
seed, the HF Trainer, resuming, saving and the run's card. A method only decides what to train and on
what: it builds a `TrainParts` from a `TrainConfig`. Options common to every method are the fields of
`CommonOptions`; a method's own options are a dataclass of its own, a YAML section of the recipe
(`positions:`, `lora:`, `sharedllm:`), and flags named by the section's `FLAG_PREFIX`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol, TypeVar, cast

from longwin.data.pool import DocumentPool
from longwin.data.retrieval_docs import RetrievalExamples

Options = TypeVar("Options")


class Section(Protocol):
    """An options dataclass of a method or component: its recipe key and the prefix of its flags."""

    SECTION: ClassVar[str]
    FLAG_PREFIX: ClassVar[str]


@dataclass
class CommonOptions:
    """Options every training method reads (the Trainer's own options live in TrainingArguments)."""

    model: str = field(default="toy", metadata={"help": "model alias, local folder, .gguf file or cached HF id"})
    method: str = field(default="positions", metadata={"help": "training method (see `longwin.methods.METHODS`)"})
    target_length: int = field(default=0, metadata={"min": 0, "help": "target context window L (required)"})
    train_length: int = field(
        default=0, metadata={"min": 0, "help": "training (SharedLLM: local) window (default: the native window N)"}
    )
    allow_long_train_window: bool = field(
        default=False, metadata={"help": "allow a training window above the native window (full-length fine-tuning)"}
    )
    overwrite_output_dir: bool = field(
        default=False,
        metadata={
            "help": "start over in an --output-dir that holds an earlier run (its checkpoints and model are removed)"
        },
    )
    data: str = field(default="essays+kjv", metadata={"help": "corpus names or paths, '+'-joined"})
    text_field: str = field(default="text", metadata={"help": "text column of JSONL/Parquet/datasets data"})
    val_fraction: float = field(
        default=0.1, metadata={"min": 0, "max": 0.9, "help": "documents held out from training (by id)"}
    )
    global_batch_size: int = field(
        default=0,
        metadata={
            "min": 0,
            "help": "examples per optimizer step over all processes, as a paper states it: gradient accumulation "
            "is derived from the per-device batch and the process count (0: use --gradient-accumulation-steps)",
        },
    )
    dtype: str = field(default="auto", metadata={"help": "weights dtype when loading: auto, float32, bfloat16"})
    attn_implementation: str = field(default="sdpa", metadata={"help": "eager, sdpa or flash_attention_2"})
    chunked_loss: bool = field(
        default=True,
        metadata={
            "help": "compute a causal LM's loss chunk by chunk, never holding the full logits (same loss; less "
            "memory, faster on CPU); single-process runs only, others keep the model's loss"
        },
    )
    retrieval_fraction: float = field(
        default=0.0,
        metadata={
            "min": 0,
            "max": 1,
            "help": "share of retrieval examples (evidence far back, question + answer at the end) mixed into the "
            "natural text; small models forget retrieval without them",
        },
    )
    retrieval_kinds: list[str] = field(
        default_factory=lambda: ["passkey_grass", "passkey_text", "kv", "lines"],
        metadata={"help": "retrieval example kinds to draw from (longwin.data.retrieval_docs.KINDS)"},
    )


@dataclass
class TrainConfig:
    """The common options and one options object per section (keyed by its class)."""

    common: CommonOptions = field(default_factory=CommonOptions)
    sections: dict[type[Section], Any] = field(default_factory=dict)

    def get(self, cls: type[Options]) -> Options:
        """The options of section `cls` (its defaults when the config has none)."""
        found = self.sections.get(cast(Any, cls))
        return found if found is not None else cls()

    def to_dict(self) -> dict[str, Any]:
        """Nested as a recipe writes it: common keys, then one mapping per section."""
        out = dataclasses.asdict(self.common)
        for cls, options in self.sections.items():
            out[cls.SECTION] = dataclasses.asdict(options)
        return out


@dataclass
class TrainParts:
    """What a method hands the runner."""

    model: Any
    tokenizer: Any
    dataset: Any  # a torch Dataset of examples the collator batches
    collator: Callable[[list[Any]], dict[str, Any]]
    pool: DocumentPool
    card: dict[str, Any]  # the method's own fields of the run card
    save_model: Callable[[Any, Path], None] | None = None  # (trainer, folder); default: trainer.save_model
    trainer_class: type | None = None  # default: transformers.Trainer
    causal_lm: bool = False  # a plain causal LM on input_ids/labels: the runner may compute its loss in chunks
    after_fit: Callable[[], None] | None = None


@dataclass(frozen=True)
class Method:
    """A registry entry: the method's name, the option sections it reads and how it builds its parts."""

    name: str
    help: str
    sections: tuple[type[Section], ...]
    build: Callable[[TrainConfig, Any], TrainParts]


def retrieval_examples(config: TrainConfig, tokenizer: Any, pool: DocumentPool) -> RetrievalExamples | None:
    """The retrieval examples a method mixes in, or None when --retrieval-fraction is 0."""
    common = config.common
    if common.retrieval_fraction <= 0:
        return None
    return RetrievalExamples(tokenizer, pool.stream, pool.texts(tokenizer), common.retrieval_kinds)


def global_batch(targs: Any) -> int:
    """Examples per optimizer step over every process (examples are drawn per step)."""
    return int(targs.per_device_train_batch_size * targs.gradient_accumulation_steps * targs.world_size)


def section_flags(cls: type[Section]) -> Mapping[str, str]:
    """Field name -> flat name (the flag without dashes, and the key of a flat legacy recipe)."""
    return {f.name: f.metadata.get("flat", cls.FLAG_PREFIX + f.name) for f in dataclasses.fields(cast(Any, cls))}
