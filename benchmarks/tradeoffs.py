"""Relevance against discovery and revenue: NDCG@10 vs intra-list diversity and catalog
coverage as the MMR diversity, the category cap, the novelty knob and the exploration
share vary; and NDCG@10 vs revenue@10 as the revenue knob varies (the frontier).

Data: MovieLens 100K, tailored's temporal split (the last 20% of ratings in time are
the test period), tailored's metrics. Base model: EASE (default parameters), whose
top 100 per test user are the candidates every re-ranker chooses 10 from.

- MMR with genre similarity (``CategorySimilarity``) and with the model's
  co-occurrence similarity (``ModelSimilarity(measure="cooccurrence")``);
- the category cap (``max_per_category``) and the novelty knob;
- exploration, simulated online: test users are served in the order of their first
  test-period rating, in rounds of 25. Each gets 10 slots from :func:`explore` over
  the EASE candidates plus the catalog's new items (movies first rated in the test
  period, available from their first rating on, unknown to EASE). A shown item counts
  as clicked when the user rates it in the test period; after each round the bandit
  learns from every shown slot of the round (``learn_shown``). NDCG@10 uses the
  split's ground truth (train items only, as for every model); ``hits per 1,000
  slots`` counts clicks on any test item, new ones included.

Intra-list diversity is the mean pairwise genre Jaccard distance (the evaluation's
default), coverage the share of the training catalog shown to anyone, novelty the
mean self-information. Timings are per request (one user, 200 candidates).

The revenue frontier runs on the sample shop (``tailored.sample.shop.shop``, which has
item prices; MovieLens has none): 3,000 users, 800 items, 150,000 events, the same
temporal split, and a ``Pipeline`` of EASE with one re-ranker over its best 100, its
``revenue`` knob swept 0..1 per request (``Overrides(revenue=...)``), alone and with MMR
diversity 0.3 on top. ``revenue@10`` is tailored's metric (summed catalog price of the
held-out items hit in the top 10, averaged over test users); ``bought revenue@10`` the
same over the held-out purchases only.

Run: ``.venv/bin/python benchmarks/tradeoffs.py``; writes
``benchmarks/results/tradeoffs.{md,json,png}``. ``--only-frontier`` runs the shop
frontier alone (seconds) and merges it into the results the last full run wrote.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from movielens import movielens_100k

RESULTS = Path(__file__).parent / "results"
K = 10
CANDIDATES = 100
ROUND = 25
SHOP = {"n_users": 3000, "n_items": 800, "n_events": 150_000}
REVENUE_KNOB = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
FRONTIER_MMR = 0.3


class Scorer:
    """Accuracy and beyond-accuracy figures of a set of lists, with tailored's metrics."""

    def __init__(self, split: Any) -> None:
        from tailored.evaluation.beyond import ItemPopularity, JaccardDistance

        self.split = split
        self.truth = split.truth.groupby("user_id")["item_id"].agg(set).to_dict()
        self.distance = JaccardDistance.from_items(split.train.items)
        self.popularity = ItemPopularity.from_dataset(split.train)
        self.n_items = split.train.n_items

    def __call__(self, recs: pd.DataFrame) -> dict[str, float]:
        from tailored.evaluation.beyond import IntraListDiversity, Novelty
        from tailored.evaluation.metrics import NDCG, Coverage

        lists = recs.sort_values(["user_id", "rank"]).groupby("user_id")["item_id"].agg(list)
        ndcg, diversity = NDCG(K), IntraListDiversity(self.distance, K)
        novelty, coverage = Novelty(self.popularity, K), Coverage(self.n_items)
        known = set(self.split.train.item_vocab.ids)
        for user in self.split.test_users:
            items = [str(i) for i in lists.get(user, [])]
            ndcg.update(items, self.truth[user])
            diversity.update(items)
            novelty.update(items)
            coverage.update([i for i in items if i in known])
        return {"ndcg@10": ndcg.value(), "diversity@10": diversity.value(),
                "coverage": coverage.value(), "novelty@10": novelty.value()}


def rerank_sweeps(model: Any, split: Any, candidates: pd.DataFrame,
                  score: Scorer) -> dict[str, list[dict[str, Any]]]:
    from tailored.ranking import (
        CategorySimilarity,
        ModelSimilarity,
        categories_of,
        diversify,
        item_popularity,
    )

    categories = categories_of(split.train.items)
    genres = CategorySimilarity(categories)
    cooccurrence = ModelSimilarity(model, measure="cooccurrence")
    popularity = item_popularity(model)
    sweeps: dict[str, list[dict[str, Any]]] = {}

    def run(name: str, value: float, **kwargs: Any) -> None:
        started = time.perf_counter()
        recs = diversify(candidates, K, **kwargs)
        seconds = time.perf_counter() - started
        sweeps.setdefault(name, []).append({"value": value, **score(recs),
                                            "seconds": seconds})
        print(f"  {name:24s} {value:5.2f}  " + "  ".join(
            f"{key} {figure:.4f}" for key, figure in sweeps[name][-1].items()
            if key not in ("value", "seconds")), flush=True)

    for value in (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.7, 0.9):
        run("mmr_genres", value, diversity=value, similarity=genres)
    for value in (0.0, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9):
        run("mmr_cooccurrence", value, diversity=value, similarity=cooccurrence)
    for value in (0.0, 0.1, 0.2, 0.3, 0.5, 0.7):
        run("novelty", value, novelty=value, popularity=popularity)
    for cap in (4, 3, 2, 1):
        run("max_per_category", cap, categories=categories, max_per_category=cap)
    return sweeps


def exploration_sweep(model: Any, data: Any, split: Any, candidates: pd.DataFrame,
                      score: Scorer, shares: tuple[float, ...], seed: int
                      ) -> list[dict[str, Any]]:
    from tailored.ranking import LinUCB, explore

    held = split.held_out
    test_users = split.test_users
    first_time = held.groupby("user_id")["timestamp"].min()
    order = sorted(test_users, key=lambda user: (first_time[user], user))
    watched = held.groupby("user_id")["item_id"].agg(set).to_dict()
    known = set(split.train.item_vocab.ids)
    new_items = held[~held["item_id"].isin(known)].groupby("item_id")["timestamp"].min()
    by_user = {user: group for user, group in candidates.groupby("user_id", sort=False)}
    results = []
    for share in shares:
        bandit = LinUCB(alpha=1.0)
        rng = np.random.default_rng(seed)
        shown_parts = []
        for start in range(0, len(order), ROUND):
            round_parts = []
            for user in order[start:start + ROUND]:
                now = first_time[user]
                available = new_items[new_items <= now].index.tolist()
                shown = explore(by_user[user], bandit, K, share=share, new_items=available,
                                rng=rng)
                shown["clicked"] = shown["item_id"].isin(watched.get(user, set()))
                round_parts.append(shown)
            shown_round = pd.concat(round_parts, ignore_index=True)
            bandit.learn_shown(shown_round)  # the round's clicks arrive, then it learns
            shown_parts.append(shown_round)
        shown_all = pd.concat(shown_parts, ignore_index=True)
        new = shown_all["base_rank"] == 0
        row = {"value": share, **score(shown_all),
               "explored_share": float(shown_all["explored"].mean()),
               "hits_per_1000_slots": 1000 * float(shown_all["clicked"].mean()),
               "new_item_slots": int(new.sum()),
               "new_item_hits": int((new & shown_all["clicked"]).sum()),
               "new_items_shown": int(shown_all.loc[new, "item_id"].nunique()),
               "mean_propensity": float(shown_all["propensity"].mean())}
        results.append(row)
        print(f"  exploration share {share:4.2f}  " + "  ".join(
            f"{key} {figure:.4f}" if isinstance(figure, float) else f"{key} {figure}"
            for key, figure in row.items() if key != "value"), flush=True)
    return results


def shop_frontier(seed: int) -> dict[str, Any]:
    """NDCG@10, revenue@10 and diversity@10 on the sample shop as the revenue knob goes
    0..1, through the pipeline's own re-ranker (prices read from its catalog)."""
    from tailored.dataset import Dataset, temporal_split
    from tailored.evaluation import NDCG, Revenue, mean_price
    from tailored.evaluation.beyond import IntraListDiversity
    from tailored.evaluation.metrics import Coverage
    from tailored.models import EASE
    from tailored.pipeline import Overrides, Pipeline
    from tailored.sample.shop import shop

    started = time.perf_counter()
    sample = shop(**SHOP, seed=seed)
    data = Dataset.from_frame(sample.events, items=sample.items)
    split = temporal_split(data, test_fraction=0.2)
    pipeline = Pipeline(EASE(), name="ease-revenue", pool=CANDIDATES).fit(split.train)
    truth = split.truth.groupby("user_id")["item_id"].agg(set).to_dict()
    held = split.held_out
    bought = held[held["event_type"] == "purchase"].groupby("user_id")["item_id"].agg(
        set).to_dict()
    prices = Revenue.for_data(K, split.train).prices
    unit = mean_price(prices)
    sweeps: dict[str, list[dict[str, Any]]] = {}
    for name, diversity in (("revenue", 0.0), (f"revenue_with_mmr_{FRONTIER_MMR:g}",
                                                FRONTIER_MMR)):
        for knob in REVENUE_KNOB:
            ran = time.perf_counter()
            recs = pipeline.run(split.test_users, K,
                                Overrides(revenue=knob, diversity=diversity or None))
            seconds = time.perf_counter() - ran
            lists = recs.groupby("user_id", sort=False)["item_id"].agg(list)
            ndcg, revenue = NDCG(K), Revenue(prices, K)
            bought_revenue = Revenue(prices, K)
            diversity_metric = IntraListDiversity.for_data(K, split.train)
            coverage = Coverage(split.train.n_items)
            for user in split.test_users:
                items = [str(item) for item in lists.get(user, [])]
                ndcg.update(items, truth[user])
                revenue.update(items, truth[user])
                bought_revenue.update(items, bought.get(user, set()))
                diversity_metric.update(items)
                coverage.update(items)
            row = {"value": knob, "ndcg@10": ndcg.value(), "revenue@10": revenue.value(),
                   "revenue_in_mean_prices@10": revenue.value() / unit,
                   "bought_revenue@10": bought_revenue.value(),
                   "diversity@10": diversity_metric.value(),
                   "mean_price_shown": float(recs["item_id"].map(prices).fillna(0.0).mean()),
                   "coverage": coverage.value(), "seconds": seconds}
            sweeps.setdefault(name, []).append(row)
            print(f"  {name:20s} {knob:4.2f}  " + "  ".join(
                f"{key} {figure:.4f}" for key, figure in row.items()
                if key not in ("value", "seconds")), flush=True)
    return {"dataset": "sample shop", "shop": {**SHOP, "seed": seed},
            "split": "temporal 0.2", "model": "ease", "pool": CANDIDATES, "k": K,
            "test_users": len(split.test_users), "buyers": len(bought),
            "mean_price": unit, "sweeps": sweeps,
            "seconds": time.perf_counter() - started}


def latencies(model: Any, split: Any) -> dict[str, dict[str, float]]:
    """Milliseconds per request (one user, 200 candidates): median wall time, and mean
    CPU time of this process (what the wall time is on a machine that is not shared)."""
    from tailored.dataset import UserQuery
    from tailored.ranking import (
        CategorySimilarity,
        LinUCB,
        ModelSimilarity,
        categories_of,
        diversify,
        explain_recommendations,
        explore,
        item_popularity,
    )

    user = split.test_users[0]
    events = split.train.events
    query = UserQuery((user,), events[events["user_id"] == user])
    candidates = model.recommend(query, k=200)
    categories = categories_of(split.train.items)
    genres = CategorySimilarity(categories)
    cooccurrence = ModelSimilarity(model, measure="cooccurrence")
    popularity = item_popularity(model)
    bandit = LinUCB()
    rng = np.random.default_rng(0)
    for item in candidates["item_id"].sample(150, random_state=0):
        bandit.learn_one(item, rng.random(4), float(rng.random() < 0.1))
    top = candidates.head(K)
    calls = {
        "mmr_genres": lambda: diversify(candidates, K, diversity=0.3, similarity=genres),
        "mmr_cooccurrence": lambda: diversify(candidates, K, diversity=0.3,
                                              similarity=cooccurrence),
        "mmr_cap_novelty": lambda: diversify(
            candidates, K, diversity=0.3, similarity=genres, categories=categories,
            max_per_category=3, novelty=0.2, popularity=popularity),
        "explore_share_0.1": lambda: explore(candidates, bandit, K, share=0.1, rng=rng),
        "explain_top10": lambda: explain_recommendations(model, query, top),
    }
    figures = {}
    for name, call in calls.items():
        call()
        wall, cpu = [], []
        for _ in range(100):
            started, started_cpu = time.perf_counter(), time.process_time()
            call()
            wall.append(time.perf_counter() - started)
            cpu.append(time.process_time() - started_cpu)
        figures[name] = {"wall_ms": 1000 * float(np.median(wall)),
                         "cpu_ms": 1000 * float(np.mean(cpu))}
    return figures


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = {"mmr_genres": "MMR, genre similarity", "mmr_cooccurrence":
              "MMR, co-occurrence similarity", "novelty": "novelty knob",
              "max_per_category": "cap per genre", "exploration": "exploration share (LinUCB)"}
    frontier = results.get("shop_frontier")
    figure, axes = plt.subplots(1, 3 if frontier else 2, figsize=(19 if frontier else 13, 5.2))
    for axis, x in zip(axes, ("diversity@10", "coverage"), strict=False):
        for name, label in labels.items():
            points = results["sweeps"][name]
            xs = [p[x] for p in points]
            ys = [p["ndcg@10"] for p in points]
            axis.plot(xs, ys, marker="o", label=label)
            for point, px, py in zip(points, xs, ys, strict=True):
                axis.annotate(f"{point['value']:g}", (px, py), textcoords="offset points",
                              xytext=(3, 3), fontsize=7)
        axis.set_xlabel("intra-list diversity@10 (genre Jaccard distance)"
                        if x == "diversity@10" else "catalog coverage")
        axis.set_ylabel("NDCG@10")
        axis.set_title("MovieLens 100K: EASE top 100 re-ranked to 10", fontsize=10)
        axis.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    if frontier:
        axis = axes[2]
        for name, points in frontier["sweeps"].items():
            xs = [p["revenue@10"] for p in points]
            ys = [p["ndcg@10"] for p in points]
            axis.plot(xs, ys, marker="o", label=name.replace("_", " "))
            for point, px, py in zip(points, xs, ys, strict=True):
                axis.annotate(f"{point['value']:g}", (px, py), textcoords="offset points",
                              xytext=(3, 3), fontsize=7)
        axis.set_xlabel("revenue@10 (catalog price of held-out items hit, per user)")
        axis.set_ylabel("NDCG@10")
        axis.set_title("sample shop: the revenue knob's frontier", fontsize=10)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    figure.suptitle("Temporal splits; labels: knob value")
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def markdown(results: dict[str, Any]) -> str:
    lines = ["# Relevance vs discovery and revenue (benchmarks/tradeoffs.py)", "",
             f"MovieLens 100K, temporal split ({results['test_users']} test users), EASE "
             f"candidates (top {CANDIDATES}) re-ranked to {K}. Base NDCG@10 "
             f"{results['sweeps']['mmr_genres'][0]['ndcg@10']:.4f}.", "",
             "Diversity is the mean pairwise genre Jaccard distance, coverage the share of "
             "the training catalog shown to anyone, novelty the mean self-information "
             "(tailored.evaluation). Exploration is simulated online: test users are served "
             "in the order of their first test-period rating, in rounds of "
             f"{ROUND}; each gets {K} slots from `explore` (LinUCB, alpha 1) over the EASE "
             "candidates plus the new movies (first rated in the test period, available "
             "from that moment, unknown to EASE); a shown movie the user rates in the test "
             "period counts as a click, and the bandit learns from every slot of a round "
             "before the next. NDCG@10 uses the split's ground truth (train items only); "
             "`hits_per_1000_slots` counts clicks on any test item, new ones included.", ""]
    columns = ["value", "ndcg@10", "diversity@10", "coverage", "novelty@10"]
    for name, points in results["sweeps"].items():
        extra = ([c for c in points[0] if c not in columns and c != "seconds"]
                 if name == "exploration" else [])
        lines += [f"## {name}", "", "| " + " | ".join(columns + extra) + " |",
                  "|" + "---|" * len(columns + extra)]
        for point in points:
            cells = [f"{point[c]:.4f}" if isinstance(point[c], float) else str(point[c])
                     for c in columns + extra]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    frontier = results.get("shop_frontier")
    if frontier:
        shop_size = frontier["shop"]
        base = frontier["sweeps"]["revenue"][0]
        lines += ["## Relevance vs revenue: the sample shop", "",
                  f"`tailored.sample.shop.shop(n_users={shop_size['n_users']}, "
                  f"n_items={shop_size['n_items']}, n_events={shop_size['n_events']}, "
                  f"seed={shop_size['seed']})`, temporal split ({frontier['test_users']} test "
                  f"users, {frontier['buyers']} with a held-out purchase). A pipeline of EASE "
                  f"and one re-ranker over its best {frontier['pool']}; the request's "
                  "`revenue` knob orders the pool by `(1 - revenue) * relevance + revenue * "
                  "expected_revenue` (relevance: the score min-max scaled in the pool; "
                  "expected revenue: price x relevance, scaled by the pool's largest), "
                  f"alone and with MMR diversity {FRONTIER_MMR:g} on top. `revenue@10` is the "
                  "summed catalog price of the held-out items (any event) hit in the top 10, "
                  "averaged over test users; `revenue_in_mean_prices@10` the same divided by "
                  f"the catalog's mean price ({frontier['mean_price']:.2f}, the unit `tune` "
                  "uses in an objective); `bought_revenue@10` counts held-out purchases only; "
                  "`mean_price_shown` is the mean price of the items listed. The generator's "
                  "users choose by taste, never by price, so a dearer list sells little more.",
                  "", f"At revenue 0: NDCG@10 {base['ndcg@10']:.4f}, revenue@10 "
                  f"{base['revenue@10']:.2f}.", ""]
        columns = ["value", "ndcg@10", "revenue@10", "revenue_in_mean_prices@10",
                   "bought_revenue@10", "diversity@10", "mean_price_shown", "coverage"]
        for name, points in frontier["sweeps"].items():
            lines += [f"### {name}", "", "| " + " | ".join(columns) + " |",
                      "|" + "---|" * len(columns)]
            lines += ["| " + " | ".join(f"{point[c]:.4f}" for c in columns) + " |"
                      for point in points]
            lines.append("")
    lines += ["## Per request (one user, 200 candidates)", "",
              "Median wall ms and mean CPU ms of the process (the machine was shared, so the "
              "CPU figure is what a quiet machine would take).", "",
              "| step | wall ms | CPU ms |", "|---|---|---|"]
    lines += [f"| {name} | {ms['wall_ms']:.2f} | {ms['cpu_ms']:.2f} |"
              for name, ms in results["latency_ms"].items()]
    lines += ["", "![trade-offs](tradeoffs.png)", ""]
    return "\n".join(lines)


def main() -> None:
    warnings.filterwarnings("ignore")
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only-frontier", action="store_true",
                        help="Run only the sample shop's revenue frontier and merge it into "
                        "the results of the last full run.")
    args = parser.parse_args()
    if args.only_frontier:
        previous = RESULTS / "tradeoffs.json"
        if not previous.exists():
            parser.error(f"{previous} does not exist; run the whole benchmark first")
        results = json.loads(previous.read_text())
        print("sample shop: the revenue frontier", flush=True)
        results["shop_frontier"] = shop_frontier(args.seed)
        write(results)
        return
    from tailored.dataset import temporal_split
    from tailored.models import EASE

    data = movielens_100k()
    split = temporal_split(data, test_fraction=0.2)
    model = EASE().fit(split.train)
    candidates = model.recommend(split.test_users, k=CANDIDATES)
    score = Scorer(split)
    print(f"{len(split.test_users)} test users; re-ranking sweeps", flush=True)
    sweeps = rerank_sweeps(model, split, candidates, score)
    print("exploration, simulated online", flush=True)
    sweeps["exploration"] = exploration_sweep(model, data, split, candidates, score,
                                              (0.0, 0.05, 0.1, 0.2, 0.3, 0.5), args.seed)
    print("latency per request", flush=True)
    results = {"dataset": "ml-100k", "split": "temporal 0.2", "model": "ease",
               "candidates": CANDIDATES, "k": K, "test_users": len(split.test_users),
               "seed": args.seed, "sweeps": sweeps, "latency_ms": latencies(model, split)}
    for name, ms in results["latency_ms"].items():
        print(f"  {name:20s} {ms['wall_ms']:.2f} ms wall, {ms['cpu_ms']:.2f} ms CPU")
    print("sample shop: the revenue frontier", flush=True)
    results["shop_frontier"] = shop_frontier(args.seed)
    write(results)


def write(results: dict[str, Any]) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "tradeoffs.json").write_text(json.dumps(results, indent=2, default=float) + "\n")
    (RESULTS / "tradeoffs.md").write_text(markdown(results))
    plot(results, RESULTS / "tradeoffs.png")
    print(f"wrote {RESULTS / 'tradeoffs.md'}, .json and .png")


if __name__ == "__main__":
    main()
