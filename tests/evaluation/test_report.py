"""The static evaluation report: files, plots, and JSON numbers equal to the results."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pandas as pd
import pytest

from tailored.dataset import Split, temporal_split
from tailored.evaluation import ModelResult, TuningResult, evaluate_model
from tailored.evaluation.report import write_report
from tailored.models import create
from tailored.testing import checkerboard

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MODELS = ("popular", "item_knn")


@pytest.fixture(scope="module")
def evaluation() -> tuple[Split, dict[str, ModelResult], dict[str, str]]:
    data = checkerboard()
    split = temporal_split(data)
    results = {name: evaluate_model(create(name), split) for name in MODELS}
    taste = data.users.set_index("user_id")["taste"].astype(str).to_dict()
    return split, results, taste


def _tuning(model: ModelResult) -> TuningResult:
    trials = pd.DataFrame({"family": ["ease", "ease", "item_knn"], "number": [0, 1, 0],
                           "value": [0.2, math.nan, 0.3],
                           "state": ["COMPLETE", "PRUNED", "COMPLETE"]})
    return TuningResult(best_model=model.model, best_name="item_knn", best_params={},
                        best_score=0.3, metric="ndcg@10", protocol="temporal", trials=trials,
                        second_fold=pd.DataFrame(), validation={}, budget_seconds=None,
                        n_trials=3, seed=0, elapsed=1.0)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory,
           evaluation: tuple[Split, dict[str, ModelResult], dict[str, str]]) -> Path:
    split, results, taste = evaluation
    return write_report(tmp_path_factory.mktemp("report") / "out", [(split, results)],
                        tuning=_tuning(results["item_knn"]), user_groups={"taste": taste},
                        n_resamples=200)


def _figures(report: Path) -> list[dict]:
    return json.loads((report.parent / "report.json").read_text())["figures"]


def test_report_writes_html_json_and_one_valid_png_per_plot(report: Path) -> None:
    page = report.read_text()
    assert report.name == "report.html" and (report.parent / "report.json").exists()
    for name in MODELS:
        assert f"<td>{name}</td>" in page
    figures = _figures(report)
    assert [f["kind"] for f in figures] == [
        "ndcg_ci", "popularity_accuracy", "fairness", "tuning_history"]
    assert page.count("<img ") == len(figures)
    for figure in figures:
        assert f'<img src="{figure["file"]}"' in page
        content = (report.parent / figure["file"]).read_bytes()
        assert content.startswith(PNG_SIGNATURE) and len(content) > 5_000
    assert "<script" not in page and "http" not in page


def test_json_numbers_equal_the_results(
        report: Path, evaluation: tuple[Split, dict[str, ModelResult], dict[str, str]]) -> None:
    split, results, _ = evaluation
    record = json.loads((report.parent / "report.json").read_text())
    [recorded_split] = record["splits"]
    assert recorded_split["name"] == split.name
    assert recorded_split["test_users"] == len(split.test_users)
    for name, result in results.items():
        assert recorded_split["models"][name]["metrics"] == pytest.approx(result.metrics)
    by_kind = {f["kind"]: f["data"] for f in record["figures"]}
    for name, result in results.items():
        interval = by_kind["ndcg_ci"]["models"][name]
        assert interval["mean"] == pytest.approx(result.metrics["ndcg@10"])
        assert interval["low"] <= interval["mean"] <= interval["high"]
        point = by_kind["popularity_accuracy"]["models"][name]
        assert (point["x"], point["y"]) == pytest.approx(
            (result.metrics["popularity@10"], result.metrics["ndcg@10"]))
        groups = by_kind["fairness"]["models"][name]
        assert [g["group"] for g in groups] == ["likes-a", "likes-b"]
        assert sum(g["users"] for g in groups) == len(split.test_users)
        weighted = sum(g["users"] * g["mean"] for g in groups) / len(split.test_users)
        assert weighted == pytest.approx(result.metrics["ndcg@10"])
    history = by_kind["tuning_history"]["families"]
    assert history["ease"] == [{"number": 0, "value": 0.2, "state": "COMPLETE"},
                               {"number": 1, "value": None, "state": "PRUNED"}]
    assert history["item_knn"] == [{"number": 0, "value": 0.3, "state": "COMPLETE"}]


def test_metric_by_k_plot_only_when_results_hold_several_k(
        tmp_path: Path, evaluation: tuple[Split, dict[str, ModelResult], dict[str, str]]) -> None:
    split, results, _ = evaluation
    at_five = {name: evaluate_model(result.model, split, k=5, fit=False)
               for name, result in results.items()}
    merged = {name: dataclasses.replace(result, metrics={**at_five[name].metrics,
                                                         **result.metrics})
              for name, result in results.items()}
    page = write_report(tmp_path, [(split, merged)], n_resamples=50)
    by_k = {f["kind"]: f["data"] for f in _figures(page)}["ndcg_by_k"]["models"]
    for name in MODELS:
        assert by_k[name] == pytest.approx({"5": at_five[name].metrics["ndcg@5"],
                                            "10": results[name].metrics["ndcg@10"]})
    assert (tmp_path / "ndcg-by-k-1.png").read_bytes().startswith(PNG_SIGNATURE)


def test_a_k_the_results_lack_is_a_clear_error(
        tmp_path: Path, evaluation: tuple[Split, dict[str, ModelResult], dict[str, str]]) -> None:
    split, results, _ = evaluation
    with pytest.raises(ValueError, match=r"no per-user 'ndcg@20'.*k=20"):
        write_report(tmp_path, [(split, results)], k=20)
    with pytest.raises(ValueError, match="evaluations is empty"):
        write_report(tmp_path, [])
