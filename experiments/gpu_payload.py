"""What the GPU plan carries to the device and how it is put back together there.

The device call carries the working tree plus at most 64 MiB in all; it has torch, transformers, accelerate
and peft but no PyPI and no text packages. So the data (the training side of `longwin train`'s own split and
the held-out documents, xz-compressed), the wheels it lacks and the model's GGUF are cut into parts that
each fit beside the tree, with a manifest of every file's SHA-256 in each part.
"""

from __future__ import annotations

import hashlib
import json
import lzma
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

LIMIT = 64 << 20  # bytes a device call carries, the working tree included
MARGIN = 4 << 20  # files that appear in the tree before the call (logs, caches) and rounding
MANIFEST = "manifest.json"


@dataclass
class Plan:
    """One GPU plan's settings; `toy` rehearses the same code on the CPU in a couple of minutes."""

    model: str
    data: str
    target: int
    train_length: int
    batch: int
    lengths: tuple[int, ...]
    samples: int
    depths: tuple[int, ...] = (0, 25, 50, 75, 100)
    last_k: int = 1024
    short_context: int = 4096  # key tokens' short side (LongPPL's 4K)
    eval_batch: int = 5
    eval_extra: tuple[str, ...] = ()
    rope: str = "yarn"
    rope_options: str = ""
    parallel: int = 3
    cpu: bool = False
    gguf: bool = True
    wheels: tuple[str, ...] = ("gguf==0.19.0",)
    fixed_steps: int = 0
    min_steps: int = 20
    max_steps: int = 2000
    probe_steps: int = 12
    setup_s: float = 30.0


PLANS = {
    "smollm2": Plan("smollm2-135m", "austen+kjv+pydoc+essays", 32768, 8192, 4, (2048, 8192, 16384, 32768), 5),
    "toy": Plan(
        "toy",
        "essays+kjv",
        1024,
        256,
        2,
        (256, 1024),
        1,
        depths=(0, 100),
        last_k=64,
        short_context=128,
        eval_batch=2,
        eval_extra=("--max-new-tokens", "4"),
        parallel=2,
        cpu=True,
        gguf=False,
        wheels=(),
        fixed_steps=2,
        probe_steps=2,
        setup_s=5.0,
    ),  # fmt: skip
}


def _sha(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def tree_bytes(root: Path) -> int:
    """Bytes of what a device call sends besides the carried paths: tracked and untracked-not-ignored files."""
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=root, capture_output=True, check=True
    ).stdout
    return sum((root / p).stat().st_size for p in listed.decode().split("\0") if p and (root / p).is_file())


def split_into(sizes: list[tuple[str, int]], room: int) -> list[list[tuple[str, int, int]]]:
    """Greedy parts of at most `room` bytes: (name, offset, length) pieces, a big file cut across parts."""
    parts: list[list[tuple[str, int, int]]] = [[]]
    free = room
    for name, size in sizes:
        offset = 0
        while offset < size:
            if free == 0:
                parts.append([])
                free = room
            take = min(free, size - offset)
            parts[-1].append((name, offset, take))
            offset, free = offset + take, free - take
    return parts


def _write_data(plan: Plan, stage: Path) -> None:
    """train.jsonl.xz and heldout.jsonl.xz (`longwin train`'s split, seed 0) and the model's config files."""
    from transformers import AutoTokenizer

    from longwin.data.corpora import load_documents, split_documents
    from longwin.data.heldout import heldout_rows
    from longwin.models import model_path

    train, heldout = split_documents(load_documents(plan.data), 0.1, seed=0)
    folder = model_path(plan.model)
    rows = heldout_rows(heldout, AutoTokenizer.from_pretrained(folder), plan.target, 0)
    with lzma.open(stage / "train.jsonl.xz", "wt") as f:
        f.writelines(json.dumps({"id": d.id, "text": d.text}) + "\n" for d in train)
    with lzma.open(stage / "heldout.jsonl.xz", "wt") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)
    (stage / "config").mkdir()
    for path in folder.iterdir():  # config and tokenizer: the probe's randomly initialised twin
        if path.is_file() and not path.name.endswith((".safetensors", ".bin")):
            shutil.copy(path, stage / "config" / path.name)
    print(f"{len(train)} training documents, {len(rows)} held-out documents of >= {plan.target} tokens")


def carry(plan: Plan, dest: Path, root: Path) -> int:
    """Write the parts under `dest` (ignored by git when inside `root`) and refuse if one would not fit."""
    shutil.rmtree(dest, ignore_errors=True)
    stage = dest / "stage"
    stage.mkdir(parents=True)
    if dest.resolve().is_relative_to(root.resolve()):
        exclude = root / ".git" / "info" / "exclude"
        exclude.parent.mkdir(parents=True, exist_ok=True)
        known = exclude.read_text().splitlines() if exclude.is_file() else []
        line = f"/{dest.resolve().relative_to(root.resolve())}/"
        if line not in known:
            exclude.write_text("".join(k + "\n" for k in [*known, line]))
    for wheel in plan.wheels:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "--python-version",
             "3.12", "--implementation", "cp", "--platform", "manylinux2014_x86_64", "-d", str(stage), wheel],
            check=True,
        )  # fmt: skip
    _write_data(plan, stage)
    files = sorted(p for p in stage.rglob("*") if p.is_file())
    if plan.gguf:
        from longwin.models.aliases import smollm2_gguf

        shutil.copy(smollm2_gguf(), stage / "model.gguf")
        files.append(stage / "model.gguf")
    room = LIMIT - tree_bytes(root) - MARGIN
    if room <= 0:
        raise SystemExit(f"gpu plan: the working tree alone is over {LIMIT >> 20} MiB; nothing fits beside it")
    names = [(str(p.relative_to(stage)), p.stat().st_size) for p in files]
    parts = split_into(names, room - (64 << 10))  # the manifest rides in every part
    manifest = {"parts": len(parts), "files": {n: _sha(stage / n) for n, _ in names}, "pieces": parts}
    for i, pieces in enumerate(parts, 1):
        folder = dest / str(i)
        folder.mkdir()
        for name, offset, length in pieces:
            with (stage / name).open("rb") as src:
                src.seek(offset)
                (folder / _piece(name, offset)).write_bytes(src.read(length))
        (folder / MANIFEST).write_text(json.dumps(manifest) + "\n")
        size = sum(p.stat().st_size for p in folder.iterdir())
        print(f"{folder}: {size / 2**20:.1f} MiB (+ tree {(LIMIT - MARGIN - room) / 2**20:.1f} MiB)")
        if size > room:
            raise SystemExit(f"gpu plan: {folder} does not fit beside the tree")
    shutil.rmtree(stage)
    return 0


def verify(dest: Path, root: Path) -> int:
    """Each call's payload (its part plus today's tree) against the limit, right before the calls are sent."""
    tree = tree_bytes(root)
    parts = sorted(dest.glob("[0-9]*"))
    if not parts:
        raise SystemExit(f"gpu plan: nothing carried under {dest}: run `carry` first")
    for folder in parts:
        size = tree + sum(p.stat().st_size for p in folder.iterdir())
        print(f"call {folder.name}: carry {folder} -> {size / 2**20:.1f} MiB of {LIMIT >> 20} MiB")
        if size > LIMIT - (1 << 20):
            raise SystemExit(f"gpu plan: call {folder.name} would carry {size / 2**20:.1f} MiB, over the limit")
    return 0


def _piece(name: str, offset: int) -> str:
    return f"{name.replace('/', '__')}.{offset}"


def gather_parts(carried: Path, work: Path, *, complete: bool = True) -> None:
    """Copy the carried pieces into `work/pieces` and rebuild every file whose pieces are all there (checked by
    SHA-256); when `complete`, a missing part is a one-line error naming the call that should have brought it."""
    pieces = work / "pieces"
    pieces.mkdir(parents=True, exist_ok=True)
    manifest = None
    for folder in sorted(carried.glob("[0-9]*")):
        for path in folder.iterdir():
            if path.name == MANIFEST:
                manifest = json.loads(path.read_text())
            elif not (pieces / path.name).is_file():
                shutil.copy(path, pieces / path.name)
    if manifest is None:
        raise SystemExit(f"gpu plan: no carried part under {carried} (carry .gpu/N with each call)")
    where = {(n, o): i for i, part in enumerate(manifest["pieces"], 1) for n, o, _ in part}
    missing = sorted({i for (n, o), i in where.items() if not (pieces / _piece(n, o)).is_file()})
    if missing and complete:
        raise SystemExit(f"gpu plan: part(s) {missing} of {manifest['parts']} never reached this machine")
    for name, sha in manifest["files"].items():
        offsets = sorted(o for n, o in where if n == name)
        target = work / name
        if not all((pieces / _piece(name, o)).is_file() for o in offsets) or target.is_file():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("wb") as f:
            for offset in offsets:
                f.write((pieces / _piece(name, offset)).read_bytes())
        if _sha(target) != sha:
            target.unlink()
            raise SystemExit(f"gpu plan: {name} is corrupt after joining its parts")
        if name.endswith(".jsonl.xz"):
            (work / name.removesuffix(".xz")).write_bytes(lzma.open(target).read())
        if name.endswith(".whl"):
            subprocess.run(
                [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
                 "--upgrade", "--target", str(work / "site"), str(target)],
                check=True,
            )  # fmt: skip


def join_model(plan: Plan, work: Path) -> str:
    """The model reference the commands use: the GGUF placed where the `smollm2-135m` alias finds it."""
    if not plan.gguf:
        return plan.model
    from longwin.models.aliases import SMOLLM2_GGUF, SMOLLM2_PACKAGE

    package = work / "site" / SMOLLM2_PACKAGE
    package.mkdir(parents=True, exist_ok=True)
    (package / "__init__.py").touch()
    shutil.move(str(work / "model.gguf"), package / SMOLLM2_GGUF) if (work / "model.gguf").is_file() else None
    return plan.model
