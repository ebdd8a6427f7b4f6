"""The ``embspace`` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .errors import EmbspaceError

__all__ = ["main"]


def _cmd_demo(args: argparse.Namespace) -> int:
    from . import datasets

    ratings = datasets.load(args.dataset)
    print(ratings.summary())
    return 0


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
