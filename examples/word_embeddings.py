"""A second domain: how much does Word2Vec's context ``window`` change a word space?

Sweeps gensim's Word2Vec over ``window`` (or any other of its parameters) on
the Lee background corpus that gensim ships (300 news stories, 58k tokens),
with several seeds per value, and prints the same statistics as a WALS sweep:
each value's similarity to the reference value, its noise floor (re-seeding
alone), the chance level, the calibrated score and the permutation test; then
the words whose neighborhoods moved most. The results are saved as files
(table, per-pair results, JSON, plot, and the self-contained HTML report).
Trainings are cached: a second run is instant.

Needs gensim (``pip install 'embspace[gensim]'``). Run::

    python examples/word_embeddings.py                       # window 2, 5, 10; 3 seeds
    python examples/word_embeddings.py --param vector_size --values 25 50 100
    python examples/word_embeddings.py --epochs 2 --quiet    # fast, rough

With 3 seeds the permutation test's smallest p-value is 0.1, so no value can
be flagged ``changed`` at 0.05 (the sweep warns and says how many seeds it
would take: 6 for this table); the floors, chance levels and calibrated
scores are there all the same. Pass ``--seeds 6`` for a verdict.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def load_corpus() -> Any:
    """gensim's Lee background corpus, one story a line, tokenized by
    ``gensim.utils.simple_preprocess`` (lower case, words of 2 to 15 letters)."""
    from embspace.trainers import TokenCorpus
    from gensim.test.utils import datapath
    from gensim.utils import simple_preprocess

    with open(datapath("lee_background.cor"), encoding="utf-8") as f:
        return TokenCorpus(simple_preprocess(line) for line in f)


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--param", default="window", help="the Word2Vec parameter to sweep")
    p.add_argument(
        "--values",
        nargs="+",
        type=int,
        default=[2, 5, 10],
        help="its values (the first is the reference)",
    )
    p.add_argument("--seeds", type=int, default=3, help="runs per value (default 3)")
    p.add_argument("--epochs", type=int, default=20, help="Word2Vec epochs (default 20)")
    p.add_argument("--vector-size", type=int, default=50, help="dimensions (default 50)")
    p.add_argument("--min-count", type=int, default=5, help="minimum count of a word (default 5)")
    p.add_argument("-k", type=int, default=10, help="neighbors per word (default 10)")
    p.add_argument(
        "--out", type=Path, default=Path("word_embeddings_results"), help="output folder"
    )
    p.add_argument(
        "--cache-dir", type=Path, default=None, help="cache folder (default: embspace's)"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> Any:
    """Run the sweep, print its table and the most changed words, save the
    files; returns the :class:`~embspace.Sweep`."""
    from embspace import Sweep
    from embspace.faces.tables import format_sweep_table
    from embspace.trainers import GensimWord2Vec

    args = parse(argv)
    corpus = load_corpus()
    print(corpus)
    model = GensimWord2Vec(
        vector_size=args.vector_size, epochs=args.epochs, min_count=args.min_count
    )
    sweep = Sweep(
        corpus,
        model,
        args.param,
        args.values,
        seeds=args.seeds,
        k=args.k,
        cache_dir=args.cache_dir,
    )
    sweep.run(progress=not args.quiet)
    print(format_sweep_table(sweep))
    moved = args.values[-1]
    changes = sweep.changes(moved).sort_values(["q_value", "similarity"]).head(10)
    print(f"\nwords whose neighbors moved most at {args.param}={moved} (n_ratings = occurrences):")
    print(changes[["key", "n_ratings", "similarity", "floor", "q_value"]].to_string(index=False))
    paths = sweep.save(args.out)
    paths["report"] = sweep.report(args.out / f"sweep_{args.param}.html")
    print("\nwritten: " + ", ".join(str(p) for p in paths.values()))
    return sweep


if __name__ == "__main__":
    main(sys.argv[1:])
