"""Position-scheme fine-tuning as a training method (the schemes themselves: `longwin.positions`)."""

from longwin.methods.positions.method import build
from longwin.methods.positions.options import PositionsOptions

__all__ = ["PositionsOptions", "build"]
