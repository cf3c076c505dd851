"""The synthetic data of the serving tests: two taste groups with known right answers.

Group A (10 users) only touches items a0..a5, group B (6 users) only b0..b5; each user
views four of their group's six items. So a user of either group should be recommended
the rest of their group's items, a newcomer who views B items should get B items, and
the popular fallback is A items (A has more users).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tailored.schema import Event

GROUP_A = tuple(f"a{j}" for j in range(6))
GROUP_B = tuple(f"b{j}" for j in range(6))
USERS_A = tuple(f"alice{i}" for i in range(10))
USERS_B = tuple(f"bob{i}" for i in range(6))
START = datetime(2024, 1, 1, tzinfo=UTC)


def seen_by(user: str) -> set[str]:
    """The items a user of the synthetic data viewed."""
    group = GROUP_A if user in USERS_A else GROUP_B
    i = int(user.removeprefix("alice").removeprefix("bob"))
    return {group[(i + j) % len(group)] for j in range(4)}


def synthetic_events() -> list[Event]:
    """Each user's views one after another, users interleaved in time (so a temporal
    split has test users with training history)."""
    users = USERS_A + USERS_B
    return [Event(user_id=user, item_id=item,
                  timestamp=START + timedelta(minutes=step * len(users) + position))
            for position, user in enumerate(users)
            for step, item in enumerate(sorted(seen_by(user)))]


def popularity_order() -> list[str]:
    """Items by distinct users, most first, ties by id (what the fallback must return)."""
    counts: dict[str, int] = {}
    for user in USERS_A + USERS_B:
        for item in seen_by(user):
            counts[item] = counts.get(item, 0) + 1
    return sorted(counts, key=lambda item: (-counts[item], item))
