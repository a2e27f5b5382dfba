"""SharedLLM: context-window extension by self-injection through query-aware context trees.

Importing this package registers `longwin-sharedllm` with transformers' AutoConfig and
AutoModelForCausalLM, so saved models load with the Auto classes.
"""

from transformers import AutoConfig, AutoModelForCausalLM

from longwin.sharedllm.config import MODEL_TYPE, SharedLLMConfig
from longwin.sharedllm.cross_attention import TreeKV
from longwin.sharedllm.data import SharedLLMCollator
from longwin.sharedllm.modeling import SharedLLMForCausalLM, SharedLLMOutput
from longwin.sharedllm.training import trainable_parameters

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
