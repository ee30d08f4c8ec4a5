"""helpers.findings (claims: an assert on digits, a finding elsewhere), the run's summary of them,
and the training budget that keeps digits' recipes and shortens a big dataset's."""

from __future__ import annotations

import io
import json
import sys
import threading

import nbformat
import numpy as np
import pytest

from helpers import findings, run_notebooks, training
from helpers.models import BASELINE_RECIPE
from helpers.paths import npz_dataset_name


def test_claim_raises_on_the_default_dataset(tmp_path, capsys):
    with pytest.raises(AssertionError, match="^the baseline should reach 97 %$"):
        findings.claim(False, "the baseline should reach 97 %", dataset="digits", data=tmp_path, accuracy=0.5)
    assert findings.claim(np.bool_(True), "holds", dataset="digits", data=tmp_path) is True
    assert not (tmp_path / "results").exists() and capsys.readouterr().out == ""


def test_claim_defaults_to_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("WORKBOOK_DATASET", raising=False)
    monkeypatch.setenv("WORKBOOK_DATA_DIR", str(tmp_path))
    with pytest.raises(AssertionError):  # no dataset named: the default, digits
        findings.claim(False, "tuned to digits")
    monkeypatch.setenv("WORKBOOK_DATASET", str(tmp_path / "mine.npz"))
    monkeypatch.setenv(findings.NOTEBOOK_ENV, "04_pruning")
    assert findings.claim(False, "tuned to digits", gzip_ratio=2.0) is False
    path = tmp_path / "results" / npz_dataset_name(tmp_path / "mine.npz") / "findings.json"
    doc = json.loads(path.read_text())
    assert doc["findings"][0]["notebook"] == "04_pruning" and doc["findings"][0]["measured"] == {"gzip_ratio": 2.0}


def test_claim_records_a_finding_on_another_dataset(tmp_path, capsys):
    ok = findings.claim(False, "50 % sparsity should cost at most 1 point", notebook="04_pruning", dataset="mnist",
                        data=tmp_path, accuracy=np.float32(0.25), baseline=0.975, nan=float("nan"), worst=["a", 1])
    assert ok is False
    out = capsys.readouterr().out
    assert out.startswith("finding: 04_pruning: 50 % sparsity should cost at most 1 point (accuracy=0.25, baseline=0.975")
    path = findings.findings_path(tmp_path, "mnist")
    assert path == tmp_path / "results" / "mnist" / "findings.json"
    text = path.read_text()
    assert "NaN" not in text  # strict JSON
    [entry] = json.loads(text)["findings"]
    assert entry["measured"] == {"accuracy": 0.25, "baseline": 0.975, "nan": None, "worst": ["a", 1]}
    # the same claim again replaces its finding; a claim that now holds removes it
    findings.claim(False, "50 % sparsity should cost at most 1 point", notebook="04_pruning", dataset="mnist",
                   data=tmp_path, accuracy=0.3)
    assert [f["measured"] for f in findings.load(tmp_path, "mnist")] == [{"accuracy": 0.3}]
    assert findings.claim(True, "50 % sparsity should cost at most 1 point", notebook="04_pruning",
                          dataset="mnist", data=tmp_path) is True
    assert findings.load(tmp_path, "mnist") == []


def test_for_notebook_and_clear(tmp_path):
    claim = findings.for_notebook("03_qat", "npz-mine-12345678", tmp_path)
    assert claim(False, "a", x=1) is None  # a statement, like assert: nothing shows under a cell
    with pytest.raises(AssertionError, match="tuned"):
        findings.for_notebook("03_qat", "digits", tmp_path)(False, "tuned")
    findings.claim(False, "b", notebook="05_clustering", dataset="npz-mine-12345678", data=tmp_path)
    assert [f["notebook"] for f in findings.load(tmp_path, "npz-mine-12345678")] == ["03_qat", "05_clustering"]
    findings.clear(tmp_path, "npz-mine-12345678", "03_qat")
    assert [f["message"] for f in findings.load(tmp_path, "npz-mine-12345678")] == ["b"]
    findings.clear(tmp_path, "npz-mine-12345678")
    assert findings.load(tmp_path, "npz-mine-12345678") == []


def test_concurrent_claims_all_land(tmp_path):
    def record(i: int) -> None:
        findings.claim(False, f"claim {i}", notebook=f"nb{i % 3}", dataset="cifar10", data=tmp_path, i=i)

    threads = [threading.Thread(target=record, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(f["measured"]["i"] for f in findings.load(tmp_path, "cifar10")) == list(range(12))


def test_a_damaged_findings_file_is_one_clear_error(tmp_path):
    path = findings.findings_path(tmp_path, "mnist")
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    with pytest.raises(ValueError, match="not a findings file"):
        findings.load(tmp_path, "mnist")


def test_report_findings_lists_them_and_says_where(tmp_path):
    out = io.StringIO()
    assert run_notebooks.report_findings(tmp_path, "mnist", out) == []
    assert "no findings on mnist" in out.getvalue()
    findings.claim(False, "int8 within 0.5 pp", notebook="02_ptq", dataset="mnist", data=tmp_path, delta_pp=-1.25)
    out = io.StringIO()
    lines = run_notebooks.report_findings(tmp_path, "mnist", out)
    assert lines == ["02_ptq: int8 within 0.5 pp (delta_pp=-1.25)"]
    text = out.getvalue()
    assert "1 finding(s) on mnist" in text and f"{tmp_path.name}/results/mnist/findings.json" in text
    assert "  - 02_ptq: int8 within 0.5 pp (delta_pp=-1.25)" in text
    out = io.StringIO()
    assert run_notebooks.report_findings(tmp_path, "digits", out) == [] and out.getvalue() == ""


def test_make_run_prints_the_findings_at_the_end(tmp_path, monkeypatch, capsys):
    """A real headless run of a one-cell notebook whose claim does not hold on another dataset."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(
        "import os\n"
        "from helpers import findings\n"
        "print(os.environ.get('WORKBOOK_CONSOLE_PROGRESS'))\n"
        "findings.claim(False, 'a target tuned to digits', measured_value=0.5)\n"
        "print('went on')")]
    path = tmp_path / "99_probe.ipynb"
    nbformat.write(nb, path)
    data = tmp_path / "data"
    monkeypatch.setenv("WORKBOOK_DATA_DIR", str(data))
    monkeypatch.setenv("WORKBOOK_DATASET", "mnist")
    monkeypatch.delenv("WORKBOOK_CONSOLE_PROGRESS", raising=False)
    assert run_notebooks.main([str(path), "--timeout", "120"]) == 0
    out = capsys.readouterr().out
    assert "1 finding(s) on mnist" in out and "99_probe: a target tuned to digits (measured_value=0.5)" in out
    assert "data/results/mnist/findings.json" in out
    ran = nbformat.read(data / "runs" / path.name, as_version=4)
    printed = "".join(o.get("text", "") for o in ran.cells[0].outputs)
    assert printed.startswith("1\n") and "finding: 99_probe: a target tuned to digits" in printed and "went on" in printed


def test_inplace_refuses_another_dataset(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("WORKBOOK_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("WORKBOOK_DATASET", "fashion_mnist")
    assert run_notebooks.main(["--inplace", str(tmp_path / "x.ipynb")]) == 2
    assert "default dataset" in capsys.readouterr().err


# the recipes the notebooks train with: (epochs, batch size)
RECIPES = [(BASELINE_RECIPE["epochs"], BASELINE_RECIPE["batch_size"]), (30, 64), (3, 32), (3, 64), (2, 64), (5, 32), (5, 64)]


@pytest.mark.parametrize("epochs,batch", RECIPES)
def test_budget_keeps_digits_recipes_and_shortens_a_big_dataset(digits, epochs, batch):
    assert len(digits.y_train) == training.REFERENCE_TRAIN_IMAGES
    assert training.scaled_epochs(epochs, batch, len(digits.y_train)) == epochs
    assert training.scaled_epochs(epochs, batch, 54_000) == 1  # MNIST-sized: one epoch
    assert training.scaled_epochs(epochs, batch, 100) == epochs  # smaller data: never more epochs
    counts = [training.scaled_epochs(epochs, batch, n) for n in (1077, 2000, 5000, 20_000, 54_000, 10**6)]
    assert counts == sorted(counts, reverse=True) and min(counts) >= 1


@pytest.mark.parametrize("epochs,batch", RECIPES)
def test_budget_keeps_the_optimizer_steps_on_any_larger_dataset(epochs, batch):
    reference = epochs * -(-training.REFERENCE_TRAIN_IMAGES // batch)
    for n in (1077, 1500, 2000, 3333, 5000, 9000, 20_000, 54_000, 60_000, 10**6):
        recipe = training.budget({"epochs": epochs, "batch_size": batch}, n)
        total = recipe["epochs"] * training.steps_per_epoch(recipe, n)
        assert 0.66 * reference <= total <= 1.34 * reference, (n, recipe, total, reference)
        assert recipe["epochs"] <= epochs
        if "steps_per_epoch" in recipe:  # cut short only when one pass is longer than the budget
            assert recipe["epochs"] == 1 and recipe["steps_per_epoch"] == reference < -(-n // batch)


def test_fit_stops_after_the_budgets_steps():
    from helpers.keras_setup import keras

    k = keras()
    recipe = training.budget({"epochs": 2, "batch_size": 10}, 500, reference_images=30)
    assert recipe == {"epochs": 1, "batch_size": 10, "steps_per_epoch": 6}
    model = k.Sequential([k.layers.Input((4,)), k.layers.Dense(3)])
    model.compile(optimizer=k.optimizers.SGD(0.01), loss=k.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(500, 4)).astype("float32"), rng.integers(0, 3, 500)
    history = training.fit(model, x, y, **recipe, every=1)
    assert len(history) == 1 and int(model.optimizer.iterations.numpy()) == 6
    start = model.get_weights()
    trained = []
    for steps in (None, 4):  # 4 = one full pass of 40 images: the same batches, so the same weights
        model.set_weights(start)
        model.optimizer.iterations.assign(0)
        training.fit(model, x[:40], y[:40], epochs=3, batch_size=10, seed=1, steps_per_epoch=steps)
        assert int(model.optimizer.iterations.numpy()) == 12
        trained.append(model.get_weights())
    assert all(np.array_equal(a, b) for a, b in zip(*trained))
    assert not np.array_equal(trained[0][0], start[0])


def test_budget_copies_the_recipe(digits):
    assert training.budget(BASELINE_RECIPE, len(digits.y_train)) == BASELINE_RECIPE
    big = training.budget(BASELINE_RECIPE, 54_000)  # one pass (1,688 steps) is more than 30 x 34 steps
    assert big == {**BASELINE_RECIPE, "epochs": 1, "steps_per_epoch": 1020} and BASELINE_RECIPE["epochs"] == 30
    assert training.steps_per_epoch(big, 54_000) == 1020 and training.steps_per_epoch(BASELINE_RECIPE, 1077) == 34
    scratch = training.budget(BASELINE_RECIPE, 54_000, full_pass=True)  # never less than one full pass
    assert scratch == {**BASELINE_RECIPE, "epochs": 1} and training.steps_per_epoch(scratch, 54_000) == 1688
    assert training.budget(BASELINE_RECIPE, len(digits.y_train), full_pass=True) == BASELINE_RECIPE
    assert training.budget({"epochs": 30, "batch_size": 32}, 5000)["epochs"] == 6  # 30 x 34 steps / 157 per epoch = 6.5
    with pytest.raises(ValueError, match="lacks batch_size"):
        training.budget({"epochs": 3}, 100)
    with pytest.raises(ValueError, match=">= 1"):
        training.scaled_epochs(0, 32, 100)
    with pytest.raises(ValueError, match=">= 1"):
        training.scaled_epochs(3, 32, 0)


def test_epoch_line_show_false_prints_to_the_console_only(monkeypatch, capsys):
    console = io.StringIO()
    monkeypatch.setattr(sys, "__stdout__", console)
    monkeypatch.setenv(training.CONSOLE_PROGRESS_ENV, "1")
    line = training.EpochLine(epochs=3, every=3, show=False, label="student ")
    line.on_train_begin()
    for epoch in range(3):
        line.on_epoch_end(epoch, {"loss": 1.0})
    assert capsys.readouterr().out == ""
    assert console.getvalue().count("student epoch") == 3  # every epoch on the console, whatever `every` is


def test_console_lines_skip_the_notebook_in_a_kernel(monkeypatch):
    """In ipykernel, fd 1 is a pipe copied into the notebook; the console is the saved copy of fd 1."""
    import os

    read_end, write_end = os.pipe()

    class KernelStdout(io.StringIO):
        _original_stdstream_copy = write_end

    notebook = KernelStdout()
    monkeypatch.setattr(sys, "stdout", notebook)
    monkeypatch.setenv(training.CONSOLE_PROGRESS_ENV, "1")
    line = training.EpochLine(epochs=1, show=False)
    line.on_train_begin()
    line.on_epoch_end(0, {"loss": 0.5})
    os.close(write_end)
    with os.fdopen(read_end) as console:
        assert "epoch   1/1  loss 0.5000" in console.read()
    assert notebook.getvalue() == ""


@pytest.mark.parametrize("name,expected", [("no_such_dataset", "Unknown dataset"), ("{tmp}/missing.npz", "No dataset file"),
                                           ("{tmp}/bad.npz", "not a readable .npz")])
def test_run_refuses_a_bad_dataset_before_starting(tmp_path, monkeypatch, capsys, name, expected):
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    monkeypatch.setenv("WORKBOOK_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("WORKBOOK_DATASET", name.format(tmp=tmp_path))
    assert run_notebooks.main([str(tmp_path / "x.ipynb")]) == 2
    err = capsys.readouterr().err
    assert expected in err and err.count("\n") == 1 and "Traceback" not in err
