"""`python -m fsdp_on_cpu train ...`: `longwin train` with accelerate's FSDP allowed on CPU processes.

accelerate (1.15, 1.16) turns FSDP on only for accelerator process groups (MULTI_GPU, MULTI_XPU, ...): under
`--use-cpu` its state is MULTI_CPU, the FSDP plugin it was handed is dropped and the Trainer silently runs
DDP. torch's FSDP2 `fully_shard` itself runs on CPU over gloo, so this lifts that one gate and nothing else:
the Trainer, accelerate's FSDP2 preparation, checkpointing and longwin's final save run as on GPUs.
"""

from __future__ import annotations

import sys
from typing import Any

import accelerate.state
from accelerate.utils import DistributedType

from longwin.cli import main

_init = accelerate.state.AcceleratorState.__init__


def _init_allowing_cpu_fsdp(self: Any, *args: Any, fsdp_plugin: Any = None, **kwargs: Any) -> None:
    _init(self, *args, fsdp_plugin=fsdp_plugin, **kwargs)
    if fsdp_plugin is not None and self.distributed_type == DistributedType.MULTI_CPU:
        self.distributed_type = DistributedType.FSDP
        self.fsdp_plugin = fsdp_plugin
        accelerate.state.PartialState._shared_state["distributed_type"] = DistributedType.FSDP


if __name__ == "__main__":
    accelerate.state.AcceleratorState.__init__ = _init_allowing_cpu_fsdp
    sys.exit(main(sys.argv[1:]))
