"""The ``embspace`` command line.

Subcommands: ``demo``, ``datasets list|download|info``, ``train``, ``neighbors``,
``compare``, ``sweep``, ``tui``. Each has ``--help`` with an example. Errors (bad
arguments, unknown datasets, missing or damaged files, any :class:`EmbspaceError`,
and operating-system errors such as a full or read-only disk) print a single
line ``embspace: error: ...`` on stderr and exit with status 2; ``--json``
prints only JSON on stdout (progress and notes go to stderr). ``neighbors``
answers every query it can and prints one such line per query it cannot
resolve (with ``id:N`` / ``row:N`` choices to paste back) before exiting with 2.
Progress bars show only when stderr is a terminal (``--progress``: always,
``--quiet``: never).

Embeddings files are read and written in every format of
:mod:`embspace.embeddings_io` (``--format`` where the name says nothing), and a
ratings table file takes ``--user-col``, ``--item-col``, ``--rating-col`` (or
``--implicit``) and ``--sep``.

Datasets are named as :func:`embspace.datasets.load` accepts them (a registry
name such as ``ml-latest-small`` or a path to a ratings file or folder), or as
``synthetic:PRESET`` / ``synthetic:key=value,...`` for the synthetic generator
(:func:`embspace.datasets.synthetic`), e.g. ``synthetic:tiny`` or
``synthetic:n_users=200,n_items=100,n_ratings=3000,seed=1``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from importlib import import_module
from typing import Any, NoReturn

from .errors import EmbspaceError, InvalidParameterError, os_error_text
from .jsonio import to_jsonable

__all__ = ["build_parser", "main"]

#: The faces the command line starts, by module path ("module:function"):
#: they stand beside it on the top floor, so it does not import them; each is
#: imported when its subcommand runs (:func:`_face`).
DEMO = "embspace.demo:run_demo"
TUI = "embspace.tui:run"


class CliError(InvalidParameterError):
    """A user error found by the CLI itself (printed as one line, exit 2)."""


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``embspace: error: ... (see: embspace X --help)``."""

    def error(self, message: str) -> NoReturn:
        hint = f" (see: {self.prog} --help)"
        self.exit(2, f"embspace: error: {message}{hint}\n")


# ---------------------------------------------------------------------- helpers
def _face(path: str) -> Callable[..., Any]:
    """The function ``"module:function"`` names, imported now."""
    module, _, name = path.partition(":")
    return getattr(import_module(module), name)


def _load(spec: str, args: argparse.Namespace) -> Any:
    """The ratings of a dataset spec (:func:`embspace.datasets.load`), with
    progress bars as the arguments say, the table options given, filtered by
    ``--min-user-ratings`` and ``--min-item-ratings`` (what the filter kept is
    noted on stderr)."""
    from . import datasets
    from .faces.datasets import filter_described

    ratings = datasets.load(
        spec,
        progress=_progress(args),
        duplicates=getattr(args, "duplicates", None) or "error",
        **_table_options(args),
    )
    lo_u, lo_i = _minimums(args)
    if (lo_u, lo_i) == (1, 1):
        return ratings
    ratings, text = filter_described(ratings, lo_u, lo_i)
    _note(args, f"filter: {text}")
    return ratings


def _minimums(args: argparse.Namespace) -> tuple[int, int]:
    """``(--min-user-ratings, --min-item-ratings)``; 1 where a command has none."""
    return getattr(args, "min_user_ratings", 1), getattr(args, "min_item_ratings", 1)


def _table_options(args: argparse.Namespace) -> dict[str, Any]:
    """The options of a ratings table given on the command line (only those
    given: :func:`embspace.datasets.load` refuses them for registry names)."""
    options: dict[str, Any] = {}
    for flag, name in (
        ("user_col", "user"),
        ("item_col", "item"),
        ("rating_col", "rating"),
        ("timestamp_col", "timestamp"),
    ):
        value = getattr(args, flag, None)
        if value is not None:
            options[name] = value
    if getattr(args, "implicit", False):
        options["rating"] = False
    sep = getattr(args, "sep", None)
    if sep is not None:
        options["sep"] = {"\\t": "\t", "tab": "\t"}.get(sep, sep)  # backslash-t typed: a tab
    return options


def _progress(args: argparse.Namespace) -> bool:
    """Progress bars: ``--progress`` always, ``--quiet`` never, otherwise only
    when stderr is a terminal (so logs and pipes get no bars)."""
    if getattr(args, "progress", False):
        return True
    return not getattr(args, "quiet", False) and sys.stderr.isatty()


def _note(args: argparse.Namespace, message: str) -> None:
    """A status line on stderr (silenced by --quiet)."""
    if not getattr(args, "quiet", False):
        print(message, file=sys.stderr, flush=True)


def _print_json(payload: Any) -> None:
    """Strict JSON on stdout: NaN and infinities as null, numpy values as Python
    values, anything else as its ``str``."""
    print(json.dumps(to_jsonable(payload, finite=True, fallback=str), indent=2, allow_nan=False))


def _estimator(args: argparse.Namespace) -> Any:
    """The estimator ``--estimator``, ``--set``, ``--seed``, ``--threads`` and
    ``--device`` describe (values read by :mod:`embspace.faces.values`)."""
    from .faces.estimators import estimator_defaults, estimator_name, make_estimator
    from .faces.values import parse_params

    name = estimator_name(args.estimator)
    params = parse_params(args.set or [], estimator_defaults(name), owner=name)
    return make_estimator(
        name, params, seed=args.seed, num_threads=args.threads, device=args.device
    )


def _cache(args: argparse.Namespace) -> Any:
    from .cache import EmbeddingCache

    if getattr(args, "no_cache", False):
        return None
    return EmbeddingCache(getattr(args, "cache_dir", None))


def _train(args: argparse.Namespace, estimator: Any, ratings: Any) -> Any:
    """Train ``estimator`` on ``ratings`` through the cache."""
    from .sweeps import fit_cached

    run = fit_cached(ratings, estimator, cache=_cache(args), progress=_progress(args))
    how = "loaded from the cache" if run.cached else f"trained in {run.fit_time:.2f} s"
    _note(args, f"{type(estimator).__name__} on {ratings.name or 'the data'}: {how}")
    run.estimator = estimator
    return run


def _load_embeddings(path: str, format: str | None = None) -> Any:
    """The embeddings file ``path`` in ``format`` (by default chosen from its
    name and first bytes; see :mod:`embspace.embeddings_io`)."""
    from .embeddings import Embeddings

    return Embeddings.load(path, format)


# ---------------------------------------------------------------------- demo
def _cmd_demo(args: argparse.Namespace) -> int:
    run_demo = _face(DEMO)
    echo = None if args.json else print
    result = run_demo(
        args.dataset,
        out=args.out,
        seeds=args.seeds,
        quick=args.quick,
        cache_dir=False if args.no_cache else args.cache_dir,
        progress=_progress(args),
        num_threads=args.threads,
        device=args.device,
        echo=echo,
        log=None if args.quiet else (lambda m: print(m, file=sys.stderr, flush=True)),
        iterations=args.iterations,
        tol=args.tol,
        min_user_ratings=args.min_user_ratings,
        min_item_ratings=args.min_item_ratings,
    )
    if args.json:
        _print_json(result.to_dict())
    return 0


# ---------------------------------------------------------------------- datasets
def _dataset_row(name: str) -> dict[str, Any]:
    """Registry entry and local state of one dataset, as a flat dict."""
    from dataclasses import asdict

    from . import datasets

    entry = datasets.info(name)
    status = datasets.locate(name)
    row = asdict(entry)
    row["url"] = entry.url
    row["state"] = status.state
    row["path"] = None if status.path is None else str(status.path)
    return row


def _cmd_datasets_list(args: argparse.Namespace) -> int:
    from . import datasets

    rows = [_dataset_row(s.name) for s in datasets.list_datasets()]
    if args.json:
        _print_json(rows)
        return 0
    import pandas as pd

    frame = pd.DataFrame(rows)
    frame["size"] = frame["size"].map(lambda b: f"{b / 1e6:.1f} MB")
    for col in ("n_ratings", "n_users", "n_items"):
        frame[col] = frame[col].map(lambda n: "" if n is None or pd.isna(n) else f"{int(n):,}")
    keep = ["name", "size", "n_ratings", "n_users", "n_items", "state", "description"]
    print(
        frame[keep]
        .rename(columns={"n_ratings": "ratings", "n_users": "users", "n_items": "items"})
        .to_string(index=False)
    )
    return 0


def _cmd_datasets_info(args: argparse.Namespace) -> int:
    info = _dataset_row(args.name)
    if args.json:
        _print_json(info)
        return 0
    width = max(map(len, info))
    for k, v in info.items():
        text = f"{v:,}" if isinstance(v, int) and not isinstance(v, bool) else str(v)
        print(f"{k:<{width}}  {text}")
    return 0


def _cmd_datasets_download(args: argparse.Namespace) -> int:
    from . import datasets

    path = datasets.download(args.name, progress=_progress(args))
    if args.json:
        _print_json({"name": args.name, "path": str(path)})
    else:
        print(path)
    return 0


# ---------------------------------------------------------------------- train
def _cmd_train(args: argparse.Namespace) -> int:
    estimator = _estimator(args)
    ratings = _load(args.dataset, args)
    run = _train(args, estimator, ratings)
    items_path = run.items.save(args.out, args.format)
    users_path = run.users.save(args.users_out, args.format) if args.users_out else None
    payload = {
        "dataset": args.dataset,
        "estimator": type(run.estimator).__name__,
        "params": run.estimator.get_params(deep=False),
        "cached": run.cached,
        "fit_time": run.fit_time,
        "items": {"path": str(items_path), "n": run.items.n, "d": run.items.d},
        "users": None
        if users_path is None
        else {"path": str(users_path), "n": run.users.n, "d": run.users.d},
        "loss": run.loss,
        "n_iter": run.n_iter,
        "converged": run.converged,
        "ratings": {
            "name": ratings.name,
            "n_users": ratings.n_users,
            "n_items": ratings.n_items,
            "n_ratings": ratings.n_ratings,
            "min_user_ratings": args.min_user_ratings,
            "min_item_ratings": args.min_item_ratings,
        },
    }
    if args.json:
        _print_json(payload)
        return 0
    print(f"item embeddings: {run.items.n:,} x {run.items.d} -> {items_path}")
    if users_path is not None:
        print(f"user embeddings: {run.users.n:,} x {run.users.d} -> {users_path}")
    if run.loss is not None:
        print(f"final loss: {run.loss:.6g}")
    tol = run.estimator.get_params(deep=False).get("tol")
    if run.n_iter is not None and tol:
        state = "converged" if run.converged else "stopped at the iteration cap before"
        print(f"{run.n_iter} iterations: {state} tol={tol:g}")
    return 0


# ---------------------------------------------------------------------- neighbors
def _cmd_neighbors(args: argparse.Namespace) -> int:
    """Answer every query that resolves; one line per query that does not (with
    choices to paste back), then exit 2 if there was any."""
    from . import NeighborTable
    from .errors import AmbiguousQueryError, EntityNotFoundError, IndexOutOfRangeError
    from .faces.tables import neighbors_text

    if args.embeddings:
        if _minimums(args) != (1, 1):
            raise CliError(
                "--min-user-ratings and --min-item-ratings filter the ratings a model is "
                "trained on; they do not apply to --embeddings"
            )
        emb = _load_embeddings(args.embeddings, args.format)
    else:
        estimator = _estimator(args)
        ratings = _load(args.dataset, args)
        emb = _train(args, estimator, ratings).side(args.entities)
    table = NeighborTable(emb, metric=args.metric, num_threads=args.threads, device=args.device)
    answers: list[dict[str, Any]] = []
    failed = 0
    for query in args.query:
        try:
            frame = table.neighbors(query, k=args.k)
        except (AmbiguousQueryError, EntityNotFoundError, IndexOutOfRangeError) as exc:
            failed += 1
            line, choices = _unresolved(table, query, exc)
            answers.append({"query": query, "neighbors": None, "error": line, "choices": choices})
            print(f"embspace: error: {line}", file=sys.stderr, flush=True)
            continue
        answers.append({"query": query, "neighbors": frame})
        if not args.json:
            if len(answers) - failed > 1:
                print()
            print(f"neighbors of {query!r} ({args.metric}, k={args.k}):")
            print(neighbors_text(frame), flush=True)
    if args.json:
        for answer in answers:
            if answer["neighbors"] is not None:
                answer["neighbors"] = answer["neighbors"].to_dict(orient="records")
        _print_json(answers)  # unresolved queries too: neighbors null, error, choices
    return 2 if failed else 0


#: How many choices an unresolved query lists.
_CHOICES = 10


def _unresolved(table: Any, query: str, exc: Exception) -> tuple[str, list[str]]:
    """``(line, choices)`` for a query that did not resolve: what went wrong and
    the queries (``id:N`` or ``row:N``, from :meth:`NeighborTable.query_of`)
    that name each candidate, to paste back."""
    rows: list[int] = list(getattr(exc, "rows", []) or [])
    choices = [table.query_of(r) for r in rows]
    titles = table.embeddings.titles
    shown = [f'{c} "{titles[r]}"' for c, r in zip(choices, rows, strict=True)][:_CHOICES]
    more = f", and {len(rows) - _CHOICES} more" if len(rows) > _CHOICES else ""
    if rows and hasattr(exc, "candidates"):
        line = f"{query!r} matches {len(rows)} entities; choose one: {', '.join(shown)}{more}"
    elif rows:
        line = f"nothing matches {query!r}; the closest: {', '.join(shown)}{more}"
    else:
        line = " ".join(str(exc).split()) or type(exc).__name__
        if query not in line:
            line = f"{query!r}: {line}"
    return line, choices


# ---------------------------------------------------------------------- compare
def _cmd_compare(args: argparse.Namespace) -> int:
    from . import compare
    from .faces.measures import DEFAULT_MEASURES, parse_measures

    measures = list(DEFAULT_MEASURES) if args.measures is None else parse_measures(args.measures)
    a = _load_embeddings(args.a, args.format)
    b = _load_embeddings(args.b, args.format)
    result = compare(
        a,
        b,
        measures=measures,
        k=args.k,
        metric=args.metric,
        num_threads=args.threads,
        device=args.device,
        sample=args.sample,
        sample_seed=args.seed,
    )
    if args.json:
        payload = result.to_dict() if hasattr(result, "to_dict") else {"scores": result.scores}
        _print_json(payload)
        return 0
    print(f"{result.n_shared:,} shared entities ({a.n:,} in {args.a}, {b.n:,} in {args.b})")
    if result.sample is not None:
        print(
            f"neighbor measures from {result.sample:,} sampled query entities, each against all "
            f"{result.n_shared:,} (95% interval; --sample 0 for the exact score)"
        )
    width = max(map(len, result.scores))
    for name, score in result.scores.items():
        low, high = result.intervals.get(name, (score, score))
        ci = f"  [{low:.4f}, {high:.4f}]" if result.sample is not None and low != high else ""
        print(f"  {name:<{width}}  {score:.4f}{ci}")
    return 0


# ---------------------------------------------------------------------- sweep
def _cmd_sweep(args: argparse.Namespace) -> int:
    from .faces.estimators import check_sweep_param, make_estimator
    from .faces.measures import parse_measures
    from .faces.tables import format_sweep_table
    from .faces.values import coerce, parse_value, parse_values
    from .sweeps import Sweep, SweepEvent

    estimator = _estimator(args)
    defaults = estimator.get_params(deep=False)
    check_sweep_param(args.estimator, args.param, defaults)
    like = defaults[args.param]
    values = parse_values(args.values, like, args.param)
    reference = (
        None if args.reference is None else coerce(parse_value(args.reference), like, args.param)
    )
    # not given: the defaults, less those that cannot apply (sweeping factors
    # skips unitmatch with a note); given: every named measure, or an error
    measures = None if args.measures is None else parse_measures(args.measures)
    if args.report:
        _check_report_target(args.report)
    ratings = _sweep_data(args)
    sweep = Sweep(
        ratings,
        estimator,
        args.param,
        values,
        reference=reference,
        seeds=args.seeds,
        measures=measures,
        entities=args.entities,
        cache_dir=False if args.no_cache else args.cache_dir,
        k=args.k,
        device=args.device,
        num_threads=args.threads,
    )

    def report(event: SweepEvent) -> None:
        if event.kind == "run_done":
            how = "loaded from the cache" if event.cached else f"trained in {event.elapsed:.2f} s"
            # one flushed line per finished run (scripts and the resume test read them)
            print(
                f"run {(event.run_index or 0) + 1}/{event.n_runs} {args.param}={event.value} "
                f"seed={event.seed}: {how}",
                file=sys.stderr,
                flush=True,
            )

    sweep.run(callback=None if args.quiet else report, progress=_progress(args))
    if args.against_svd:
        from .sweeps import fit_cached
        from .sweeps.plan import run_dimension

        # the SVD has the reference run's dimension (factors, n_components, ...)
        factors = run_dimension({**defaults, args.param: sweep.reference}) or 10
        svd = make_estimator(
            "SVD",
            {"factors": factors},
            seed=args.seed,
            num_threads=args.threads,
        )
        run = fit_cached(ratings, svd, cache=_cache(args))
        sweep.against(run.side(args.entities), name="svd")
    paths = sweep.save(args.out) if args.out else {}
    if args.report:
        paths["report"] = sweep.report(args.report)
    if args.json:
        payload = sweep.to_dict()
        payload["files"] = {k: str(v) for k, v in paths.items()}
        _print_json(payload)
        return 0
    groups = list(dict.fromkeys(sweep.table["against"]))
    for i, group in enumerate(groups):
        if i:
            print()
        print(format_sweep_table(sweep, group))
    if paths:
        print()
        for kind, path in paths.items():
            print(f"{kind:<10} {path}")
    return 0


def _sweep_data(args: argparse.Namespace) -> Any:
    """What the sweep trains on: the ratings of ``--dataset``, or for an
    estimator that trains on a token corpus (gensim's) the ``--corpus`` file."""
    from .faces.estimators import corpus_estimators, estimator_name, trains_on

    name = estimator_name(args.estimator)
    if trains_on(name) != "corpus":
        if args.corpus is not None:
            raise CliError(
                f"--corpus is for the estimators that train on a token corpus "
                f"({', '.join(corpus_estimators())}); {name} trains on ratings (--dataset)"
            )
        return _load(args.dataset, args)
    from .trainers import TokenCorpus

    if args.corpus is None:
        raise CliError(
            f"{name} trains on a token corpus: give --corpus FILE (text, one sentence per "
            "line, tokens separated by spaces)"
        )
    if args.against_svd:
        raise CliError("--against-svd needs ratings: a corpus has no matrix to factorize")
    if args.entities != "items":
        raise CliError(f"{name} embeds the corpus's words only: use --entities items")
    if _minimums(args) != (1, 1):
        raise CliError(
            "--min-user-ratings and --min-item-ratings filter ratings: for a corpus, "
            "use --set min_count=N (words seen fewer times are left out)"
        )
    corpus = TokenCorpus.from_file(args.corpus, lowercase=args.lowercase)
    _note(
        args,
        f"corpus: {len(corpus):,} sentences, {corpus.n_tokens:,} tokens, "
        f"{len(corpus.counts()):,} distinct words",
    )
    return corpus


# ---------------------------------------------------------------------- report
def _check_report_target(path: str) -> None:
    """Before any work: the report needs plotly and an existing folder to write in."""
    import importlib.util

    if importlib.util.find_spec("plotly") is None:
        raise CliError("the HTML report needs plotly: pip install 'embspace[report]'")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise CliError(f"cannot write the report {path}: folder {folder} does not exist")


def _cmd_report(args: argparse.Namespace) -> int:
    from .report import write_report
    from .sweeps.export import load_report_data

    if args.output:
        _check_report_target(args.output)
    data = load_report_data(args.results, stem=args.stem)
    name = f"{args.stem}_report.html" if args.stem else "report.html"
    out = args.output or os.path.join(args.results, name)
    write_report(data, out, title=args.title)
    print(out)
    return 0


# ---------------------------------------------------------------------- parser
def _formatter(prog: str) -> argparse.HelpFormatter:
    return argparse.RawDescriptionHelpFormatter(prog, max_help_position=32)


def _add_measures(p: argparse.ArgumentParser) -> None:
    """--measures and -k, shared by compare and sweep."""
    from .faces.measures import DEFAULT_MEASURES

    default = ",".join(DEFAULT_MEASURES)
    p.add_argument(
        "--measures",
        "-m",
        default=None,
        metavar="LIST",
        help=f"comma-separated (default: {default}; a sweep skips, with a note, the "
        "defaults that cannot apply, e.g. unitmatch when sweeping factors)",
    )
    p.add_argument(
        "-k", type=_positive_int, default=10, help="neighbors for neighbor measures (default: 10)"
    )


def _add_common(
    p: argparse.ArgumentParser, *, compute: bool = True, json_flag: bool = True
) -> None:
    g = p.add_argument_group("common options")
    shown = g.add_mutually_exclusive_group()
    shown.add_argument(
        "-q", "--quiet", action="store_true", help="no progress bars or status lines"
    )
    shown.add_argument(
        "--progress",
        action="store_true",
        help="progress bars even when stderr is not a terminal (default: only on a terminal)",
    )
    if json_flag:
        g.add_argument("--json", action="store_true", help="print only JSON on stdout")
    if compute:
        g.add_argument(
            "--threads",
            type=_nonneg_int,
            default=None,
            metavar="N",
            help="worker threads (default: all cores)",
        )
        g.add_argument(
            "--device",
            choices=("cpu", "gpu", "auto"),
            default="cpu",
            help="where to compute (default: cpu)",
        )


def _add_cache(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("cache")
    g.add_argument(
        "--cache-dir",
        default=None,
        metavar="DIR",
        help="folder of cached trainings (default: the embspace cache)",
    )
    g.add_argument("--no-cache", action="store_true", help="train everything, store nothing")


def _add_training(p: argparse.ArgumentParser, estimator_default: str = "WALS") -> None:
    from .faces.estimators import ESTIMATORS

    g = p.add_argument_group("training")
    g.add_argument(
        "--dataset",
        "-d",
        default="ml-latest-small",
        metavar="NAME",
        help="registry name, path, or synthetic:PRESET (default: ml-latest-small)",
    )
    g.add_argument(
        "--estimator",
        "-e",
        default=estimator_default,
        metavar="NAME",
        help=f"{' or '.join(ESTIMATORS)} (default: {estimator_default})",
    )
    g.add_argument(
        "--set",
        action="append",
        metavar="NAME=VALUE",
        help="an estimator parameter, e.g. --set factors=10 (repeatable)",
    )
    g.add_argument("--seed", type=int, default=0, help="random_state of the training (default: 0)")
    _add_filter(g)
    _add_table_options(p)


def _add_filter(g: Any) -> None:
    """--min-user-ratings and --min-item-ratings (:meth:`embspace.Ratings.filter`)."""
    g.add_argument(
        "--min-user-ratings",
        type=_positive_int,
        default=1,
        metavar="N",
        help="keep only users with at least N ratings (default: 1, all)",
    )
    g.add_argument(
        "--min-item-ratings",
        type=_positive_int,
        default=1,
        metavar="N",
        help="keep only items with at least N ratings (default: 1, all); both minimums "
        "are applied until both hold. Items rated by a single user get exactly "
        "parallel vectors, whose neighbors are ties",
    )


def _add_table_options(p: argparse.ArgumentParser) -> None:
    """How to read a ratings table given by path (passed to datasets.load)."""
    g = p.add_argument_group(
        "ratings table",
        "for a CSV/TSV/parquet file given as --dataset: which columns hold what (detected by "
        "name when unambiguous; a number is a position in a file without header)",
    )
    g.add_argument("--user-col", metavar="COLUMN", help="the column of user ids")
    g.add_argument("--item-col", metavar="COLUMN", help="the column of item ids")
    rating = g.add_mutually_exclusive_group()
    rating.add_argument("--rating-col", metavar="COLUMN", help="the column of ratings")
    rating.add_argument(
        "--implicit",
        action="store_true",
        help="no rating column: every (user, item) pair present rates 1 (assumed for a table "
        "of two columns)",
    )
    g.add_argument(
        "--sep",
        metavar="SEP",
        help="field separator, e.g. ';' or '\\t' (default: sniffed from the first line)",
    )
    g.add_argument(
        "--timestamp-col",
        metavar="COLUMN",
        help="a column of times (numbers or dates): rows in time order, so that --duplicates "
        "first/last keep each pair's earliest/latest rating",
    )
    g.add_argument(
        "--duplicates",
        metavar="POLICY",
        default=None,
        help="repeated (user, item) pairs: an error (default), or a policy of "
        "embspace.datasets.load, e.g. first, last, sum, mean, max",
    )


def _add_format(p: argparse.ArgumentParser, help_: str) -> None:
    from .embeddings_io import FORMATS

    p.add_argument("--format", "-f", choices=list(FORMATS), default=None, help=help_)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {value}")
    return value


def _nonneg_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text}")
    return value


def _nonneg_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {value}")
    return value


def _sub(
    sub: Any, name: str, help_: str, description: str, example: str
) -> argparse.ArgumentParser:
    return sub.add_parser(
        name,
        help=help_,
        description=description,
        epilog="example:\n  " + example.strip().replace("\n", "\n  "),
        formatter_class=_formatter,
    )


def build_parser() -> argparse.ArgumentParser:
    from ._core import __version__

    parser = _Parser(
        prog="embspace",
        description="Measure how much an embedding space changes when a hyperparameter changes.",
        epilog=(
            "examples:\n"
            "  embspace demo                        # the reference workflow on ml-latest-small\n"
            "  embspace sweep --param unobserved_weight --values 0,0.1,1 --seeds 2\n"
            "run 'embspace COMMAND --help' for the options of a command."
        ),
        formatter_class=_formatter,
    )
    parser.add_argument("--version", action="version", version=f"embspace {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    # demo
    p = _sub(
        sub,
        "demo",
        "run the reference workflow (train, neighbors, sweep, SVD, plots)",
        "The reference notebook end to end: WALS (k=10, unobserved weight 0.01) and the\n"
        "neighbors of 3 random movies; the sweep of the unobserved weight over\n"
        "0, 0.01, 0.1, 0.5, 1, 2 against weight 0 with each value's seed noise floor, the\n"
        "calibrated scores and a permutation test; SVD against every sweep run. Prints the\n"
        "tables and the movies that moved most, writes PNG plots, CSV and JSON to --out,\n"
        "and ends with a summary in words. --quick: one seed and 5 iterations (a smoke run).\n"
        "WALS runs stop at --iterations (20) or when the loss settles (--tol), and the\n"
        "summary says which runs stopped at the cap.",
        "embspace demo --dataset ml-latest-small --out embspace-demo --seeds 3",
    )
    p.add_argument(
        "--dataset",
        "-d",
        default="ml-latest-small",
        metavar="NAME",
        help="registry name, path, or synthetic:PRESET (default: ml-latest-small)",
    )
    p.add_argument(
        "--out",
        "-o",
        default="embspace-demo",
        metavar="DIR",
        help="folder for plots, CSV and JSON (default: ./embspace-demo)",
    )
    p.add_argument(
        "--seeds", type=_positive_int, default=3, help="seeds per sweep value (default: 3)"
    )
    p.add_argument(
        "--quick", action="store_true", help="one seed, 5 iterations: seconds, for a smoke test"
    )
    p.add_argument(
        "--iterations",
        type=_positive_int,
        default=None,
        metavar="N",
        help="WALS iteration cap (default: 20, the reference notebook's; 5 with --quick)",
    )
    p.add_argument(
        "--tol",
        type=_nonneg_float,
        default=None,
        metavar="T",
        help="relative loss decrease at which a WALS run stops early (default: 1e-4; 0 "
        "runs every iteration); the demo says which runs stopped at the cap",
    )
    _add_filter(p.add_argument_group("data"))
    _add_common(p)
    _add_cache(p)
    p.set_defaults(func=_cmd_demo)

    # datasets
    p = _sub(
        sub,
        "datasets",
        "list, describe or download the MovieLens datasets",
        "The datasets embspace knows by name, their official shapes, and downloads\n"
        "(size- and sha256-checked, into the cache).",
        "embspace datasets list\nembspace datasets info ml-latest-small --json\nembspace datasets download ml-100k",
    )
    dsub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    q = _sub(
        dsub,
        "list",
        "the registry",
        "Every dataset of the registry.",
        "embspace datasets list --json",
    )
    _add_common(q, compute=False)
    q.set_defaults(func=_cmd_datasets_list)
    q = _sub(
        dsub,
        "info",
        "one dataset in detail",
        "Shape, size, checksum and where it is cached.",
        "embspace datasets info ml-latest-small",
    )
    q.add_argument("name", help="registry name")
    _add_common(q, compute=False)
    q.set_defaults(func=_cmd_datasets_info)
    q = _sub(
        dsub,
        "download",
        "download and verify a dataset",
        "Download <name>.zip (from EMBSPACE_MIRROR when set), check size and sha256,\n"
        "extract safely into the cache; a dataset already present is not downloaded again.",
        "embspace datasets download ml-100k",
    )
    q.add_argument("name", help="registry name")
    _add_common(q, compute=False)
    q.set_defaults(func=_cmd_datasets_download)

    # train
    p = _sub(
        sub,
        "train",
        "train WALS or SVD and save the embeddings",
        "Train an estimator on a dataset (through the cache: a repeated training is\n"
        "loaded, not redone) and save the item embeddings (and optionally the user\n"
        "embeddings) in the format the file name says (.npz, .npy, .csv, .tsv, .parquet,\n"
        ".txt/.vec word2vec text, .bin word2vec binary; any other name gets .npz),\n"
        "or as --format says; 'neighbors' and 'compare' read them all.",
        "embspace train --dataset ml-latest-small --set unobserved_weight=0.1 --out items.npz\n"
        "embspace train -d ratings.csv --user-col customer_ref --item-col sku --out items.vec",
    )
    _add_training(p)
    p.add_argument(
        "--out",
        "-o",
        required=True,
        metavar="FILE",
        help="where to save the item embeddings (.npz by default)",
    )
    p.add_argument("--users-out", metavar="FILE", help="where to save the user embeddings")
    _add_format(p, "file format of --out and --users-out (default: from the file name)")
    _add_common(p)
    _add_cache(p)
    p.set_defaults(func=_cmd_train)

    # neighbors
    p = _sub(
        sub,
        "neighbors",
        "nearest neighbors of entities (movies by title)",
        "The k nearest neighbors of each query in an embeddings file, or in embeddings\n"
        "trained on a dataset (cached). A query is a key, id:N (the dataset id N),\n"
        "row:N (row N) or a title (accent- and case-insensitive; a bare number is a\n"
        "title too). Every query that resolves is answered; each one that does not gets\n"
        "one line on stderr with choices to paste back (id:N or row:N), and the exit\n"
        "status is then 2.",
        'embspace neighbors "They Live (1988)" "Toy Story" -k 5\n'
        "embspace neighbors id:1 row:17 -k 5\n"
        'embspace neighbors --embeddings vectors.bin "king" --json',
    )
    p.add_argument("query", nargs="+", help="keys, id:N, row:N or titles")
    p.add_argument(
        "--embeddings",
        metavar="FILE",
        help="an embeddings file of any format (instead of training)",
    )
    _add_format(p, "file format of --embeddings (default: from its name and first bytes)")
    p.add_argument("-k", type=_positive_int, default=10, help="neighbors per query (default: 10)")
    p.add_argument(
        "--metric",
        choices=("cosine", "euclidean", "dot"),
        default="cosine",
        help="(default: cosine)",
    )
    p.add_argument(
        "--entities",
        choices=("items", "users"),
        default="items",
        help="which side of a training (default: items)",
    )
    _add_training(p)
    _add_common(p)
    _add_cache(p)
    p.set_defaults(func=_cmd_neighbors)

    # compare
    p = _sub(
        sub,
        "compare",
        "compare two embeddings files",
        "Similarity of two embeddings of the same entities (aligned on shared keys) under\n"
        "the chosen measures. The files may be of any format embspace reads (.npz, .npy,\n"
        "CSV, parquet, word2vec text or binary), chosen by name and first bytes; .npy\n"
        "files are keyed by row number.",
        "embspace compare a.npz b.npz --measures neighbors,cca,unitmatch,cka --json\n"
        "embspace compare a.npy b.npy\n"
        "embspace compare a.txt b.txt --format word2vec",
    )
    p.add_argument("a", help="an embeddings file")
    p.add_argument("b", help="an embeddings file")
    _add_format(p, "file format of both files (default: from their names and first bytes)")
    _add_measures(p)
    p.add_argument(
        "--metric",
        choices=("cosine", "euclidean", "dot"),
        default="cosine",
        help="(default: cosine)",
    )
    p.add_argument(
        "--sample",
        type=int,
        default=None,
        metavar="M",
        help="neighbor measures from M random query entities against all, with a 95%% "
        "interval (0: exact; default: 10,000 queries above 200,000 entities, see "
        "embspace.measures.AUTO_SAMPLE_ABOVE)",
    )
    p.add_argument(
        "--seed", type=int, default=0, help="seed of the sampled query entities (default: 0)"
    )
    _add_common(p)
    p.set_defaults(func=_cmd_compare)

    # sweep
    p = _sub(
        sub,
        "sweep",
        "sweep one hyperparameter against a reference value",
        "Train the estimator at each value of --param (other parameters as --set), with\n"
        "the same --seeds seeds each, and compare every run with the reference runs of\n"
        "the other seeds (runs of one seed share their start); each value's floor is the\n"
        "similarity between its own seeds, and a permutation test of the run labels says\n"
        "whether a value differs from the reference beyond seed noise (Holm-adjusted;\n"
        "with few seeds it cannot: a warning says how many are needed). Finished runs\n"
        "are cached: an interrupted sweep resumes where it stopped. One line per finished\n"
        "run goes to stderr.",
        "embspace sweep --dataset ml-latest-small --param unobserved_weight \\\n"
        "    --values 0,0.01,0.1,0.5,1,2 --reference 0 --seeds 3 --against-svd --out results",
    )
    _add_training(p)
    p.add_argument("--param", "-p", required=True, metavar="NAME", help="the parameter to vary")
    p.add_argument(
        "--values",
        required=True,
        metavar="LIST",
        help="values separated by commas (or spaces), e.g. 0,0.1,1",
    )
    p.add_argument(
        "--reference", metavar="VALUE", help="the value compared against (default: the first value)"
    )
    p.add_argument(
        "--seeds",
        type=_positive_int,
        default=3,
        help="seeds per value (default: 3; the noise floor needs at least 2)",
    )
    _add_measures(p)
    p.add_argument(
        "--entities", choices=("items", "users"), default="items", help="(default: items)"
    )
    p.add_argument(
        "--corpus",
        metavar="FILE",
        help="for the estimators that train on text (gensim-word2vec, gensim-fasttext): a "
        "UTF-8 file, one sentence per line, tokens separated by spaces (.gz read through "
        "gzip); replaces --dataset",
    )
    p.add_argument(
        "--lowercase", action="store_true", help="with --corpus: fold every token to lower case"
    )
    p.add_argument(
        "--against-svd",
        action="store_true",
        help="also compare every run with an SVD of the same factors",
    )
    p.add_argument(
        "--out",
        "-o",
        metavar="DIR",
        help="write CSV, JSON and PNG here (and what `embspace report DIR` needs)",
    )
    p.add_argument(
        "--report",
        metavar="FILE.html",
        help="write a self-contained HTML report here (tables, plots, per-entity changes, "
        "neighbors, provenance; about 5 MB, opens offline)",
    )
    _add_common(p)
    _add_cache(p)
    p.set_defaults(func=_cmd_sweep)

    # report
    p = _sub(
        sub,
        "report",
        "an HTML report of a sweep saved with `sweep --out DIR`",
        "Rebuild the self-contained HTML report of a sweep from its results folder\n"
        "(written by `embspace sweep ... --out DIR`): the tables with floors, chance,\n"
        "calibrated scores, p-values and verdicts, interactive plots, the per-entity\n"
        "changes (search, sort, popularity), the neighbors of the most changed entities\n"
        "and the provenance. One file, about 5 MB (plotly.js inline), opens offline.",
        "embspace report results -o report.html",
    )
    p.add_argument("results", metavar="RESULTS_DIR", help="a folder written by sweep --out")
    p.add_argument(
        "--output",
        "-o",
        metavar="FILE.html",
        help="where to write the report (default: RESULTS_DIR/report.html, or "
        "RESULTS_DIR/STEM_report.html with --stem)",
    )
    p.add_argument(
        "--stem",
        metavar="STEM",
        help="which sweep, when the folder holds several (e.g. sweep_unobserved_weight)",
    )
    p.add_argument("--title", metavar="TEXT", help="the report's title")
    p.set_defaults(func=_cmd_report)

    # tui
    p = _sub(
        sub,
        "tui",
        "the terminal UI: run sweeps, read tables and plots, look up neighbors",
        "A Textual app with three screens: Sweep (form, progress, similarity table and\n"
        "chart, CSV/PNG export), Neighbors (a title's neighbors in two models side by\n"
        "side) and Changes (entities whose neighborhood changed most). Press ? inside\n"
        "for the keys. Needs the 'tui' extra (textual, textual-plotext).",
        "embspace tui --dataset ml-latest-small",
    )
    p.add_argument(
        "--dataset",
        "-d",
        metavar="NAME_OR_PATH",
        help="registry name, path, or synthetic:PRESET loaded at start (default: choose in the app)",
    )
    p.set_defaults(func=_cmd_tui)
    return parser


def _cmd_tui(args: argparse.Namespace) -> int:
    try:
        run = _face(TUI)
    except ImportError as exc:
        raise CliError(str(exc)) from None
    try:
        run(dataset=args.dataset)
    except ImportError as exc:  # textual (an optional dependency) is missing
        raise CliError(str(exc)) from None
    return 0


def _one_line(exc: BaseException) -> str:
    message = " ".join(str(exc).split()) or type(exc).__name__
    extra = getattr(exc, "suggestions", None) or getattr(exc, "candidates", None)
    if extra:
        label = "did you mean" if getattr(exc, "suggestions", None) else "candidates"
        shown = [str(x) for x in extra[:5]]
        if not all(s in message for s in shown):
            message += f" ({label}: {'; '.join(shown)})"
    return message


def _show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: Any = None,
    line: str | None = None,
) -> None:
    """Warnings as one line ``embspace: warning: ...`` on stderr."""
    print(f"embspace: warning: {' '.join(str(message).split())}", file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status.

    Every failure of a command goes through here, the one place errors are
    mapped: an :class:`~embspace.errors.EmbspaceError` (bad input, damaged
    files, failed downloads) and any ``OSError`` (missing file, permission
    denied, read-only or full disk) print one line ``embspace: error: ...`` on
    stderr and exit with status 2; Ctrl-C exits with 130. Writes are atomic,
    so a failure leaves no partial file, and runs already trained stay in the
    cache (a rerun loads them). Warnings print as one line each."""
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            return int(func(args))
    except EmbspaceError as exc:
        print(f"embspace: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("embspace: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader went away (| head): leave quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except OSError as exc:
        print(f"embspace: error: {os_error_text(exc)}", file=sys.stderr)
        return 2
