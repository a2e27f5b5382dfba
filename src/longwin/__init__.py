"""longwin: longer context windows for pretrained LLMs, cheaply, with an honest evaluation harness."""

from longwin.errors import LongwinError

__version__ = "0.1.0"
__all__ = ["LongwinError", "__version__"]
