"""The ranking stage against the best single model, and the lift from context features.

Part 1, MovieLens 100K (imported with genres and demographics), for each protocol
(``temporal`` and ``leave-last-one-out``, tailored's own split functions; nothing below
sees the test events):

1. Single models: every family at its defaults.
2. One ``tailored.tune`` call on the training part (``--budget`` seconds, default 600)
   over every family: the single families first (screen, then search, with half the
   search time), then the learned ranker (``ranked``, LightGBM LambdaRank) stacked on
   them: its candidate sources are the best tuned configurations of the four best
   families plus item-kNN of the last 5 items, and its own parameters (label period,
   trees, leaves, rows per leaf, negatives) are searched on the same validation fold.
   The tuner re-checks the best three families on the second validation fold; the best
   single model is the best two-fold mean among the single families re-checked, the
   tuned pipeline the ranker's best configuration (two-fold mean when re-checked, else
   first fold), each refitted on the training part. The best single model reported is
   the best test NDCG@10 among the defaults and the tuned single.
3. All are scored by ``tailored.evaluation.evaluate_model`` (NDCG, Recall, HitRate, MAP
   at 10).

Part 2, the sample shop (``tailored.sample.shop``: device, part of the day and weekend
shift each user's cluster preferences): a temporal split (last 10%); each test user is
asked in the context of their first test event (device, hour, weekday, location) and
judged on the items of that session that are new to them ("next session"), and on all
their test items. The
ranker with context features is compared with the same ranker without them (ablation),
on three shop seeds, beside the single models, with the mean lift and a paired standard
error; an oracle that knows the hidden tastes shows what the context is worth. It also
reports how context moves the lists: the share of clothing (fashion) items in the top 10
for the same users asked on a mobile at 21h versus on a desktop at 10h, and of
electronics (tech).

Run: ``.venv/bin/python benchmarks/ranking.py`` (about 30 minutes on 2 cores;
``--only shop`` for part 2 alone, about 4-8 minutes, keeping part 1's figures from the
results file; ``--quick`` for a smoke run). Writes ``benchmarks/results/ranking.json``
and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from movielens import movielens_100k

from tailored.dataset import Dataset, Split, UserQuery, split_by_name
from tailored.evaluation import TuningResult, evaluate_model, tune
from tailored.evaluation.metrics import NDCG, HitRate, Recall
from tailored.evaluation.statistics import paired_test
from tailored.evaluation.tuning import COMPOSITES
from tailored.models import Recommender, create
from tailored.ranking import FeatureConfig, LearnedRanker

RESULTS = Path(__file__).parent / "results"
FAMILIES = ("popular", "item_knn", "user_knn", "als", "bpr", "ease", "segments")
K = 10


def _metrics(result: Any) -> dict[str, float]:
    return {name: round(float(value), 4) for name, value in result.metrics.items()}


def _test(model: Recommender, split: Split) -> dict[str, Any]:
    """Test metrics, seconds, and each test user's NDCG@10 (popped before the report)."""
    started = time.perf_counter()
    result = evaluate_model(model, split, K, beyond_accuracy=False)
    return {**_metrics(result), "seconds": round(time.perf_counter() - started, 1),
            "per_user": result.per_user[f"ndcg@{K}"]}


def _shown(row: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in row.items() if key != "per_user"}


def _best_config(result: TuningResult, family: str) -> dict[str, Any] | None:
    """A family's configuration the tuner judged best: the best mean of both validation
    folds when it was re-checked, else its best first-fold trial (for the composites,
    whose configurations need no early-stopping count)."""
    rechecked = result.second_fold[result.second_fold["family"] == family]
    if len(rechecked):
        row = rechecked.sort_values("mean", ascending=False, kind="stable").iloc[0]
        return {"params": dict(row["params"]), "first_fold": round(row["first_fold"], 4),
                "second_fold": round(row["second_fold"], 4)}
    trials = result.trials
    done = trials[(trials["family"] == family) & (trials["state"] == "COMPLETE")]
    if done.empty or family not in COMPOSITES:
        return None
    row = done.sort_values(["value", "number"], ascending=[False, True]).iloc[0]
    return {"params": dict(row["params"]), "first_fold": round(row["value"], 4),
            "second_fold": None}


def movielens(protocol: str, budget: float, log: Any) -> dict[str, Any]:
    """Defaults, then one ``tailored.tune`` call over every family (the ranker stacked on
    the tuned singles); the best single and the tuned pipeline are refitted on the
    training part and scored on the test part."""
    data = movielens_100k()
    split = split_by_name(data, protocol)
    log(f"ml-100k {protocol}: {len(split.test_users)} test users")
    singles: dict[str, Any] = {}
    for family in FAMILIES:
        singles[f"{family} (defaults)"] = _test(create(family), split)
        log(f"  {family} defaults {_shown(singles[f'{family} (defaults)'])}")
    started = time.perf_counter()
    result = tune(split.train, budget_seconds=budget, protocol=protocol, seed=0)
    tuning_seconds = time.perf_counter() - started
    rechecked = result.second_fold[~result.second_fold["family"].isin(COMPOSITES)]
    single_family = str(rechecked.sort_values("mean", ascending=False, kind="stable")
                        .iloc[0]["family"])
    single = _best_config(result, single_family)
    assert single is not None
    name = f"{single_family} (tuned: best single on validation)"
    singles[name] = {**_test(create(single_family, **single["params"]), split), **single}
    log(f"  {name} {_shown(singles[name])}")
    pipelines: dict[str, Any] = {}
    for family in COMPOSITES:
        chosen = _best_config(result, family)
        if chosen is None:
            continue
        label = f"{family} (tuned pipeline)" if family == "ranked" else f"{family} (tuned)"
        pipelines[label] = {**_test(create(family, **chosen["params"]), split), **chosen}
        log(f"  {label} {_shown(pipelines[label])}")
    if "ranked (tuned pipeline)" not in pipelines:
        raise SystemExit(f"the ranker had no time left to search in {budget:.0f} s; "
                         "give --budget more seconds")
    # The stacking variant for comparison: a logistic regression on the same sources and
    # label period.
    tuned = pipelines["ranked (tuned pipeline)"]["params"]
    stacked = {key: tuned[key] for key in ("sources", "label_split", "label_fraction")}
    pipelines["stacked (same sources)"] = _test(create("stacked", **stacked), split)
    log(f"  stacked {_shown(pipelines['stacked (same sources)'])}")
    best_single = max(singles, key=lambda key: singles[key]["ndcg@10"])
    ranked = pipelines["ranked (tuned pipeline)"]["ndcg@10"]
    best = singles[best_single]["ndcg@10"]
    paired = paired_test(singles[best_single]["per_user"],
                         pipelines["ranked (tuned pipeline)"]["per_user"])
    for row in (*singles.values(), *pipelines.values()):
        row.pop("per_user")
    first_fold = {family: round(float(rows["value"].max()), 4)
                  for family, rows in result.trials.groupby("family", sort=False)}
    return {"protocol": protocol, "test_users": len(split.test_users),
            "singles": singles, "best_single": best_single, "pipelines": pipelines,
            "tuner_pick": result.best_name, "budget_seconds": budget,
            "second_fold": {row.family: [round(row.first_fold, 4), round(row.second_fold, 4)]
                            for row in result.second_fold.itertuples()},
            "tuning_seconds": round(tuning_seconds, 1), "first_fold_best": first_fold,
            "trials": {family: len(rows) for family, rows
                       in result.trials.groupby("family", sort=False)},
            "lift_over_best_single": round(ranked / best - 1, 4),
            "paired_difference": {"mean": round(paired.difference.mean, 4),
                                  "ci95": [round(paired.difference.low, 4),
                                           round(paired.difference.high, 4)],
                                  "t_pvalue": round(paired.t_pvalue, 4),
                                  "wilcoxon_pvalue": round(paired.wilcoxon_pvalue, 4)}}


# ---- the sample shop: context ablation ---------------------------------------------------

SHOP_SOURCES = [{"model": "ease", "n": 60}, {"model": "als", "n": 60},
                {"model": "item_knn", "n": 40},
                {"name": "recent", "model": "item_knn", "recent_items": 5, "n": 30},
                {"model": "popular", "n": 30}, {"model": "trending", "n": 20}]


def _score(recs: pd.DataFrame, truth: pd.DataFrame) -> dict[str, Any]:
    lists = recs.groupby("user_id")["item_id"].agg(list).to_dict()
    relevant = truth.groupby("user_id")["item_id"].agg(set).to_dict()
    metrics = [NDCG(K), Recall(K), HitRate(K)]
    for user in sorted(relevant):
        for metric in metrics:
            metric.update(lists.get(user, []), relevant[user])
    return {**{metric.name: round(metric.value(), 4) for metric in metrics},
            "per_user_ndcg": list(metrics[0].values)}


def _paired(first: list[float], second: list[float]) -> dict[str, float]:
    """Mean per-user difference and its standard error (same users, same order)."""
    difference = np.asarray(first) - np.asarray(second)
    return {"mean": round(float(difference.mean()), 4),
            "standard_error": round(float(difference.std(ddof=1) / np.sqrt(len(difference))),
                                    4)}


CONTEXT_COLUMNS = ["device", "hour", "weekday", "location"]


def _recommend_in_context(model: Recommender, contexts: pd.DataFrame) -> pd.DataFrame:
    """Each user asked in their own context (grouped: one query per distinct context)."""
    parts = [model.recommend(UserQuery(tuple(group["user_id"]), context={
        "device": device, "hour": int(hour), "weekday": int(weekday), "location": location}),
        k=K) for (device, hour, weekday, location), group in contexts.groupby(CONTEXT_COLUMNS)]
    return pd.concat(parts, ignore_index=True)


def _oracle(sample: Any, split: Split, contexts: pd.DataFrame, truth: pd.DataFrame
            ) -> dict[str, Any]:
    """What knowing the session's context is worth to a model that knows the hidden tastes.

    Items are scored by the user's true cluster preference times the item's popularity
    within its cluster, once in the session's context and once averaged over the contexts
    of the user's training sessions (moved to the same week, so drift is equal); seen items
    are left out. The gap between the two is what the context is worth when the tastes
    are known exactly.
    """
    user_row = pd.Series(np.arange(len(sample.users)), index=sample.users["user_id"])
    item_ids = sample.items["item_id"].to_numpy()
    item_row = pd.Series(np.arange(len(item_ids)), index=item_ids)
    train = split.train.events
    seen = train.groupby("user_id")["item_id"].agg(set)
    sessions = train.drop_duplicates("session_id")
    sessions = sessions[sessions["user_id"].isin(set(contexts["user_id"]))]
    by_user = dict(tuple(sessions.groupby("user_id")))
    relevant = truth.groupby("user_id")["item_id"].agg(set)
    metrics = {"in context": NDCG(K), "usual contexts": NDCG(K)}
    for row in contexts.itertuples():
        index = int(user_row[row.user_id])
        asked = sample.taste_in_context([index], row.timestamp, row.device)[0]
        past = by_user[row.user_id]
        week = row.timestamp.normalize() - pd.Timedelta(days=7)
        shift = pd.to_timedelta((past["timestamp"].dt.day_of_week - week.day_of_week) % 7,
                                unit="D") + pd.to_timedelta(past["timestamp"].dt.hour, unit="h")
        usual = sample.taste_in_context(np.full(len(past), index), week + shift,
                                        past["device"].astype(str).to_numpy()).mean(axis=0)
        for taste, metric in ((asked, metrics["in context"]), (usual, metrics["usual contexts"])):
            score = taste[sample.item_cluster] * sample.item_popularity
            score[item_row[list(seen.get(row.user_id, set()))].to_numpy()] = -np.inf
            metric.update(list(item_ids[np.argsort(-score, kind="stable")[:K]]),
                          relevant[row.user_id])
    with_context, without = (list(metric.values) for metric in metrics.values())
    return {"in_context": round(float(np.mean(with_context)), 4),
            "usual_contexts": round(float(np.mean(without)), 4),
            "lift": round(float(np.mean(with_context) / np.mean(without) - 1), 4),
            "difference": _paired(with_context, without)}


def shop_ablation(seed: int, size: dict[str, int], log: Any) -> dict[str, Any]:
    from tailored.sample import shop

    sample = shop(seed=seed, **size)
    data = Dataset.from_frame(sample.events, items=sample.items, users=sample.users)
    split: Split = split_by_name(data, "temporal", test_fraction=0.1)
    held = split.held_out.sort_values("timestamp", kind="stable")
    first = held.drop_duplicates("user_id").set_index("user_id")
    session = held[held["session_id"].isin(first["session_id"])][["user_id", "item_id"]]
    next_session = split.truth.merge(session.drop_duplicates(), on=["user_id", "item_id"])
    users = sorted(next_session["user_id"].unique())
    contexts = pd.DataFrame({"user_id": users,
                             "device": first.loc[users, "device"].astype(str).to_numpy(),
                             "hour": first.loc[users, "timestamp"].dt.hour.to_numpy(),
                             "weekday": first.loc[users, "timestamp"].dt.day_of_week
                             .to_numpy(),
                             "location": first.loc[users, "location"].astype(str).to_numpy(),
                             "timestamp": first.loc[users, "timestamp"].to_numpy()})
    all_truth = split.truth[split.truth["user_id"].isin(users)]
    log(f"shop seed {seed}: {len(users)} test users with a next session")
    oracle = _oracle(sample, split, contexts, next_session)
    log(f"  oracle (hidden tastes) in context {oracle['in_context']}, usual contexts "
        f"{oracle['usual_contexts']} ({oracle['lift']:+.1%})")
    clothing = set(sample.items.loc[sample.items["categories"].map(
        lambda c: "clothing" in c), "item_id"])
    electronics = set(sample.items.loc[sample.items["categories"].map(
        lambda c: "electronics" in c), "item_id"])
    rows: dict[str, Any] = {}
    models: dict[str, tuple[Recommender, bool]] = {
        "als": (create("als"), False), "item_knn": (create("item_knn"), False),
        "ease": (create("ease"), False),
        "ranked, context features": (LearnedRanker(sources=SHOP_SOURCES,
                                                   label_split="global",
                                                   label_fraction=0.1), True),
        "ranked, no context features": (LearnedRanker(
            sources=SHOP_SOURCES, label_split="global", label_fraction=0.1,
            features=FeatureConfig(context=False)), True),
    }
    for name, (model, contextual) in models.items():
        started = time.perf_counter()
        model.fit(split.train)
        recs = (_recommend_in_context(model, contexts) if contextual
                else model.recommend(users, k=K))
        rows[name] = {"next_session": _score(recs, next_session),
                      "all_test_items": _score(recs, all_truth),
                      "seconds": round(time.perf_counter() - started, 1)}
        if contextual:
            shift = {}
            for label, context in (("mobile 21h", {"device": "mobile", "hour": 21}),
                                   ("desktop 10h", {"device": "desktop", "hour": 10})):
                lists = model.recommend(UserQuery(tuple(users), context=context), k=K)
                shift[label] = {"clothing": round(lists["item_id"].isin(clothing).mean(), 4),
                                "electronics": round(
                                    lists["item_id"].isin(electronics).mean(), 4),
                                "lists": lists.groupby("user_id")["item_id"].agg(frozenset)}
            evening, office = shift["mobile 21h"].pop("lists"), shift["desktop 10h"].pop("lists")
            changed = float(np.mean([evening[u] != office[u] for u in evening.index]))
            rows[name]["context_shift"] = {**shift, "users_whose_list_changes": round(
                changed, 4)}
        log(f"  {name} next session {rows[name]['next_session']['ndcg@10']}, all test "
            f"items {rows[name]['all_test_items']['ndcg@10']}")
    with_context = rows["ranked, context features"]["next_session"]["ndcg@10"]
    without = rows["ranked, no context features"]["next_session"]["ndcg@10"]
    paired = _paired(rows["ranked, context features"]["next_session"]["per_user_ndcg"],
                     rows["ranked, no context features"]["next_session"]["per_user_ndcg"])
    difference = (np.asarray(rows["ranked, context features"]["next_session"]["per_user_ndcg"])
                  - np.asarray(rows["ranked, no context features"]["next_session"]
                               ["per_user_ndcg"]))
    for row in rows.values():
        for scores in (row["next_session"], row["all_test_items"]):
            scores.pop("per_user_ndcg")
    best_single = max(("als", "item_knn", "ease"),
                      key=lambda n: rows[n]["next_session"]["ndcg@10"])
    return {"seed": seed, "size": size, "test_users": len(users), "models": rows,
            "context_lift": round(with_context / without - 1, 4),
            "context_difference": paired, "oracle": oracle,
            "per_user_difference": difference,
            "best_single": best_single,
            "lift_over_best_single": round(
                with_context / rows[best_single]["next_session"]["ndcg@10"] - 1, 4)}


def shop_summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The context lift over all seeds: the mean of the seeds' lifts, and the per-user
    paired differences pooled over the seeds (different shops: independent users)."""
    differences = np.concatenate([run.pop("per_user_difference") for run in runs])
    without = np.mean([run["models"]["ranked, no context features"]["next_session"]
                       ["ndcg@10"] for run in runs])
    lifts = [run["context_lift"] for run in runs]
    relative_errors = [run["context_difference"]["standard_error"]
                       / run["models"]["ranked, no context features"]["next_session"]["ndcg@10"]
                       for run in runs]
    error = float(differences.std(ddof=1) / np.sqrt(len(differences)))
    return {"seeds": [run["seed"] for run in runs], "users": len(differences),
            "mean_lift": round(float(np.mean(lifts)), 4),
            "mean_lift_standard_error": round(float(np.sqrt(np.sum(np.square(relative_errors)))
                                                    / len(runs)), 4),
            "pooled_difference": round(float(differences.mean()), 4),
            "pooled_standard_error": round(error, 4),
            "pooled_relative": round(float(differences.mean() / without), 4),
            "oracle_mean_lift": round(float(np.mean([run["oracle"]["lift"] for run in runs])),
                                      4)}


# ---- report ------------------------------------------------------------------------------


def markdown(report: dict[str, Any]) -> str:
    lines = ["# The ranking stage: pipeline vs best single model, and context ablation", "",
             f"Machine: {report['machine']}; command: `{report['command']}`; "
             f"{report['seconds']:.0f} s in all.", "",
             "## MovieLens 100K", ""]
    for run in report["movielens"]:
        lines += [f"### {run['protocol']} ({run['test_users']} test users)", "",
                  "| model | NDCG@10 | Recall@10 | HR@10 | MAP@10 |", "|---|---|---|---|---|"]
        for name, row in {**run["singles"], **run["pipelines"]}.items():
            mark = " **(best single)**" if name == run["best_single"] else ""
            lines.append(f"| {name}{mark} | {row['ndcg@10']:.4f} | {row['recall@10']:.4f} "
                         f"| {row['hit_rate@10']:.4f} | {row['map@10']:.4f} |")
        sources = run["pipelines"]["ranked (tuned pipeline)"]["params"]["sources"]
        paired = run.get("paired_difference")
        lines += ["", f"Tuned pipeline vs best single model ({run['best_single']}): "
                  f"**{run['lift_over_best_single']:+.1%} NDCG@10**" + (
                      f" (paired per-user difference {paired['mean']:+.4f}, 95% interval "
                      f"[{paired['ci95'][0]:+.4f}, {paired['ci95'][1]:+.4f}], paired t-test "
                      f"p = {paired['t_pvalue']:.3f}, Wilcoxon p = "
                      f"{paired['wilcoxon_pvalue']:.3f})" if paired else "")
                  + ". One `tailored.tune` "
                  f"call, {run['budget_seconds']:.0f} s budget ({run['tuning_seconds']:.0f} s "
                  f"taken); trials per family {run['trials']}; best first-fold validation "
                  f"NDCG@10 per family {run['first_fold_best']}; re-checked on the second "
                  f"fold: {run['second_fold']}. The tuner's own pick: "
                  f"`{run['tuner_pick']}`. The "
                  "ranker is stacked on: " + ", ".join(
                      f"{source.get('name', source['model'])} (n={source['n']})"
                      for source in sources) + ".", ""]
    lines += ["## Sample shop: context features by ablation", "",
              f"Command: `{report.get('shop_command', report['command'])}` "
              f"({report.get('shop_seconds', 0):.0f} s). Each test user "
              "is asked in the context of their first test event (device, hour, weekday, "
              "location) and judged on that session's new items (next session) and on all "
              "their test items.", "",
              "| seed | model | next-session NDCG@10 | Recall@10 | all-test NDCG@10 |",
              "|---|---|---|---|---|"]
    for run in report.get("shop", []):
        for name, row in run["models"].items():
            lines.append(f"| {run['seed']} | {name} | {row['next_session']['ndcg@10']:.4f} | "
                         f"{row['next_session']['recall@10']:.4f} | "
                         f"{row['all_test_items']['ndcg@10']:.4f} |")
    lines.append("")
    for run in report.get("shop", []):
        shift = run["models"]["ranked, context features"]["context_shift"]
        lines.append(
            f"- seed {run['seed']}: context features {run['context_lift']:+.1%} next-session "
            f"NDCG@10 over the same ranker without them (paired difference "
            f"{run['context_difference']['mean']:+.4f} ± "
            f"{run['context_difference']['standard_error']:.4f} s.e.); ranker vs best single model "
            f"({run['best_single']}) {run['lift_over_best_single']:+.1%}. Same users asked "
            f"on a mobile at 21h vs a desktop at 10h: clothing "
            f"{shift['mobile 21h']['clothing']:.1%} vs {shift['desktop 10h']['clothing']:.1%}"
            f" of the lists, electronics {shift['mobile 21h']['electronics']:.1%} vs "
            f"{shift['desktop 10h']['electronics']:.1%}; "
            f"{shift['users_whose_list_changes']:.0%} of the users get a different list. "
            f"An oracle that knows the hidden tastes, in the session's context vs averaged "
            f"over the user's usual contexts: {run['oracle']['in_context']:.4f} vs "
            f"{run['oracle']['usual_contexts']:.4f}, {run['oracle']['lift']:+.1%}.")
    summary = report.get("shop_summary")
    if summary:
        lines += ["", f"**Context lift over {len(summary['seeds'])} seeds: "
                  f"{summary['mean_lift']:+.1%} next-session NDCG@10** (mean of the seeds' "
                  f"lifts, standard error {summary['mean_lift_standard_error']:.1%}); pooled "
                  f"over {summary['users']} users the paired difference is "
                  f"{summary['pooled_difference']:+.4f} ± {summary['pooled_standard_error']:.4f} "
                  f"s.e. ({summary['pooled_relative']:+.1%}). The oracle that knows the hidden "
                  f"tastes gains {summary['oracle_mean_lift']:+.1%} from the context on "
                  "average."]
    lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=600,
                        help="seconds of tailored.tune per protocol (singles, then the "
                             "ranker stacked on them)")
    parser.add_argument("--protocols", default="temporal,leave-last-one-out")
    parser.add_argument("--shop-seeds", default="0,1,2")
    parser.add_argument("--only", choices=("all", "movielens", "shop"), default="all",
                        help="run one part; the other part's figures are kept from the "
                             "existing results file")
    parser.add_argument("--quick", action="store_true", help="a small smoke run")
    parser.add_argument("--results-dir", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    started = time.perf_counter()

    def log(message: str) -> None:
        print(f"[{time.perf_counter() - started:6.0f} s] {message}", flush=True)

    budget = 150 if args.quick else args.budget
    size = ({"n_users": 800, "n_items": 200, "n_events": 30_000} if args.quick
            else {"n_users": 3000, "n_items": 600, "n_events": 150_000})
    command = " ".join(["python benchmarks/ranking.py", *(sys.argv[1:] if argv is None
                                                          else argv)])
    previous_path = args.results_dir / "ranking.json"
    previous: dict[str, Any] = (json.loads(previous_path.read_text())
                                if args.only != "all" and previous_path.exists() else {})
    report: dict[str, Any] = {
        "machine": f"{platform.processor() or platform.machine()}, "
                   f"{platform.python_version()}",
        "command": previous.get("command", command) if args.only == "shop" else command,
    }
    if args.only == "shop":
        report["movielens"] = previous.get("movielens", [])
    else:
        report["movielens"] = [movielens(protocol, budget, log)
                               for protocol in args.protocols.split(",") if protocol]
    if args.only == "movielens":
        for key in ("shop", "shop_summary", "shop_command", "shop_seconds"):
            if key in previous:
                report[key] = previous[key]
    else:
        shop_started = time.perf_counter()
        runs = [shop_ablation(int(seed), size, log)
                for seed in args.shop_seeds.split(",") if seed]
        report["shop_summary"] = shop_summary(runs)
        report["shop"] = runs
        report["shop_command"] = command
        report["shop_seconds"] = round(time.perf_counter() - shop_started, 1)
    report["seconds"] = (previous.get("seconds", 0.0) if args.only == "shop"
                         else round(time.perf_counter() - started, 1))
    args.results_dir.mkdir(parents=True, exist_ok=True)
    (args.results_dir / "ranking.json").write_text(
        json.dumps(report, indent=2, default=str) + "\n")
    (args.results_dir / "ranking.md").write_text(markdown(report))
    print(markdown(report))
    return report


if __name__ == "__main__":
    main()
