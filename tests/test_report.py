"""The HTML report of a sweep: self-contained, its numbers those of Sweep.table,
rebuilt identically from a saved results folder, and rendered by a real browser
(headless Chromium through selenium) with no console error."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import embspace as es
import numpy as np
import pandas as pd
import pytest
from embspace.errors import MissingFileError, NotFittedError
from embspace.report import render_report
from embspace.sweeps import Sweep
from embspace.sweeps.export import load_report_data, report_data

pytest.importorskip("plotly")
# 3 seeds are too few for any test to reach 0.05: the sweep warns, the report says so
pytestmark = pytest.mark.filterwarnings("ignore::embspace.errors.EmbspaceWarning")

VALUES = [0.0, 0.1, 1.0]
SEEDS = 3


def _wals() -> es.WALS:
    return es.WALS(factors=6, iterations=6, num_threads=2)


@pytest.fixture(scope="module")
def ratings():
    return es.datasets.load("synthetic:tiny")


@pytest.fixture(scope="module")
def swept(ratings, tmp_path_factory: pytest.TempPathFactory) -> Sweep:
    cache = tmp_path_factory.mktemp("report-cache")
    sweep = Sweep(
        ratings,
        _wals(),
        "unobserved_weight",
        VALUES,
        reference=0.0,
        seeds=SEEDS,
        cache_dir=cache,
    ).run(progress=False)
    sweep.against(es.SVD(factors=6).fit(ratings), name="svd")
    return sweep


@pytest.fixture(scope="module")
def report_path(swept: Sweep, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("report") / "report.html"
    assert swept.report(path) == path
    return path


# ---------------------------------------------------------------------- expected cells
def _fix(x: Any, digits: int) -> str:
    f = float(x) if x is not None and x is not pd.NA else math.nan
    return f"{f:.{digits}f}" if math.isfinite(f) else "-"


def _flag(x: Any) -> str:
    if x is None or x is pd.NA or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return "yes" if bool(x) else "no"


def expected_rows(sweep: Sweep) -> dict[tuple[str, str, str], dict[str, str]]:
    """(value label, measure, against) -> column -> the text the report must show,
    written here from Sweep.table with the text table's precision."""
    out = {}
    for _, row in sweep.table.iterrows():
        label = f"{row['value']:g}"
        ref = row["against"] == "reference"
        cells = {
            "value": label + (" (ref)" if ref and row["value"] == sweep.reference else ""),
            "measure": row["measure"],
            "similarity": f"{row['similarity']:.3f} ± {row['stdev']:.3f}",
            "n_pairs": str(int(row["n_pairs"])),
            "floor": f"{row['floor']:.3f} ± {row['floor_stdev']:.3f}",
            "chance": _fix(row["chance"], 3),
            "calibrated": _fix(row["calibrated"], 2),
            "converged": _flag(row["converged"]),
        }
        if ref:
            cells.update(
                reference_floor=_fix(row["reference_floor"], 3),
                p_value=_fix(row["p_value"], 3),
                p_adjusted=_fix(row["p_adjusted"], 3),
                changed=_flag(row["changed"]),
            )
        out[(label, row["measure"], row["against"])] = cells
    return out


class _Collect(HTMLParser):
    """Tags with their attributes, and the text of every td of the sweep tables."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.rows: dict[tuple[str, str, str], dict[str, str]] = {}
        self._row: tuple[str, str, str] | None = None
        self._col: str | None = None
        self._text: list[str] = []
        self.scripts: dict[str, str] = {}
        self._script: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.tags.append((tag, a))
        if tag == "tr" and "data-against" in a:
            self._row = (a["data-value"] or "", a["data-measure"] or "", a["data-against"] or "")
            self.rows[self._row] = {}
        elif tag == "td" and self._row is not None and "data-col" in a:
            self._col, self._text = a["data-col"], []
        elif tag == "script" and a.get("type") == "application/json":
            self._script, self._text = a.get("id") or "", []

    def handle_data(self, data: str) -> None:
        if self._col is not None or self._script is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._col is not None and self._row is not None:
            self.rows[self._row][self._col] = "".join(self._text)
            self._col = None
        elif tag == "tr":
            self._row = None
        elif tag == "script" and self._script is not None:
            self.scripts[self._script] = "".join(self._text)
            self._script = None


def _parse(text: str) -> _Collect:
    p = _Collect()
    p.feed(text)
    return p


def _section(text: str, start: str, end: str) -> str:
    return text[text.index(start) : text.index(end)]


# ---------------------------------------------------------------------- the file
def test_the_report_is_one_file_with_nothing_from_the_network(report_path: Path) -> None:
    from plotly.offline import get_plotlyjs

    text = report_path.read_text(encoding="utf-8")
    parsed = _parse(text)
    for tag, attrs in parsed.tags:
        for name in ("src", "href"):
            ref = attrs.get(name)
            if ref is not None:
                # only links inside the page: no CDN, no other file
                assert ref.startswith("#"), (tag, name, ref)
        assert tag not in ("link", "iframe", "img"), tag
    # plotly.js is inline, once
    bundle = get_plotlyjs()
    assert text.count(bundle[:200]) == 1
    assert not re.search(r"<script[^>]+src=", text)
    # sane size: the bundle plus well under a megabyte of report
    size = report_path.stat().st_size
    assert len(bundle) < size < len(bundle) + 1_000_000


def test_the_table_shows_the_numbers_of_sweep_table(swept: Sweep, report_path: Path) -> None:
    parsed = _parse(report_path.read_text(encoding="utf-8"))
    expected = expected_rows(swept)
    assert len(expected) == len(swept.table) == 2 * len(VALUES) * len(swept.measures)
    assert set(parsed.rows) == set(expected)
    for key, cells in expected.items():
        assert parsed.rows[key] == cells, key


def test_the_report_says_what_the_seeds_can_tell(swept: Sweep, report_path: Path) -> None:
    text = report_path.read_text(encoding="utf-8")
    n_tests = (len(VALUES) - 1) * len(swept.measures)
    # 3 seeds: smallest p 0.1, so no test can pass 0.05 after Holm (the text table's line)
    assert swept.test["smallest_p_value"] == pytest.approx(0.1)
    assert (
        f"With {SEEDS} seeds the smallest p-value is 0.1: after Holm over {n_tests} tests "
        "none can reach 0.05, so changed = no is no verdict"
    ) in text
    for word in ("floor", "chance", "calibrated", "p_adjusted", "Holm"):
        assert word in _section(text, 'id="tables"', 'id="plots"')


def test_the_changes_data_are_sweep_changes_with_popularity(
    swept: Sweep, ratings, report_path: Path
) -> None:
    parsed = _parse(report_path.read_text(encoding="utf-8"))
    data = json.loads(parsed.scripts["changes-data"])
    assert data["values"] == ["0.1", "1"]
    # popularity: ratings per item, counted here from the matrix itself
    counts = np.asarray((ratings.matrix != 0).sum(axis=0)).ravel()
    for value in (0.1, 1.0):
        rows = data["rows"][f"{value:g}"]
        frame = swept.changes(value)
        assert data["title"] == [str(t) for t in frame["title"]]
        assert data["n_ratings"] == counts.tolist()
        np.testing.assert_allclose(rows["similarity"], frame["similarity"], atol=5e-7)
        np.testing.assert_allclose(rows["floor"], frame["floor"], atol=5e-7)
        assert rows["changed"] == [_flag(c) for c in frame["changed"]]
        assert set(rows["changed"]) == {"no"}  # 3 seeds: no entity can reach 0.05


def test_the_neighbors_shown_are_the_runs_cosine_neighbors(swept: Sweep, report_path: Path) -> None:
    data = report_data(swept)
    k = swept.k
    for item in data.neighbors:
        for side, value, seed in (
            ("reference", swept.reference, item["reference_seed"]),
            ("changed", item["value"], item["value_seed"]),
        ):
            emb = swept.embeddings(value, seed)
            v = emb.vectors.astype(np.float64)
            v /= np.linalg.norm(v, axis=1, keepdims=True)
            row = list(emb.keys).index(tuple(item["key"]))
            sims = v @ v[row]
            sims[row] = -np.inf
            top = np.argsort(-sims, kind="stable")[:k]
            assert [n["title"] for n in item[side]] == [emb.titles[j] for j in top]
            np.testing.assert_allclose([n["score"] for n in item[side]], sims[top], atol=1e-5)
    # the most changed first: per value, ordered by q_value, then similarity - floor
    for value in (0.1, 1.0):
        frame = swept.changes(value)
        frame = frame.assign(below=frame["similarity"] - frame["floor"]).sort_values(
            ["q_value", "below", "similarity"], kind="stable"
        )
        shown = [n["title"] for n in data.neighbors if n["value"] == value]
        assert shown == [str(t) for t in frame["title"][: len(shown)]]
    text = report_path.read_text(encoding="utf-8")
    assert str(data.neighbors[0]["changed"][0]["title"]) in _section(
        text, 'id="neighbors"', 'id="provenance"'
    )


def test_the_provenance_is_complete(swept: Sweep, ratings, report_path: Path) -> None:
    html = report_path.read_text(encoding="utf-8")
    # a ratings table's popularity is counted in ratings (a corpus's in occurrences)
    assert 'data-key="n_ratings" data-type="num" tabindex="0" role="button">ratings' in html
    assert "ratings per entity" in html and "occurrences" not in html
    text = report_path.read_text(encoding="utf-8")
    prov = _section(text, 'id="provenance"', "</body>")
    assert ratings.fingerprint in prov
    for name in swept.estimator.get_params():
        assert f"<th>{name}</th>" in prov, name
    assert "swept: 0, 0.1, 1" in prov and "varied: the seeds" in prov
    for lib in ("numpy", "scipy", "pandas", "scikit-learn", "plotly"):
        import importlib.metadata as md

        assert f"<th>{lib}</th><td>{md.version(lib)}</td>" in prov, lib
    assert f"<th>embspace</th><td>{es.__version__}</td>" in prov
    # one line per run, with its iterations and convergence
    runs = prov[prov.index('<table class="runs">') :]
    runs = runs[: runs.index("</table>")]
    assert runs.count("<tr>") == 1 + len(VALUES) * SEEDS
    assert "<th>iterations</th>" in runs and "<th>last decrease</th>" in runs


def test_a_saved_folder_rebuilds_the_same_report(swept: Sweep, tmp_path: Path) -> None:
    paths = swept.save(tmp_path / "out")
    assert {"changes", "neighbors", "provenance"} <= set(paths)
    direct = render_report(report_data(swept))
    loaded = load_report_data(tmp_path / "out")
    again = render_report(loaded)
    for start, end in (('id="tables"', 'id="plots"'), ('id="changes"', 'id="provenance"')):
        assert _section(again, start, end) == _section(direct, start, end)
    # provenance differs only by its time stamp
    strip = re.compile(r"made \S+")
    assert strip.sub("", _section(again, 'id="provenance"', "<script")) == strip.sub(
        "", _section(direct, 'id="provenance"', "<script")
    )
    assert set(_parse(again).rows) == set(expected_rows(swept))


@pytest.mark.parametrize(
    ("param", "values", "entities"),
    [("factors", [4, 6], "items"), ("solver", ["cholesky", "cg"], "users")],
)
def test_a_saved_folder_keeps_values_keys_and_titles_of_any_type(
    ratings, tmp_path: Path, param: str, values: list[Any], entities: str
) -> None:
    # integer values, string values, integer keys (users): the CSV keeps their types
    sweep = Sweep(
        ratings,
        es.WALS(factors=6, iterations=4, num_threads=2),
        param,
        values,
        seeds=2,
        entities=entities,
        cache_dir=False,
    ).run(progress=False)
    sweep.save(tmp_path)
    loaded = load_report_data(tmp_path)
    frame = sweep.changes(values[1])
    got = loaded.changes[loaded.changes["value"] == values[1]].reset_index(drop=True)
    assert [type(v) for v in got["value"]] == [type(values[1])] * len(frame)
    assert list(got["key"]) == list(frame["key"])
    assert list(got["title"]) == [str(t) for t in frame["title"]]
    np.testing.assert_array_equal(got["n_ratings"], frame["n_ratings"])
    np.testing.assert_allclose(got["similarity"], frame["similarity"], rtol=1e-15)
    direct = render_report(report_data(sweep))
    again = render_report(loaded)
    assert _section(again, 'id="tables"', 'id="provenance"') == _section(
        direct, 'id="tables"', 'id="provenance"'
    )


def test_a_folder_from_before_reports_names_what_is_missing(swept: Sweep, tmp_path: Path) -> None:
    paths = swept.save(tmp_path / "old")
    for kind in ("changes", "neighbors", "provenance"):
        paths[kind].unlink()
    with pytest.raises(MissingFileError, match=r"sweep_unobserved_weight_changes\.csv"):
        load_report_data(tmp_path / "old")
    with pytest.raises(MissingFileError, match="no sweep results"):
        load_report_data(tmp_path)  # the parent: nothing saved at its top
    with pytest.raises(MissingFileError, match="does not exist"):
        load_report_data(tmp_path / "nowhere")


def test_an_unfinished_sweep_has_no_report(ratings, tmp_path: Path) -> None:
    sweep = Sweep(ratings, _wals(), "unobserved_weight", [0.0, 1.0], seeds=2, cache_dir=False)
    with pytest.raises(NotFittedError):
        sweep.report(tmp_path / "r.html")
    assert not (tmp_path / "r.html").exists()


def test_one_seed_reports_no_floor_and_says_so(ratings, tmp_path: Path) -> None:
    with pytest.warns(es.errors.EmbspaceWarning):
        sweep = Sweep(ratings, _wals(), "unobserved_weight", [0.0, 1.0], seeds=1, cache_dir=False)
    sweep.run(progress=False)
    text = sweep.report(tmp_path / "one.html").read_text(encoding="utf-8")
    rows = _parse(text).rows
    assert rows[("1", "neighbors", "reference")]["floor"] == "-"
    assert rows[("1", "neighbors", "reference")]["p_adjusted"] == "-"
    assert "(one seed)" in text and "With one seed there is no floor and no test" in text


# ---------------------------------------------------------------------- the browser
def _browser():
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    chromium = next(
        (p for p in map(shutil.which, ("chromium", "chromium-browser")) if p is not None), None
    )
    driver_path = shutil.which("chromedriver")
    if chromium is None or driver_path is None:
        pytest.skip("headless Chromium needs the Debian packages chromium and chromium-driver")
    options = Options()
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1300,1000",
    ):
        options.add_argument(arg)
    options.binary_location = chromium
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(driver_path), options=options)


def test_chromium_renders_the_report(swept: Sweep, report_path: Path, tmp_path: Path) -> None:
    driver = _browser()
    try:
        from selenium.webdriver.support.ui import WebDriverWait

        driver.get(report_path.as_uri())
        n_plots = driver.execute_script(
            "return document.querySelectorAll('.plotly-graph-div').length"
        )
        assert n_plots == 3
        # every plot drawn: an SVG with its traces (a functional wait, not a timing check)
        WebDriverWait(driver, 120).until(
            lambda d: d.execute_script(
                "return Array.from(document.querySelectorAll('.plotly-graph-div')).every("
                "g => g.querySelector('svg.main-svg') && "
                "g.querySelectorAll('.scatterlayer .trace, .barlayer .trace').length > 0)"
            )
        )
        traces = driver.execute_script(
            "return Array.from(document.querySelectorAll('.plotly-graph-div'))"
            ".map(g => g.querySelectorAll('.scatterlayer .trace, .barlayer .trace').length)"
        )
        assert all(t > 0 for t in traces), traces

        # the table's numbers, read back from the rendered page
        shown = driver.execute_script(
            "return Array.from(document.querySelectorAll('table.sweep tbody tr')).map(tr => ["
            "tr.dataset.value, tr.dataset.measure, tr.dataset.against, "
            "Object.fromEntries(Array.from(tr.cells).map(td => [td.dataset.col, td.innerText]))])"
        )
        expected = expected_rows(swept)
        assert {(v, m, a) for v, m, a, _ in shown} == set(expected)
        for v, m, a, cells in shown:
            assert cells == expected[(v, m, a)], (v, m, a)

        # the per-entity table: rows, search, sort
        frame = swept.changes(0.1)
        n = len(frame)

        def body_rows() -> list[list[str]]:
            return driver.execute_script(
                "return Array.from(document.querySelectorAll('#changes-table tbody tr'))"
                ".map(tr => Array.from(tr.cells).map(td => td.innerText))"
            )

        assert len(body_rows()) == min(n, 300)
        word = str(frame["title"].iloc[0]).split()[-2].lower()
        matching = sum(word in str(t).lower() for t in frame["title"])
        assert 0 < matching < n
        box = driver.find_element("id", "changes-search")
        box.send_keys(word)
        rows = body_rows()
        assert len(rows) == min(matching, 300)
        assert all(word in r[0].lower() for r in rows)
        assert f"of {matching} matching" in driver.find_element("id", "changes-count").text
        box.clear()
        driver.execute_script(
            "document.getElementById('changes-search').dispatchEvent(new Event('input'))"
        )
        # sort by ratings: a first click on a number column puts the largest first,
        # a second reverses it
        header = driver.find_element("css selector", '#changes-table th[data-key="n_ratings"]')
        header.click()
        rows = body_rows()
        assert int(rows[0][1]) == int(frame["n_ratings"].max())
        assert [int(r[1]) for r in rows] == sorted((int(r[1]) for r in rows), reverse=True)
        top = frame.loc[frame["n_ratings"].idxmax()]
        assert rows[0][0] == str(top["title"]) and rows[0][2] == f"{top['similarity']:.3f}"
        header.click()
        rows = body_rows()
        assert int(rows[0][1]) == int(frame["n_ratings"].min())
        assert [int(r[1]) for r in rows] == sorted(int(r[1]) for r in rows)

        # the neighbors: one value's cards at a time
        def visible() -> list[str]:
            return driver.execute_script(
                "return Array.from(document.querySelectorAll('.nb-group'))"
                ".filter(g => getComputedStyle(g).display !== 'none').map(g => g.dataset.value)"
            )

        assert visible() == ["0.1"]
        from selenium.webdriver.support.ui import Select

        Select(driver.find_element("id", "neighbors-value")).select_by_value("1")
        assert visible() == ["1"]
        Select(driver.find_element("id", "neighbors-value")).select_by_value("0.1")

        # nothing from the network, no console error, no button that uploads a chart
        assert (
            driver.execute_script(
                "return document.querySelectorAll('.modebar-btn[data-title^=\"Share\"]').length"
            )
            == 0
        )
        assert (
            driver.execute_script(
                "return performance.getEntriesByType('resource').map(e => e.name)"
            )
            == []
        )
        logs = driver.get_log("browser")
        assert [e for e in logs if e["level"] in ("SEVERE", "ERROR")] == [], logs

        shot = tmp_path / "report.png"
        height = driver.execute_script("return document.body.scrollHeight")
        driver.set_window_size(1300, min(int(height) + 100, 12000))
        assert driver.save_screenshot(str(shot))
        assert shot.stat().st_size > 50_000
        if os.environ.get("EMBSPACE_REPORT_SCREENSHOT"):
            shutil.copy(shot, os.environ["EMBSPACE_REPORT_SCREENSHOT"])
    finally:
        driver.quit()


# ---------------------------------------------------------------------- the command line
def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "embspace", *args],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=600,
    )


def test_cli_sweep_report_and_report_dir(tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = tmp_path / "first.html"
    done = _cli(
        "sweep",
        "-d",
        "synthetic:tiny",
        "--set",
        "factors=6",
        "--set",
        "iterations=5",
        "--param",
        "unobserved_weight",
        "--values",
        "0,0.1,1",
        "--seeds",
        "3",
        "--out",
        str(out),
        "--report",
        str(first),
        "--cache-dir",
        str(tmp_path / "cache"),
        "--json",
        "-q",
    )
    assert done.returncode == 0, done.stderr
    payload = json.loads(done.stdout)
    assert payload["files"]["report"] == str(first)
    text = first.read_text(encoding="utf-8")
    rows = _parse(text).rows
    for record in payload["table"]:
        label = f"{record['value']:g}"
        cells = rows[(label, record["measure"], "reference")]
        assert cells["similarity"].startswith(f"{record['similarity']:.3f} ± ")
        assert cells["p_adjusted"] == _fix(record["p_adjusted"], 3)

    second = tmp_path / "second.html"
    done = _cli("report", str(out), "-o", str(second))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(second)
    again = second.read_text(encoding="utf-8")
    assert _section(again, 'id="tables"', 'id="plots"') == _section(
        text, 'id="tables"', 'id="plots"'
    )
    done = _cli("report", str(out))
    assert done.returncode == 0 and (out / "report.html").is_file()


def test_cli_report_of_a_folder_from_before_is_one_line_exit_2(tmp_path: Path) -> None:
    old = tmp_path / "old"
    old.mkdir()
    (old / "sweep_x.json").write_text(json.dumps({"param": "x", "table": []}))
    (old / "sweep_x_table.csv").write_text("value,measure\n")
    done = _cli("report", str(old), "-o", str(tmp_path / "nowhere" / "r.html"))
    assert done.returncode == 2 and "folder" in done.stderr and "does not exist" in done.stderr
    for folder, fragment in (
        (old, "sweep_x_changes.csv, sweep_x_neighbors.json, sweep_x_provenance.json"),
        (tmp_path / "missing", "does not exist"),
        (tmp_path, "no sweep results"),
    ):
        done = _cli("report", str(folder))
        assert done.returncode == 2, done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("embspace: error: "), done.stderr
        assert fragment in lines[0]
