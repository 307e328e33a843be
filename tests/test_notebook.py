"""docs/lesson.ipynb: in sync with its source docs/lesson.py, executed from a clean kernel
without errors, and its committed outputs the ones the current code produces.

``python tests/test_notebook.py`` (``make notebook``) rebuilds the notebook from the
source with the very execution the test runs, and writes it without volatile
metadata (cell ids are numbered, no timings), so that a rebuild changes the file
only where an output changed.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "docs" / "lesson.py"
NOTEBOOK = ROOT / "docs" / "lesson.ipynb"
CELL_TIMEOUT_S = 300
# Differences below this are float32 rounding between implementations (the Keras /
# torch / NumPy agreement table), not results: two such numbers compare equal.
ROUNDING_NOISE = 1e-5
NUMBER = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?")


def read_source():
    import jupytext

    nb = jupytext.read(SOURCE)
    for i, cell in enumerate(nb.cells):
        cell.id = f"cell-{i:02d}"  # stable ids: a rebuild does not rewrite every cell
    return nb


def execute(nb):
    """Run every cell in a fresh kernel started in docs/ (as Jupyter would). A cell that
    raises stops the run with nbclient's CellExecutionError, which shows the cell."""
    from nbclient import NotebookClient

    NotebookClient(
        nb,
        timeout=CELL_TIMEOUT_S,
        kernel_name="python3",
        resources={"metadata": {"path": str(SOURCE.parent)}},
        record_timing=False,
        # library start-up chatter written to the process's stderr (C level) is not
        # part of the lesson: it stays in the kernel's log, out of the notebook
        extra_arguments=["--IPKernelApp.capture_fd_output=False"],
    ).execute()
    return nb


def build() -> None:
    import nbformat

    from torch_rnnsin.common.atomic import atomic_path

    nb = execute(read_source())
    with atomic_path(NOTEBOOK) as tmp:
        nbformat.write(nb, str(tmp))


def load_committed():
    import nbformat

    return nbformat.read(str(NOTEBOOK), as_version=4)


def shown(cell) -> list[tuple[str, str]]:
    """What a code cell shows, as (kind, text): printed text, results, images."""
    out = []
    for o in cell.get("outputs", []):
        if o.output_type == "stream":
            out.append((f"stream:{o.name}", o.text))
        elif o.output_type in ("execute_result", "display_data"):
            data = o.get("data", {})
            if "image/png" in data:
                out.append(("image/png", ""))
            elif "text/markdown" in data:
                out.append(("text/markdown", data["text/markdown"]))
            else:
                out.append(("text/plain", data.get("text/plain", "")))
        else:
            out.append((o.output_type, o.get("evalue", "")))
    return merged(out)


def merged(outs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Consecutive printed text of one stream as one output: the kernel sends a cell's
    prints in as many messages as its flushes happened to cut them into."""
    out: list[tuple[str, str]] = []
    for kind, text in outs:
        if out and kind.startswith("stream:") and out[-1][0] == kind:
            out[-1] = (kind, out[-1][1] + text)
        else:
            out.append((kind, text))
    return out


def last_digit(token: str) -> float:
    """One unit in the last printed digit of a number token ('0.0771' -> 1e-4)."""
    mantissa, _, exp = token.lower().partition("e")
    decimals = len(mantissa.split(".")[1]) if "." in mantissa else 0
    return 10.0 ** (int(exp or 0) - decimals)


def same_text(a: str, b: str) -> str | None:
    """None if a and b print the same results, else why not. Words must match
    exactly; numbers may differ by one unit in their last printed digit (a rounding
    flip on another CPU), integers not at all."""
    words_a, words_b = NUMBER.split(a), NUMBER.split(b)
    if words_a != words_b:
        return f"text differs:\n--- committed\n{a}\n--- fresh\n{b}"
    for x, y in zip(NUMBER.findall(a), NUMBER.findall(b), strict=True):
        fx, fy = float(x), float(y)
        if x == y or max(abs(fx), abs(fy)) < ROUNDING_NOISE:
            continue
        integer = not any(c in x + y for c in ".eE")
        if integer or abs(fx - fy) > max(last_digit(x), last_digit(y)) * 1.000001:
            return f"committed {x} but the notebook now prints {y}, in:\n{b}"
    return None


@pytest.fixture(scope="module")
def nb_tools():
    """The 'notebook' extra (jupytext, nbformat, nbclient, ipykernel): a failure with
    CI=true, a skip otherwise."""
    from conftest import IN_CI

    try:
        import ipykernel  # noqa: F401
        import jupytext  # noqa: F401
        import nbclient  # noqa: F401
        import nbformat  # noqa: F401
    except ImportError as e:
        if IN_CI:
            pytest.fail(f"CI=true and the notebook tools cannot be imported: {e}")
        pytest.skip(f"notebook tools not installed ({e}); install the 'notebook' extra")


# --- checks on the committed files (cheap) -------------------------------------


def test_notebook_is_in_sync_with_its_source(nb_tools):
    source, committed = read_source(), load_committed()
    assert [c.cell_type for c in committed.cells] == [c.cell_type for c in source.cells], (
        "docs/lesson.ipynb and docs/lesson.py have different cells; run `make notebook`"
    )
    for i, (c, s) in enumerate(zip(committed.cells, source.cells, strict=True)):
        assert c.source.rstrip() == s.source.rstrip(), (
            f"cell {i} of docs/lesson.ipynb differs from docs/lesson.py; run `make notebook`"
        )


def test_committed_notebook_is_executed_cleanly(nb_tools):
    nb = load_committed()
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code, "no code cells"
    counts = [c.execution_count for c in code]
    assert counts == list(range(1, len(code) + 1)), (
        f"not one clean top-to-bottom run (execution counts {counts}); run `make notebook`"
    )
    kinds = [k for c in code for k, _ in shown(c)]
    assert "error" not in kinds
    assert "stream:stderr" not in kinds, "warnings or errors were printed while it ran"
    drawn = sum(c.source.count("plt.show()") + c.source.count("display(Image(") for c in code)
    assert kinds.count("image/png") == drawn, "a plot is missing from the committed notebook"


def test_readme_links_the_notebook_near_the_top():
    first_screen = (ROOT / "README.md").read_text().splitlines()[:30]
    assert any("docs/lesson.ipynb" in line for line in first_screen)


def test_number_comparison_accepts_rounding_and_catches_changes():
    assert same_text("MSE 0.0771 over 1250", "MSE 0.0772 over 1250") is None
    assert same_text("diff 6.0e-08", "diff 1.2e-07") is None  # float32 noise
    assert same_text("MSE 0.0771", "MSE 0.0773") is not None
    assert same_text("over 1250 points", "over 1251 points") is not None
    assert same_text("stateless 0.1", "stateful 0.1") is not None


# --- the notebook, executed now ------------------------------------------------


def test_fresh_execution_reproduces_the_committed_outputs(nb_tools, kr):
    """kr: the Keras cells need TensorFlow (skipped without it, a failure with CI=true)."""
    committed = load_committed()
    fresh = execute(read_source())
    for i, (c, f) in enumerate(zip(committed.cells, fresh.cells, strict=True)):
        if c.cell_type != "code":
            continue
        want = merged([o for o in shown(c) if o[0] != "stream:stderr"])
        got = merged([o for o in shown(f) if o[0] != "stream:stderr"])
        assert [k for k, _ in got] == [k for k, _ in want], (
            f"cell {i} now shows {[k for k, _ in got]}, committed {[k for k, _ in want]}; "
            "run `make notebook`"
        )
        for (_, a), (_, b) in zip(want, got, strict=True):
            why = same_text(a, b)
            assert why is None, f"cell {i}: {why}\nrun `make notebook` if the change is intended"


if __name__ == "__main__":
    if sys.argv[1:]:
        sys.exit(f"usage: {sys.argv[0]}  (rebuilds {NOTEBOOK.relative_to(ROOT)} from its source)")
    build()
    print(f"wrote {NOTEBOOK.relative_to(ROOT)}")
