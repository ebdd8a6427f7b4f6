"""The ``embspace`` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from .errors import EmbspaceError

if TYPE_CHECKING:
    from .datasets import DatasetStatus

__all__ = ["main"]


def _cmd_demo(args: argparse.Namespace) -> int:
    from . import datasets

    before = datasets.locate(args.dataset) if args.dataset in datasets.REGISTRY else None
    ratings = datasets.load(args.dataset)
    print(ratings.summary())
    print(f"  source     {_source(args.dataset, before)}")
    return 0


def _source(name: str, before: DatasetStatus | None) -> str:
    """Where dataset ``name`` was read from, given its status before loading."""
    from .datasets.cache import cached_folder

    if before is None:  # a path
        return name
    if before.path is None:
        return f"downloaded, verified and extracted into {cached_folder(name)}"
    if before.state == "data dir" and before.path.is_dir():
        return f"{before.path} (EMBSPACE_DATA_DIR, read in place)"
    if before.state == "data dir":
        return f"{before.path} (EMBSPACE_DATA_DIR, verified, extracted into the cache)"
    return f"{before.path} (cache)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="embspace",
        description="Measure how much an embedding space changes with a hyperparameter.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = sub.add_parser(
        "demo",
        help="run the reference workflow on a dataset",
        description="Load a dataset and print its summary.",
        epilog="example: embspace demo --dataset ml-latest-small",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    demo.add_argument("--dataset", default="ml-latest-small", help="registry name or path")
    demo.set_defaults(func=_cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except EmbspaceError as exc:
        print(f"embspace: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("embspace: interrupted", file=sys.stderr)
        return 130
