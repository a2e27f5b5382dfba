"""The model families longwin is tested on, and what each supports (the README's family table).

Every claim here is checked on a tiny random model of the family by `tests/test_families.py`: a
supported feature must give the model's own numbers, a refused one must fail with a one-line
`LongwinError` whose message contains the reason written here. `scripts/families_table.py` renders the
table from this registry, so the README cannot drift from what the tests check.
"""

from __future__ import annotations

from dataclasses import dataclass

# Features a family is checked for, with the column titles of the README table.
# The RoPE methods are those of `longwin.rope.scale_rope`, each checked through a stock transformers reload.
FEATURES: dict[str, str] = {
    "yarn": "YaRN",
    "linear": "linear (PI)",
    "revised-yarn": "revised YaRN",
    "chunked_loss": "chunked training loss (CREAM positions)",
    "eval_nll": "eval perplexity",
    "sharedllm": "SharedLLM",
}


@dataclass(frozen=True)
class Family:
    """One transformers model family; a feature missing from `refused` is supported."""

    name: str
    model_type: str  # config.model_type
    config_class: str  # transformers class names
    model_class: str
    logits: str = "head output"  # what the forward does to the LM head's output (the losses repeat it)
    refused: tuple[tuple[str, str], ...] = ()  # (feature, the reason its refusal names)

    def refusal(self, feature: str) -> str | None:
        """Why `feature` is refused for this family, or None when it is supported."""
        if feature not in FEATURES:
            raise KeyError(feature)
        return dict(self.refused).get(feature)


_NOT_SHAREDLLM = ("sharedllm", "SharedLLM needs a Llama-family causal LM")
_PER_LAYER_ROPE = tuple((method, "per-layer RoPE parameters") for method in ("yarn", "linear", "revised-yarn"))
_NO_ROPE = tuple((method, "has no RoPE") for method in ("yarn", "linear", "revised-yarn"))

FAMILIES: tuple[Family, ...] = (
    Family("Llama", "llama", "LlamaConfig", "LlamaForCausalLM"),
    Family("Mistral", "mistral", "MistralConfig", "MistralForCausalLM"),
    Family("Qwen2", "qwen2", "Qwen2Config", "Qwen2ForCausalLM"),
    Family("Qwen3", "qwen3", "Qwen3Config", "Qwen3ForCausalLM", refused=(_NOT_SHAREDLLM,)),
    Family("Gemma", "gemma", "GemmaConfig", "GemmaForCausalLM", refused=(_NOT_SHAREDLLM,)),
    Family(
        "Gemma2",
        "gemma2",
        "Gemma2Config",
        "Gemma2ForCausalLM",
        logits="soft-capped (final_logit_softcapping)",
        refused=(_NOT_SHAREDLLM,),
    ),
    Family(
        "Gemma3 (text)",
        "gemma3_text",
        "Gemma3TextConfig",
        "Gemma3ForCausalLM",
        logits="soft-capped if final_logit_softcapping is set",
        refused=(*_PER_LAYER_ROPE, _NOT_SHAREDLLM),
    ),
    Family(
        "Phi-3",
        "phi3",
        "Phi3Config",
        "Phi3ForCausalLM",
        # transformers 5.x: Phi3Config takes only longrope (and would read a saved yarn as longrope)
        refused=(("yarn", "must be one of ['longrope']"), ("linear", "must be one of ['longrope']"), _NOT_SHAREDLLM),
    ),
    Family("GPT-NeoX", "gpt_neox", "GPTNeoXConfig", "GPTNeoXForCausalLM", refused=(_NOT_SHAREDLLM,)),
    Family(
        "Granite",
        "granite",
        "GraniteConfig",
        "GraniteForCausalLM",
        logits="divided by logits_scaling",
        refused=(_NOT_SHAREDLLM,),
    ),
    Family("OLMo2", "olmo2", "Olmo2Config", "Olmo2ForCausalLM", refused=(_NOT_SHAREDLLM,)),
    Family(
        "Cohere",
        "cohere",
        "CohereConfig",
        "CohereForCausalLM",
        logits="times logit_scale",
        refused=(_NOT_SHAREDLLM,),
    ),
    Family(
        "FalconH1",
        "falcon_h1",
        "FalconH1Config",
        "FalconH1ForCausalLM",
        logits="times lm_head_multiplier",
        refused=(_NOT_SHAREDLLM,),
    ),
    Family(
        "GPT-2",
        "gpt2",
        "GPT2Config",
        "GPT2LMHeadModel",
        refused=(*_NO_ROPE, _NOT_SHAREDLLM),
    ),
)


def installed(family: Family) -> bool:
    """Whether the installed transformers has the family's classes (older releases lack the newer families)."""
    import transformers

    return hasattr(transformers, family.config_class) and hasattr(transformers, family.model_class)
