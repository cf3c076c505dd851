"""The store contract through PseudonymousStore, on SQLite and PostgreSQL (when the
server is there: see ``conftest.py``), and what the database holds with it: pseudonyms,
never a raw user id."""

from __future__ import annotations

import itertools
import typing
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from tailored.ingest import import_file
from tailored.schema import Event, User, by_purpose
from tailored.settings import Settings
from tailored.store import (
    Changes,
    EventLog,
    PrivacyRecords,
    Pseudonym,
    PseudonymousStore,
    Served,
    ServedLog,
    Store,
    UserDirectory,
    keyed_hash,
    open_store,
    open_store_from,
    pseudonym,
    stored_user_id,
)
from tailored.testing.store_contract import (
    ConcurrentUpdateContract,
    StoreContract,
    TransactionContract,
)

SECRET = "a test secret of at least 32 characters"
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def P(user_id: str, secret: str = SECRET) -> str:
    return pseudonym(secret, user_id)


def _event(n: int, user: str = "u1", item: str = "i1", **fields: object) -> Event:
    return Event(event_id=f"e{n}", user_id=user, item_id=item,
                 timestamp=T0.replace(minute=n % 60), **fields)  # type: ignore[arg-type]


def _engine(url: str) -> sa.Engine:
    return sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))


class PseudonymousContract(StoreContract, ConcurrentUpdateContract, TransactionContract):
    """Every contract test runs through the wrapper. A read of every user and an audit
    hash answer pseudonyms by design (training and batch jobs must never see a raw id):
    ``stored_id`` tells the contract so. A read that names its users answers raw ids."""

    def stored_id(self, user_id: str) -> str:
        return P(user_id)

    def stored_event_id(self, event: Event) -> str:
        return event.model_copy(update={"user_id": P(event.user_id)}).content_id()

    def test_a_read_naming_users_answers_the_ids_asked(self, store: Store) -> None:
        store.events.add([_event(1)])
        store.users.upsert([User(user_id="yes"), User(user_id="no", consent=by_purpose(False)),
                            User(user_id="later")])
        store.users.update("later", {"consent": False})
        store.served.record([Served("r1", "u1", T0, "als", 3)])
        assert store.events.frame(user_ids=["u1"])["user_id"].tolist() == ["u1"]
        assert sorted(store.users.without_consent(["yes", "no", "later"])) == ["later", "no"]
        assert store.served.frame(user_id="u1")["user_id"].tolist() == ["u1"]

    def test_an_erasure_audits_the_hash_of_the_pseudonym(self, store: Store) -> None:
        store.events.add([_event(1)])
        [erasure] = store.privacy.erase(["u1"], key="k" * 32, erased_by="key:admin",
                                        retrain_within=None)
        assert erasure.user_hash == keyed_hash("k" * 32, P("u1"))
        assert erasure.user_hash not in (keyed_hash("k" * 32, "u1"), P("u1"))


class TestPseudonymousSQLiteStore(PseudonymousContract):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[Store]:
        store = open_store(f"sqlite:///{tmp_path / 'store.db'}", pseudonym_secret=SECRET)
        yield store
        store.close()


class TestPseudonymousPostgresStore(PseudonymousContract):
    @pytest.fixture
    def store(self, empty_postgres_url: str) -> Iterator[Store]:
        store = open_store(empty_postgres_url, pseudonym_secret=SECRET)
        yield store
        store.close()


# ---- what the database holds ---------------------------------------------------------

RAW_IDS = ("user-alice", "user-bob", "user-carol")  # no hex digit string holds these


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
        return
    yield request.getfixturevalue("empty_postgres_url")


def _fill(store: Store, folder: Path) -> None:
    """Import events and users (with consent), record answers, erase user-carol."""
    events = folder / "events.csv"
    events.write_text("user_id,item_id,event_type,timestamp,device\n"
                      + "".join(f"{user},i{n},view,2026-01-0{n}T12:00:00Z,mobile\n"
                                for user in RAW_IDS for n in (1, 2, 3)))
    users = folder / "users.csv"
    users.write_text("user_id,consent,city\nuser-alice,yes,Berlin\nuser-bob,no,Paris\n"
                     "user-carol,yes,Rome\n")
    assert import_file(store, events, "events").imported == 9
    assert import_file(store, users, "users").imported == 3
    store.users.update("user-alice", {"consent": {"analytics": False}})
    store.served.record([Served(f"r{n}", user, T0, "als", 1, item_ids=["i1"],
                                scores=[1.0], propensities=[1.0],
                                context={"device": "mobile"})
                         for n, user in enumerate(RAW_IDS)]
                        + [Served("r-anonymous", None, T0, "popular", None)])
    [erasure] = store.privacy.erase(["user-carol"], key=SECRET, erased_by="key:admin",
                                    retrain_within=None)
    assert erasure.deleted == {"events": 3, "profile": 1, "served": 1, "consent_changes": 2}


def _cells(url: str) -> dict[str, list[str]]:
    """Every cell of every table of the database, as text, by table."""
    engine = _engine(url)
    reflected = sa.MetaData()
    reflected.reflect(engine)
    with engine.connect() as conn:
        cells = {name: [str(value) for row in conn.execute(sa.select(table)).all()
                        for value in row if value is not None]
                 for name, table in reflected.tables.items()}
    engine.dispose()
    return cells


def test_no_table_holds_a_raw_user_id(url: str, tmp_path: Path) -> None:
    store = open_store(url, pseudonym_secret=SECRET)
    _fill(store, tmp_path)
    store.close()

    cells = _cells(url)
    assert {"events", "users", "served", "consent_changes", "erasures"} <= set(cells)
    for table, values in cells.items():
        for raw in RAW_IDS:
            assert not [v for v in values if raw in v], f"{raw} in table {table}"
    # The users are there under their pseudonyms (the erased one nowhere).
    for table in ("events", "users", "served", "consent_changes"):
        assert {P("user-alice"), P("user-bob")} <= set(cells[table]), table
        assert P("user-carol") not in set(itertools.chain(*cells.values()))


def test_derived_event_ids_do_not_hash_the_raw_id(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}", pseudonym_secret=SECRET)
    sent = Event(user_id="user-alice", item_id="i1", timestamp=T0)  # id from the content
    named = Event(event_id="shop-42", user_id="user-alice", item_id="i2", timestamp=T0)
    assert store.events.add([sent, named]) == 2
    assert store.events.add([sent, named]) == 0  # a re-sent event is still recognised
    stored = store.events.frame()["event_id"].tolist()
    assert sent.event_id not in stored and "shop-42" in stored
    assert Event(user_id=P("user-alice"), item_id="i1", timestamp=T0).event_id in stored
    store.close()


def test_pseudonyms_are_stable_with_the_secret_and_differ_with_another(
        url: str, tmp_path: Path) -> None:
    first = open_store(url, pseudonym_secret=SECRET)
    _fill(first, tmp_path)
    first.close()

    again = open_store(url, pseudonym_secret=SECRET)
    assert set(again.events.frame()["user_id"]) == {P("user-alice"), P("user-bob")}
    assert again.events.frame(user_ids=["user-alice"])["user_id"].tolist() == [
        "user-alice"] * 3
    alice = again.users.get("user-alice")
    assert alice is not None and alice.attributes == {"city": "Berlin"}
    again.close()

    other_secret = "another secret, also 32 characters or more"
    other = open_store(url, pseudonym_secret=other_secret)
    assert P("user-alice", other_secret) != P("user-alice")
    assert other.events.frame(user_ids=["user-alice"]).empty
    assert other.users.get("user-alice") is None
    assert other.events.count() == 6  # the data is there, under ids it cannot name
    other.close()


# ---- ids going back and forth ----------------------------------------------------------


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = open_store(f"sqlite:///{tmp_path / 'store.db'}", pseudonym_secret=SECRET)
    yield opened
    opened.close()


def test_ids_read_from_every_user_can_be_asked_for_again(store: Store) -> None:
    """What monitors and `recommend --all` do: read everyone, then ask by those ids."""
    store.events.add([_event(1, user="u1"), _event(2, user="u2")])
    store.users.upsert([User(user_id="u1", consent=by_purpose(False))])
    store.served.record([Served("r1", "u1", T0, "als", 1)])
    ids = store.served.frame()["user_id"].unique().tolist()
    assert ids == [P("u1")] and all(isinstance(i, Pseudonym) for i in ids)
    assert store.events.frame(user_ids=ids)["event_id"].tolist() == ["e1"]
    assert store.events.frame(user_ids=ids)["user_id"].tolist() == ids
    assert store.users.without_consent(ids) == ids
    assert store.served.frame(user_id=ids[0])["recommendation_id"].tolist() == ["r1"]
    assert store.changes.check(ids[0]).user_events == 1
    user = store.users.get(store.users.without_consent()[0])
    assert user is not None and user.user_id == P("u1")
    answer = store.served.get("r1")
    assert answer is not None and answer.user_id == P("u1")
    assert isinstance(answer.user_id, Pseudonym)


def test_a_raw_id_that_looks_like_a_pseudonym_is_still_pseudonymised(store: Store) -> None:
    store.events.add([_event(1, user="u1")])
    lookalike = str(store.events.frame()["user_id"].iloc[0])  # plain text, as sent
    assert lookalike == P("u1") and not isinstance(lookalike, Pseudonym)
    assert store.events.frame(user_ids=[lookalike]).empty
    assert store.changes.check(lookalike).user_events == 0
    store.events.add([_event(2, user=lookalike)])  # a request naming such a user
    assert set(store.events.frame()["user_id"]) == {P("u1"), P(lookalike)}


def test_the_schema_turns_a_pseudonym_into_plain_text() -> None:
    """So a record written through the API or a file is never taken as stored."""
    assert type(Event(user_id=Pseudonym("p1_x"), item_id="i").user_id) is str
    assert type(User(user_id=Pseudonym("p1_x")).user_id) is str


def test_a_transaction_maps_ids_too(store: Store) -> None:
    with store.transaction() as transaction:
        transaction.events.add([_event(1, user="u1")])
        transaction.users.upsert([User(user_id="u1", attributes={"age": 30})])
        assert transaction.events.frame(user_ids=["u1"])["user_id"].tolist() == ["u1"]
        assert transaction.events.frame()["user_id"].tolist() == [P("u1")]
        assert transaction.users.frame()["user_id"].tolist() == [P("u1")]
        user = transaction.users.get("u1")
        assert user is not None and user.user_id == "u1"


def test_roles_without_user_ids_are_the_inner_stores(tmp_path: Path) -> None:
    inner = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    store = PseudonymousStore(inner, SECRET)
    for role in ("items", "models", "keys", "alerts", "experiments", "webhooks"):
        assert getattr(store, role) is getattr(inner, role)
    assert store.url == inner.url
    store.close()


def _protocol_members(protocol: type) -> set[str]:
    return {name for cls in protocol.__mro__
            if getattr(cls, "_is_protocol", False) and cls is not typing.Protocol
            for name in vars(cls) if not name.startswith("_")}


@pytest.mark.parametrize(("role", "protocol"), [
    ("events", EventLog), ("users", UserDirectory), ("served", ServedLog),
    ("changes", Changes), ("privacy", PrivacyRecords), (None, Store)])
def test_each_method_maps_ids_or_passes_through_by_name(store: Store, role: str | None,
                                                        protocol: type) -> None:
    """A method the protocols gain must be added to the wrapper, mapped or passing."""
    wrapper = store if role is None else getattr(store, role)
    mapped = {name for name in dir(wrapper) if not name.startswith("_")} - {"passes"}
    passes = type(wrapper).passes
    assert not mapped & passes
    assert passes <= _protocol_members(protocol)
    assert _protocol_members(protocol) <= mapped | passes
    with pytest.raises(AttributeError, match="neither maps user ids"):
        _ = wrapper.delete_everything


def test_opened_from_the_settings(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    plain = open_store_from(Settings(store_url=url))
    assert not isinstance(plain, PseudonymousStore)
    assert stored_user_id(plain, "u1") == "u1"
    plain.close()
    secret = Settings(store_url=url, pseudonymize_user_ids=True, privacy_secret=SECRET)
    pseudonymous = open_store_from(secret)
    assert isinstance(pseudonymous, PseudonymousStore)
    stored = stored_user_id(pseudonymous, "u1")
    assert stored == P("u1") and isinstance(stored, Pseudonym)
    pseudonymous.events.add([_event(1, user="u1")])
    assert pseudonymous.events.frame(user_ids=[stored])["user_id"].tolist() == [stored]
    pseudonymous.close()


def test_a_short_secret_is_refused() -> None:
    inner = open_store("sqlite://")
    with pytest.raises(ValueError, match="at least 32 characters"):
        PseudonymousStore(inner, "short")
    inner.close()
