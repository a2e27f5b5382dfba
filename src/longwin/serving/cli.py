"""Write a saved model folder as a GGUF that llama.cpp runs at the extended length, and print the vLLM and
llama.cpp arguments that serve it there (`--serving` alone prints them without writing a file).

The RoPE scaling is written as llama.cpp reads it (linear and YaRN as its own scaling types, revised YaRN
and Llama 3 as per-pair `rope_freqs`); output types f32, f16, q8_0 and q4_1 (the quantisation SmolLM2
arrives in here). SharedLLM folders and architectures other than Llama are refused.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from longwin.serving.export import OUTTYPES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folder", metavar="FOLDER", help="a saved model folder (longwin train's output, or any model)")
    parser.add_argument("--outfile", type=Path, help="the GGUF to write (default: ./NAME-OUTTYPE.gguf)")
    parser.add_argument("--outtype", choices=list(OUTTYPES), default="f16", help="tensor type of the 2-D weights")
    parser.add_argument("--serving", action="store_true", help="print the vLLM and llama.cpp arguments only")


def run(args: argparse.Namespace) -> int:
    from longwin.models import model_path
    from longwin.serving.export import export_gguf, exportable_config
    from longwin.serving.hints import render, serving_hints

    given = Path(args.folder)
    folder = given if given.is_dir() else model_path(args.folder)  # a folder: exportable_config says what it lacks
    outfile = args.outfile or Path(f"{folder.name}-{args.outtype}.gguf")
    config = exportable_config(folder)
    if not args.serving:
        export_gguf(folder, outfile, args.outtype)
    print(render(serving_hints(config, str(folder), str(outfile))))
    return 0
