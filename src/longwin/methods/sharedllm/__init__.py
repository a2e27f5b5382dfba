"""SharedLLM: context-window extension by self-injection through query-aware context trees.

Importing this package registers `longwin-sharedllm` with transformers' AutoConfig and
AutoModelForCausalLM, so saved models load with the Auto classes.
"""

from transformers import AutoConfig, AutoModelForCausalLM

from longwin.methods.sharedllm.collator import SharedLLMCollator
from longwin.methods.sharedllm.config import MODEL_TYPE, SharedLLMConfig
from longwin.methods.sharedllm.cross_attention import TreeKV
from longwin.methods.sharedllm.modeling import SharedLLMForCausalLM, SharedLLMOutput
from longwin.methods.sharedllm.trainable import trainable_parameters

AutoConfig.register(MODEL_TYPE, SharedLLMConfig, exist_ok=True)
AutoModelForCausalLM.register(SharedLLMConfig, SharedLLMForCausalLM, exist_ok=True)

__all__ = [
    "SharedLLMCollator",
    "SharedLLMConfig",
    "SharedLLMForCausalLM",
    "SharedLLMOutput",
    "TreeKV",
    "trainable_parameters",
]
