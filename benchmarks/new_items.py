"""New items from the first minute: how soon items added after training are shown, and
how they do, with new arrivals against exploration only and against a daily retrain.

The sample shop (its generator knows every user's hidden taste) is imported without 50
of its items and their events; a model is trained; then the 50 items are put into the
catalog, as a shop adds products in the morning. Simulated users (``tailored.jobs.
simulate``: position bias, clicks and purchases by hidden taste) then ask for 10
recommendations each, over three simulated days, through the REST API in-process:

- ``exploration``: today's cold start, the LinUCB bandit fills 10% of the slots
  (``explore=0.1``) choosing among the model's candidates and the new items;
- ``exploration + daily retrain``: the same, and the model is retrained at the end of
  each day (new items with events enter it);
- ``new arrivals``: 10% of the slots go to new items ranked by content like what each
  user touched recently (``new_arrivals=0.1``), no retrain;
- ``none``: neither (the model alone never shows an item it does not know).

Reported per arm and day: impressions of the 50 new items (and in the first simulated
hour), their share of all impressions, their clicks and CTR, and the overall CTR.

Run: ``.venv/bin/python benchmarks/new_items.py``; writes
``benchmarks/results/new_items.{md,json}``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from fastapi.testclient import TestClient

from tailored.ingest import import_file
from tailored.jobs import train_model
from tailored.jobs.simulate import simulate
from tailored.pipeline import Recipe
from tailored.sample import shop
from tailored.schema import Item
from tailored.serving import create_app
from tailored.settings import Settings
from tailored.store import open_store
from tailored.testing import LOCAL

RESULTS = Path(__file__).parent / "results"
ARMS = {"none": {}, "exploration": {"explore": 0.1},
        "exploration + daily retrain": {"explore": 0.1, "retrain": True},
        "new arrivals": {"new_arrivals": 0.1}}


def _prepare(root: Path, args: argparse.Namespace) -> tuple[Any, Settings, list[str]]:
    sample = shop(n_users=args.users, n_items=args.items, n_events=args.events, seed=args.seed)
    rng = np.random.default_rng(args.seed)
    new = sorted(rng.choice(sample.items["item_id"].astype(str).to_numpy(), size=args.new,
                            replace=False).tolist())
    paths = {p.stem: p for p in sample.write(root / "shop")}
    held = set(new)
    for kind in ("events", "items"):  # item ids hold no commas
        lines = paths[kind].read_text().splitlines(keepends=True)
        column = lines[0].rstrip("\n").split(",").index("item_id")
        paths[kind].write_text(lines[0] + "".join(
            line for line in lines[1:] if line.split(",")[column] not in held))
    settings = Settings(store_url=f"sqlite:///{root / 'base.db'}", model_dir=root / "models",
                        served_log_flush_seconds=0.05, exploration_feedback_seconds=0.0,
                        exploration_poll_seconds=0.2)
    with closing(open_store(settings.store_url)) as store:
        for kind in ("items", "users", "events"):
            import_file(store, paths[kind], kind)
        trained = train_model(store, settings, Recipe.of(args.model), validate=False)
        assert not held & set(trained.pipeline.item_ids)
        rows = sample.items[sample.items["item_id"].astype(str).isin(held)]
        store.items.upsert([Item(item_id=str(r.item_id), title=r.title, text=r.text,
                                 categories=list(r.categories),
                                 attributes={"price": float(r.price)})
                            for r in rows.itertuples()])
    return sample, settings, new


def _run_arm(name: str, arm: dict[str, Any], sample: Any, base: Settings, new: list[str],
             root: Path, args: argparse.Namespace) -> dict[str, Any]:
    db = root / f"{name.replace(' ', '_').replace('+', 'and')}.db"
    shutil.copy(base.store_url.removeprefix("sqlite:///"), db)
    settings = base.model_copy(update={"store_url": f"sqlite:///{db}"})
    start = datetime(2026, 12, 1, 8, tzinfo=UTC)
    step = timedelta(days=1) / args.sessions_per_day
    sessions = {"n": 0}

    def clock() -> datetime:
        sessions["n"] += 1
        return start + step * (sessions["n"] - 1)

    days = []
    for day in range(args.days):
        with TestClient(create_app(settings), base_url=LOCAL) as client:
            simulate(client, sample, users=args.sessions_per_day, k=10, seed=args.seed + day,
                     now=clock, explore=arm.get("explore", 0.0),
                     new_arrivals=arm.get("new_arrivals", 0.0))
        with closing(open_store(settings.store_url)) as store:
            events = store.events.frame()
            if arm.get("retrain"):
                train_model(store, settings, Recipe.of(args.model), validate=False)
        begin, end = start + timedelta(days=day), start + timedelta(days=day + 1)
        today = events[(events["timestamp"] >= begin) & (events["timestamp"] < end)]
        shown = today[today["event_type"] == "impression"]
        clicks = today[today["event_type"] == "click"]
        first_hour = shown[shown["timestamp"] < begin + timedelta(hours=1)]
        is_new = shown["item_id"].isin(new)
        new_clicks = int(clicks["item_id"].isin(new).sum())
        days.append({
            "day": day + 1, "impressions": len(shown), "new_impressions": int(is_new.sum()),
            "new_share": round(float(is_new.mean()) if len(shown) else 0.0, 4),
            "new_items_shown": int(shown[is_new]["item_id"].nunique()),
            "new_impressions_first_hour": (int(first_hour["item_id"].isin(new).sum())
                                           if day == 0 else None),
            "new_clicks": new_clicks,
            "new_ctr": round(new_clicks / max(1, int(is_new.sum())), 4),
            "ctr": round(len(clicks) / max(1, len(shown)), 4)})
        print(f"{name:28s} day {day + 1}: {days[-1]}", flush=True)
    return {"arm": name, **arm, "days": days}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=2_000)
    parser.add_argument("--items", type=int, default=400)
    parser.add_argument("--events", type=int, default=60_000)
    parser.add_argument("--new", type=int, default=50)
    parser.add_argument("--days", type=int, default=3)
    parser.add_argument("--sessions-per-day", type=int, default=480)
    parser.add_argument("--model", default="item_knn")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--note", default="")
    args = parser.parse_args()
    load_before = os.getloadavg()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        sample, settings, new = _prepare(root, args)
        arms = [_run_arm(name, arm, sample, settings, new, root, args)
                for name, arm in ARMS.items()]
    record = {"command": "python benchmarks/new_items.py", "note": args.note,
              "machine": platform.platform(), "cpus": os.cpu_count(),
              "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M"),
              "load_average": {"start": load_before, "end": os.getloadavg()},
              "seconds": round(time.perf_counter() - started, 1),
              "data": {"users": args.users, "items": args.items, "events": args.events,
                       "new_items": args.new, "model": args.model,
                       "sessions_per_day": args.sessions_per_day, "k": 10},
              "arms": arms}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "new_items.json").write_text(json.dumps(record, indent=1) + "\n")
    lines = ["# New items from the first minute (benchmarks/new_items.py)", "",
             f"Sample shop ({args.users:,} users, {args.items} items, {args.events:,} events, "
             f"seed {args.seed}) without {args.new} items; `{args.model}` trained; then the "
             f"{args.new} items are put into the catalog. {args.sessions_per_day} simulated "
             "sessions a day (k = 10) through the REST API in-process. Load average "
             f"{load_before[0]:.2f} before, {os.getloadavg()[0]:.2f} after.", "",
             "| arm | day | new-item impressions | of which in the first hour | share of "
             "impressions | new items shown | clicks on them | their CTR | overall CTR |",
             "|---|---|---|---|---|---|---|---|---|"]
    for arm in arms:
        for d in arm["days"]:
            hour = "" if d["new_impressions_first_hour"] is None else str(
                d["new_impressions_first_hour"])
            lines.append(f"| {arm['arm']} | {d['day']} | {d['new_impressions']:,} | {hour} | "
                         f"{d['new_share']:.1%} | {d['new_items_shown']} | {d['new_clicks']} "
                         f"| {d['new_ctr']:.3f} | {d['ctr']:.3f} |")
    (RESULTS / "new_items.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
