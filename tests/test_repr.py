"""The notebook view (``KMeans._repr_html_``): content, escaping, tolerance of partial
models, self-containment, and scikit-learn's own diagram of pipelines holding a KMeans."""

from __future__ import annotations

import html
import os
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from anykmeans import KMeans
from anykmeans._repr import MAX_BARS, estimator_html, format_float, format_seconds

REPO_ROOT = Path(__file__).resolve().parents[1]
VOID_TAGS = {"br", "hr", "img", "input", "meta", "link", "col", "wbr"}


# ---------------------------------------------------------------------- a small HTML tree


class Node:
    def __init__(self, tag: str, attrs: dict[str, str | None]) -> None:
        self.tag, self.attrs, self.children = tag, attrs, []

    def text(self) -> str:
        return "".join(child if isinstance(child, str) else child.text() for child in self.children)

    def iter(self):
        yield self
        for child in self.children:
            if isinstance(child, Node):
                yield from child.iter()

    def find_all(self, *, cls: str | None = None, attr: str | None = None) -> list[Node]:
        return [
            node
            for node in self.iter()
            if (cls is None or cls in (node.attrs.get("class") or "").split())
            and (attr is None or attr in node.attrs)
        ]


class TreeBuilder(HTMLParser):
    """Builds a tree and fails on any end tag that does not close the open element, so
    that parsing also checks the view is well formed."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#root", {})
        self.stack = [self.root]

    def handle_starttag(self, tag, attrs):
        node = Node(tag, dict(attrs))
        self.stack[-1].children.append(node)
        if tag not in VOID_TAGS:
            self.stack.append(node)

    def handle_endtag(self, tag):
        assert self.stack[-1].tag == tag, f"</{tag}> closes <{self.stack[-1].tag}>"
        self.stack.pop()

    def handle_data(self, data):
        self.stack[-1].children.append(data)


def parse(markup: str) -> Node:
    builder = TreeBuilder()
    builder.feed(markup)
    builder.close()
    assert builder.stack == [builder.root], "unclosed elements"
    return builder.root


def table_values(tree: Node, marker: str) -> dict[str, str]:
    """The value cell (``td``) of each table row marked ``marker="name"``, by name."""
    return {
        row.attrs[marker]: next(node for node in row.iter() if node.tag == "td").text()
        for row in tree.find_all(attr=marker)
    }


def shown_params(tree: Node) -> dict[str, str]:
    return table_values(tree, "data-param")


def shown_stats(tree: Node) -> dict[str, str]:
    return table_values(tree, "data-stat")


def bars(tree: Node) -> list[Node]:
    return tree.find_all(cls="akm-bar-row")


def bar_counts(tree: Node) -> list[tuple[int, int, int]]:
    """(cluster, data-count, visible count) for each bar, in the order shown."""
    return [
        (
            int(bar.attrs["data-cluster"]),
            int(bar.attrs["data-count"]),
            int(bar.find_all(cls="akm-bar-count")[0].text()),
        )
        for bar in bars(tree)
    ]


def blobs(n: int = 300, k: int = 4, d: int = 3, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=10, size=(k, d))
    return centers[rng.integers(k, size=n)] + rng.normal(size=(n, d))


@pytest.fixture(scope="module")
def fitted() -> KMeans:
    return KMeans(n_clusters=4, n_init=2, random_state=0).fit(blobs())


# ---------------------------------------------------------------------- parameters


def test_unfitted_lists_exactly_the_non_default_parameters():
    tree = parse(estimator_html(KMeans(n_clusters=5, n_init=3)))
    assert shown_params(tree) == {"n_clusters": "5", "n_init": "3"}
    assert tree.find_all(cls="akm-name")[0].text() == "KMeans"
    assert tree.find_all(attr="data-fitted")[0].attrs["data-fitted"] == "false"
    assert not bars(tree) and not shown_stats(tree)
    assert "max_iter" not in tree.text()


def test_all_defaults():
    tree = parse(KMeans()._repr_html_())
    assert shown_params(tree) == {}
    assert "all defaults" in tree.text()


@pytest.mark.parametrize(
    "estimator",
    [
        KMeans(),
        KMeans(n_clusters=5, n_init=3),
        KMeans(n_clusters=8, tol=1e-3, algorithm="elkan"),
        KMeans(copy_x=1),  # 1 is not the default True, for the text repr either
        KMeans(tol=np.float64(1e-4)),  # a NumPy float is not the float default
        KMeans(init=np.zeros((3, 2))),
        KMeans(random_state=np.random.default_rng(0)),
        KMeans(init=lambda X, k, random_state: X[:k]),
    ],
    ids=lambda est: repr(est),
)
def test_view_and_text_repr_agree_on_parameters(estimator):
    in_repr = set(re.findall(r"(\w+)=", repr(estimator)))
    assert set(shown_params(parse(estimator_html(estimator)))) == in_repr


def test_parameter_values_are_summarised():
    def seed_from_corner(X, n_clusters, random_state):
        return X[:n_clusters]

    params = shown_params(parse(estimator_html(KMeans(n_clusters=3, init=np.zeros((3, 2)), random_state=7))))
    assert params == {"n_clusters": "3", "init": "array of shape (3, 2)", "random_state": "7"}
    params = shown_params(parse(estimator_html(KMeans(init=seed_from_corner, random_state=np.random.default_rng(0)))))
    assert params["init"].endswith("seed_from_corner")
    assert params["random_state"] == "<Generator>"
    assert shown_params(parse(estimator_html(KMeans(init="random", tol=0.5))))["init"] == "'random'"
    assert shown_params(parse(estimator_html(KMeans(n_clusters=np.int64(6)))))["n_clusters"] == "6"


def test_everything_is_escaped(fitted):
    payload = "<script>alert(1)</script>"

    def init(X, n_clusters, random_state):
        return X[:n_clusters]

    init.__qualname__ = "<b>init</b>"
    odd_class = type("K<i>means</i>", (KMeans,), {})
    estimator = odd_class(n_clusters=2, init=payload, algorithm=init)
    estimator.cluster_centers_ = np.zeros((2, 2))
    estimator._fit_stats = {"namespace": "<u>np</u>", "device": "<CUDA Device 0>", "kernels": payload}
    raw = estimator_html(estimator)
    for tag in ("<script", "<b>", "<i>", "<u>", "<CUDA"):
        assert tag.lower() not in raw.lower()
    assert "&lt;script&gt;" in raw
    tree = parse(raw)
    assert shown_params(tree)["init"] == repr(payload)
    assert shown_params(tree)["algorithm"] == "<b>init</b>"
    assert tree.find_all(cls="akm-name")[0].text() == "K<i>means</i>"
    stats = shown_stats(tree)
    assert (stats["namespace"], stats["device"], stats["kernels"]) == ("<u>np</u>", "<CUDA Device 0>", payload)


# ---------------------------------------------------------------------- fitted model


def test_fitted_model_shows_its_results(fitted):
    tree = parse(fitted._repr_html_())
    assert tree.find_all(attr="data-fitted")[0].attrs["data-fitted"] == "true"
    stats = shown_stats(tree)
    assert stats["n_clusters"] == "4"
    assert stats["n_iter_"] == str(fitted.n_iter_)
    assert stats["n_features_in_"] == "3"
    assert float(stats["inertia_"]) == pytest.approx(fitted.inertia_, rel=1e-5)
    assert len(stats["inertia_"]) <= 12
    assert stats["runs"] == f"2, kept run {fitted._fit_stats['best_run'] + 1}"
    for key in ("namespace", "device", "kernels"):
        assert stats[key] == fitted._fit_stats[key]
    assert stats["namespace"] == "numpy"
    assert stats["time"] == format_seconds(fitted._fit_stats["seconds"])


def test_one_bar_per_cluster_with_its_count(fitted):
    tree = parse(fitted._repr_html_())
    expected = np.bincount(fitted.labels_, minlength=4).tolist()
    shown = bar_counts(tree)
    assert [cluster for cluster, _, _ in shown] == [0, 1, 2, 3]
    assert [count for _, count, _ in shown] == expected
    assert [visible for _, _, visible in shown] == expected
    # Widths are proportional to the counts, the largest cluster fills its track.
    widths = [
        float(re.search(r"(?<![-\w])width:([\d.]+)%", bar.find_all(cls="akm-bar")[0].attrs["style"]).group(1))
        for bar in bars(tree)
    ]
    assert widths == pytest.approx([100 * c / max(expected) for c in expected], abs=0.051)
    assert "more clusters" not in tree.text()


def test_more_than_max_bars_clusters_show_the_largest():
    X = blobs(n=900, k=12, d=2, seed=1)
    km = KMeans(n_clusters=MAX_BARS + 8, random_state=0).fit(X)
    counts = np.bincount(km.labels_, minlength=MAX_BARS + 8)
    tree = parse(km._repr_html_())
    shown = bar_counts(tree)
    assert len(shown) == MAX_BARS
    assert [count for _, count, _ in shown] == sorted(counts.tolist(), reverse=True)[:MAX_BARS]
    assert all(counts[cluster] == count == visible for cluster, count, visible in shown)
    (more,) = tree.find_all(cls="akm-more")
    assert more.text() == f"… and 8 more clusters, smallest size {counts.min()}"


def test_truncation_boundary_and_ties():
    def view(sizes):
        km = KMeans(n_clusters=len(sizes))
        km.cluster_centers_ = np.zeros((len(sizes), 2))
        km._fit_stats = {"cluster_sizes": sizes}
        return parse(estimator_html(km))

    exactly = view(list(range(1, MAX_BARS + 1)))
    assert len(bars(exactly)) == MAX_BARS and not exactly.find_all(cls="akm-more")
    # Equal sizes: the lower cluster index is kept, so the view does not change between renders.
    tree = view([5] * (MAX_BARS + 5) + [0])
    assert [cluster for cluster, _, _ in bar_counts(tree)] == list(range(MAX_BARS))
    assert tree.find_all(cls="akm-more")[0].text() == "… and 6 more clusters, smallest size 0"


# ---------------------------------------------------------------------- partial models


def test_model_without_fit_stats(fitted):
    km = KMeans(n_clusters=4)
    for name in ("cluster_centers_", "labels_", "inertia_", "n_iter_", "n_features_in_"):
        setattr(km, name, getattr(fitted, name))
    tree = parse(estimator_html(km))
    stats = shown_stats(tree)
    assert stats["n_iter_"] == str(fitted.n_iter_)
    assert not {"namespace", "device", "kernels", "time", "runs"} & set(stats)
    # NumPy labels are counted instead.
    assert [count for _, count, _ in bar_counts(tree)] == np.bincount(fitted.labels_).tolist()


@pytest.mark.parametrize(
    "stats",
    [
        None,
        "not a dict",
        {},
        {"namespace": None, "seconds": "fast", "cluster_sizes": [3, "x"], "best_run": "first"},
        {"seconds": float("nan"), "cluster_sizes": [-1, 2]},
        {"seconds": -1.0, "cluster_sizes": "abc", "best_run": 99},
    ],
)
def test_odd_or_partial_models_render(stats):
    km = KMeans(n_clusters=2)
    km.cluster_centers_ = np.zeros((2, 3))  # fitted by hand: no labels, inertia or stats
    if stats is not None:
        km._fit_stats = stats
    km.inertia_ = np.ones(3)  # not a number: left out
    km.n_iter_ = "many"
    km.inertia_history_ = "not a list"
    tree = parse(estimator_html(km))
    assert shown_stats(tree) == {"n_clusters": "2"}
    assert not bars(tree)


def test_estimator_whose_fitted_check_fails():
    class Broken(KMeans):
        def __sklearn_is_fitted__(self):
            raise RuntimeError("broken")

    tree = parse(estimator_html(Broken()))
    assert tree.find_all(attr="data-fitted")[0].attrs["data-fitted"] == "false"


def test_torch_fit_shows_its_namespace():
    torch = pytest.importorskip("torch")
    X = torch.asarray(blobs(n=120, k=3, d=2, seed=2))
    km = KMeans(n_clusters=3, random_state=0).fit(X)
    tree = parse(km._repr_html_())
    stats = shown_stats(tree)
    assert stats["namespace"] == "torch"
    assert stats["device"] == km._fit_stats["device"] == "cpu"
    labels = km.labels_.cpu().numpy()
    assert [count for _, count, _ in bar_counts(tree)] == np.bincount(labels, minlength=3).tolist()


# ---------------------------------------------------------------------- self-contained


def test_view_is_self_contained_and_scoped(fitted):
    first, second = fitted._repr_html_(), fitted._repr_html_()
    for raw in (first, second):
        lowered = raw.lower()
        for needle in ("<script", "javascript:", "src=", "href=", "url(", "@import", "<link"):
            assert needle not in lowered
    tree = parse(first)
    (view,) = [node for node in tree.children if isinstance(node, Node)]
    root_id = view.attrs["id"]
    assert root_id != parse(second).find_all(attr="id")[0].attrs["id"]
    (style,) = [node for node in view.iter() if node.tag == "style"]
    selectors = re.findall(r"([^{}]+)\{[^{}]*\}", style.text())
    assert selectors
    for group in selectors:
        for selector in group.split(","):
            assert selector.strip().startswith(f"#{root_id}"), selector


def test_formatting_helpers():
    assert format_seconds(0.0032) == "3.2 ms"
    assert format_seconds(0.42) == "0.42 s"
    assert format_seconds(12.54) == "12.5 s"
    assert format_seconds(192.2) == "3 min 12 s"
    assert format_seconds(119.7) == "2 min 0 s"
    assert format_seconds(7500) == "2 h 5 min"
    assert format_float(563.5490606) == "563.549"
    assert format_float(-3.3) == "-3.3"
    assert format_float(0.0) == "0"
    assert float(format_float(1.234567891e12)) == pytest.approx(1.234567891e12, rel=1e-5)
    assert float(format_float(1.234567891e-9)) == pytest.approx(1.234567891e-9, rel=1e-5)


def test_rendering_does_not_import_sklearn():
    code = (
        "import sys, numpy as np\n"
        "import anykmeans\n"
        "before = 'sklearn' in sys.modules\n"
        "km = anykmeans.KMeans(n_clusters=3, random_state=0)\n"
        "km._repr_html_()\n"
        "km.fit(np.random.default_rng(0).normal(size=(60, 2)))\n"
        "assert 'akm-bar-row' in km._repr_html_()\n"
        "print(before, 'sklearn' in sys.modules)\n"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    before, after = done.stdout.split()
    assert before == "False", "importing anykmeans imported scikit-learn"
    assert after == "False", "rendering imported scikit-learn"


# ---------------------------------------------------------------------- scikit-learn


def test_pipeline_diagram_renders_with_our_kmeans():
    pytest.importorskip("sklearn")
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.utils import estimator_html_repr

    pipe = Pipeline([("scale", StandardScaler()), ("kmeans", KMeans(n_clusters=3, random_state=0))])
    for stage in ("unfitted", "fitted"):
        if stage == "fitted":
            pipe.fit(blobs(n=120, k=3, d=2))
        for markup in (estimator_html_repr(pipe), pipe._repr_html_(), pipe._repr_mimebundle_()["text/html"]):
            text = html.unescape(markup)
            assert "KMeans" in text
            # The step's details are our text repr (scikit-learn's fallback for estimators
            # without its private HTML helpers).
            assert "KMeans(n_clusters=3, random_state=0)" in text
            assert ("<span>Fitted</span>" in markup) == (stage == "fitted")
    # scikit-learn's diagram of our estimator on its own, fitted.
    assert "KMeans" in estimator_html_repr(pipe.named_steps["kmeans"])


def test_nested_search_diagram_renders():
    pytest.importorskip("sklearn")
    from sklearn.model_selection import GridSearchCV
    from sklearn.utils import estimator_html_repr

    search = GridSearchCV(KMeans(random_state=0), {"n_clusters": [2, 3]}, cv=2)
    assert "KMeans" in estimator_html_repr(search)
    search.fit(blobs(n=80, k=3, d=2))
    assert "KMeans" in estimator_html_repr(search)
