"""Schemathesis against the app's own OpenAPI spec.

- Stateless: generated requests, valid and not, never get a 5xx or an answer the spec does
  not describe; without a key, every route but /health is refused (401).
- Stateful: sequences that follow the spec's links (create an item, read it, change it,
  ask for its similar items, delete it; the same for users, experiments and keys) never
  get a 5xx or an answer the spec does not describe.
- Hostile input, case by case (generated from the spec, not left to chance): a lone
  surrogate in every string of every body, query and path; a zero-width space and a
  bidi override in ids; 400- and 5,000-digit numbers in every numeric field and in
  ``filter`` / ``boost`` expressions. Each is refused with a 4xx and a JSON body.
"""

from __future__ import annotations

import copy
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import jsonschema_rs
import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, assume, given, seed, settings
from hypothesis.errors import FlakyStrategyDefinition
from schemathesis import Case, Response
from schemathesis.generation.stateful.state_machine import StepInput, StepOutput
from schemathesis.specs.openapi.checks import (
    ignored_auth,
    negative_data_rejection,
    positive_data_acceptance,
)

from tailored.schema import Item, User
from tailored.serving import create_app
from tailored.settings import Settings
from tailored.store import open_store
from tailored.testing import LOCAL

from .conftest import Template, _copy_database, copy_artifact
from .taste_groups import GROUP_A, GROUP_B

#: Generated requests per operation and test: the whole file stays within about a minute.
EXAMPLES = 10

#: Checks left out, and why:
#: - ignored_auth: auth is tested below (no key, a wrong key); schemathesis' own version
#:   re-sends requests through its transport, not to this app;
#: - positive_data_acceptance: a request valid by the schema may still be refused with a
#:   reason (a filter naming an attribute no item has, a model version not registered);
#: - negative_data_rejection: pydantic coerces where it is harmless (an epoch number as a
#:   timestamp), which this check counts as accepting invalid data.
NOT_CHECKED = [ignored_auth, positive_data_acceptance, negative_data_rejection]

#: Ids the store of the ``served`` fixture holds: a user with events and a profile, an
#: item with attributes (``price``), and the two registered model versions.
USER, ITEM, VERSIONS = "alice0", GROUP_A[0], (1, 2)


def _serve(root: Path, template: Template) -> tuple[FastAPI, dict[str, str]]:
    """An app on a copy of the synthetic events with a catalog (items with a price), a
    profile, the trained model as versions 1 (active) and 2, and one admin key."""
    _copy_database(template.database, root / "tailored.db")
    url = f"sqlite:///{root / 'tailored.db'}"
    store = open_store(url)
    model = template.model.version
    path = copy_artifact(model.path, root / "models")  # an erasure rewrites it
    # The same artifact twice, so that an experiment has two versions to compare.
    registered = [store.models.register(model.name, path, model.metrics,
                                        model.details).version for _ in VERSIONS]
    assert tuple(registered) == VERSIONS
    store.models.promote(VERSIONS[0])
    store.items.upsert(Item(item_id=item, categories=[item[0]],
                            attributes={"price": 10 * (position + 1)})
                       for position, item in enumerate(GROUP_A + GROUP_B))
    store.users.upsert([User(user_id=USER, attributes={"location": "Berlin"})])
    _, secret = store.keys.create("schemathesis", ["admin"])
    store.close()
    app = create_app(Settings(store_url=url, model_dir=Path(root / "models"),
                              max_body_bytes=256 * 1024, user_token_secret="s" * 32))
    return app, {"Authorization": f"Bearer {secret}"}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory,
           template: Template) -> tuple[FastAPI, dict[str, str]]:
    return _serve(tmp_path_factory.mktemp("schemathesis"), template)


@pytest.fixture(scope="module")
def client(served: tuple[FastAPI, dict[str, str]]) -> Iterator[TestClient]:
    with TestClient(served[0], base_url=LOCAL) as client:
        yield client


@pytest.fixture(scope="module")
def admin(served: tuple[FastAPI, dict[str, str]]) -> dict[str, str]:
    return served[1]


def send(client: TestClient, case: Case) -> Any:
    """The generated request, sent through the test client (the app's lifespan running);
    None for a URL no HTTP client sends (over 64 KiB: a thousand 256-character ids)."""
    kwargs = case.as_transport_kwargs(base_url="http://testserver")
    kwargs.pop("cookies", None)
    if "data" in kwargs:  # requests' name for a raw body
        kwargs["content"] = kwargs.pop("data")
    try:
        return client.request(**kwargs)
    except httpx.InvalidURL:
        return None


def without_keys(headers: dict[str, Any] | None) -> dict[str, Any]:
    return {k: v for k, v in (headers or {}).items()
            if k.lower() not in ("authorization", "x-api-key")}


# The spec of an app built on nothing (create_app opens nothing); the requests go to the
# app of the `served` fixture, whose store holds a model and a key.
SPEC = create_app(Settings(store_url="sqlite://")).openapi()
schema = schemathesis.openapi.from_dict(SPEC)
#: For the auth tests: one request per operation as the spec describes it (the coverage
#: phase also tries other methods and malformed values, which the test above covers).
auth_schema = schemathesis.openapi.from_dict(SPEC)
# The coverage phase (boundary values of every field) costs half a minute at collection
# alone: left out of the default run; fuzzing still sends valid and invalid data.
schema.config.phases.coverage.enabled = False
auth_schema.config.phases.coverage.enabled = False
auth_schema.config.phases.examples.enabled = False
_FEW = settings(max_examples=1, deadline=None, derandomize=True,
                suppress_health_check=list(HealthCheck))


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_no_server_error_and_answers_match_the_spec(case: Case, client: TestClient,
                                                    admin: dict[str, str]) -> None:
    case.headers = {**without_keys(case.headers), **admin}

    response = send(client, case)

    if response is not None:
        case.validate_response(response, excluded_checks=NOT_CHECKED)


@auth_schema.parametrize()
@_FEW
def test_without_a_key_every_route_but_health_is_401(case: Case, client: TestClient) -> None:
    case.headers = without_keys(case.headers)

    response = send(client, case)

    if case.path == "/health":
        assert response.status_code in (200, 503)
    else:
        assert response.status_code == 401, (case.method, case.path, response.text)


@auth_schema.parametrize()
@_FEW
def test_with_a_wrong_key_every_route_but_health_is_401(case: Case,
                                                        client: TestClient) -> None:
    case.headers = {**without_keys(case.headers),
                    "Authorization": "Bearer tk_0123456789ab_" + "x" * 43}

    response = send(client, case)

    assert response.status_code == (200 if case.path == "/health" else 401), case.path


# ---- stateful: sequences that follow the spec's links ----------------------------------

#: Scenarios, and at most this many requests in each: ~500 requests, 10-20 seconds on two
#: cores (most of it generating the requests, not answering them).
SCENARIOS, STEPS = 30, 15
#: Fresh starts allowed when a replayed scenario takes another turn (see run_stateful).
MAX_RESTARTS = 10


def _operation_ref(path: str, method: str) -> str:
    return "#/paths/" + path.replace("~", "~0").replace("/", "~1") + "/" + method


def _link(path: str, method: str, **parameters: str) -> dict[str, Any]:
    return {"operationRef": _operation_ref(path, method), "parameters": parameters}


#: Links the inference from path parameters and response schemas does not find (it links
#: an item's writes to its reads, not to its similar items; nothing follows a delete),
#: added to the test's copy of the spec only. Keyed by (path, method, status).
EXPLICIT_LINKS: dict[tuple[str, str, str], dict[str, dict[str, Any]]] = {
    **{(path, method, status): {"SimilarItems": _link(
        "/items/{item_id}/similar", "get", item_id="$response.body#/item_id")}
       for path, method, status in [("/items/{item_id}", "put", "200"),
                                    ("/items/{item_id}", "put", "201"),
                                    ("/items/{item_id}", "patch", "200"),
                                    ("/items/{item_id}", "get", "200")]},
    # After a delete, the read must be a 404 (the `use_after_free` check).
    ("/items/{item_id}", "delete", "204"): {"ReadDeletedItem": _link(
        "/items/{item_id}", "get", item_id="$request.path.item_id")},
    ("/users/{user_id}", "delete", "204"): {"ReadDeletedUser": _link(
        "/users/{user_id}", "get", user_id="$request.path.user_id")},
}


def _stateful_spec() -> dict[str, Any]:
    spec = copy.deepcopy(SPEC)
    for (path, method, status), links in EXPLICIT_LINKS.items():
        response = spec["paths"][path][method]["responses"][status]
        response.setdefault("links", {}).update(links)
    # An experiment's arms name registered versions: other numbers are only ever refused
    # (422, not in the registry), and then nothing follows the POST.
    spec["components"]["schemas"]["VariantSpec"]["properties"]["version"] = {
        "type": "integer", "enum": list(VERSIONS)}
    return spec


stateful_schema = schemathesis.openapi.from_dict(_stateful_spec())


@dataclass
class Walked:
    """What a stateful run did: scenarios and requests, the links it followed (with the
    target's status) and the link targets it reached ("GET /users/{user_id} 200")."""

    steps: int = 0
    scenarios: int = 0
    restarts: int = 0
    links: Counter[str] = field(default_factory=Counter)
    reached: Counter[str] = field(default_factory=Counter)


@pytest.fixture
def fresh(tmp_path: Path, template: Template) -> Iterator[tuple[TestClient, dict[str, str]]]:
    """An app of its own: the run deletes, starts and revokes what it finds."""
    app, headers = _serve(tmp_path, template)
    with TestClient(app, base_url=LOCAL) as client:
        yield client, headers


def run_stateful(client: TestClient, admin: dict[str, str]) -> Walked:
    """Run the spec's state machine against the app through the test client."""
    walked = Walked()

    class Workflow(stateful_schema.as_state_machine()):  # type: ignore[misc]
        def setup(self) -> None:
            walked.scenarios += 1

        def step(self, input: StepInput) -> StepOutput:
            output = super().step(input)
            walked.steps += 1
            if input.transition is not None and input.is_applied:
                status = output.response.status_code
                walked.links[f"{input.transition.id}: {status}"] += 1
                walked.reached[f"{input.case.operation.label} {status}"] += 1
            return output

        def call(self, case: Case, **kwargs: Any) -> Response:
            case.headers = {**without_keys(case.headers), **admin}
            response = send(client, case)
            assume(response is not None)
            return Response.from_any(response)

        def validate_response(self, response: Response, case: Case,
                              additional_checks: Any = None, **kwargs: Any) -> None:
            case.validate_response(response, excluded_checks=NOT_CHECKED,
                                   recorder=self.recorder)

    # The app keeps what each scenario wrote, so a scenario hypothesis replays may take
    # another turn (a POST that created now conflicts): hypothesis then stops with
    # FlakyStrategyDefinition, which says nothing about the API. Like schemathesis' own
    # runner, start again for the scenarios left; a failed check still fails the test.
    while walked.scenarios < SCENARIOS:
        try:
            Workflow.run(settings=settings(
                max_examples=SCENARIOS - walked.scenarios, stateful_step_count=STEPS,
                deadline=None, derandomize=walked.restarts == 0, database=None,
                phases=[Phase.generate], suppress_health_check=list(HealthCheck)))
        except FlakyStrategyDefinition:
            walked.restarts += 1
            assert walked.restarts <= MAX_RESTARTS, walked
        else:
            break
    return walked


#: Resources a run must reach through links with a 2xx, this many of them at least: which
#: ones a walk takes changes with the state earlier scenarios left (a restarted walk is
#: not derandomized), so requiring every one would make the test flaky, not stricter.
RESOURCES = ("/items/{item_id}", "/users/{user_id}", "/experiments/{experiment_id}",
             "/keys/{key_id}", "/placements/{name}", "/webhooks/{subscription_id}")
MIN_RESOURCES_REACHED = 2
MIN_DISTINCT_LINKS = 10


def test_following_links_never_errors_and_answers_match_the_spec(
        fresh: tuple[TestClient, dict[str, str]]) -> None:
    client, admin = fresh

    walked = run_stateful(client, admin)

    print(f"stateful: {walked.scenarios} scenarios ({walked.restarts} restarts), "
          f"{walked.steps} requests, {sum(walked.links.values())} links followed "
          f"({len(walked.links)} distinct):")
    for link, count in sorted(walked.links.items()):
        print(f"  {count:3d}  {link}")
    reached = {label.split(" ")[1] for label in walked.reached if label.endswith(
        ("200", "201", "204"))}
    resources = [path for path in RESOURCES if any(found.startswith(path)
                                                   for found in reached)]
    assert len(resources) >= MIN_RESOURCES_REACHED, sorted(walked.reached)
    assert len(walked.links) >= MIN_DISTINCT_LINKS, sorted(walked.links)


# ---- hostile input, case by case -------------------------------------------------------

SURROGATE = "\ud800"  # json.dumps writes it as the 6 characters \ud800
#: Percent-encoded in a URL: the UTF-8 bytes of U+D800, which are not valid UTF-8.
SURROGATE_IN_URL = "%ED%A0%80"
ZERO_WIDTH_SPACE, BIDI_OVERRIDE = "\u200b", "\u202e"
#: Integer literals: 400 digits (over a float's range), 5,000 (over Python's default
#: limit of 4,300 digits for int(str)).
HUGE = {"400 digits": "9" * 400, "5000 digits": "9" * 5000}
#: A placeholder written where a huge number goes; replaced in the JSON text.
_HUGE_MARK = "@@huge@@"
#: Array-of-id fields and parameters (the other ids are named *_id).
ID_LISTS = ("items", "exclude")
KEY, VALUE = "<key>", "<value>"  # steps into a free-form object (attributes, context)

#: Valid values for path parameters, so that only the hostile part of a request is wrong.
PATH_VALUES = {"user_id": USER, "item_id": ITEM, "experiment_id": "no-such-experiment",
               "key_id": "no-such-key", "version": "1", "name": "home",
               "subscription_id": "no-such-webhook"}


def _resolve(node: Any) -> Any:
    """The schema with every $ref inlined (the spec has no recursive schemas)."""
    if isinstance(node, dict):
        if "$ref" in node:
            target: Any = SPEC
            for part in node["$ref"].removeprefix("#/").split("/"):
                target = target[part]
            return _resolve({**target, **{k: v for k, v in node.items() if k != "$ref"}})
        return {key: _resolve(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_resolve(value) for value in node]
    return node


@dataclass(frozen=True)
class Operation:
    method: str
    path: str

    @property
    def label(self) -> str:
        return f"{self.method.upper()} {self.path}"

    @property
    def spec(self) -> dict[str, Any]:
        return SPEC["paths"][self.path][self.method]

    @property
    def body_schema(self) -> dict[str, Any] | None:
        content = self.spec.get("requestBody", {}).get("content", {})
        media = content.get("application/json")
        return None if media is None else _resolve(media["schema"])

    def parameters(self, where: str) -> list[dict[str, Any]]:
        return [_resolve(p) for p in self.spec.get("parameters", []) if p["in"] == where]


OPERATIONS = [Operation(method, path) for path, methods in SPEC["paths"].items()
              for method in methods]


def _kinds(schema: dict[str, Any]) -> set[str]:
    """The JSON types a schema allows, through anyOf/oneOf."""
    branches = schema.get("anyOf") or schema.get("oneOf")
    if branches:
        return set().union(*(_kinds(branch) for branch in branches))
    return {schema["type"]} if "type" in schema else set()


def _walk(schema: dict[str, Any], path: tuple[Any, ...] = ()) -> Iterator[
        tuple[tuple[Any, ...], str]]:
    """(path, kind) of every string and number in a body: kind is "string" or "number";
    a path is property names, 0 for an array's item, KEY and VALUE for a free-form
    object's keys and values."""
    branches = schema.get("anyOf") or schema.get("oneOf")
    if branches:
        seen: set[tuple[tuple[Any, ...], str]] = set()
        for branch in branches:
            for found in _walk(branch, path):
                if found not in seen:
                    seen.add(found)
                    yield found
        return
    kind = schema.get("type")
    if kind in ("string", "integer", "number"):
        yield path, "string" if kind == "string" else "number"
    elif kind == "array" and "items" in schema:
        yield from _walk(schema["items"], (*path, 0))
    elif kind == "object":
        for name, property_schema in schema.get("properties", {}).items():
            yield from _walk(property_schema, (*path, name))
        free = [*schema.get("patternProperties", {}).values()]
        if isinstance(schema.get("additionalProperties"), dict):
            free.append(schema["additionalProperties"])
        for value_schema in free:
            yield (*path, KEY), "string"
            yield from _walk(value_schema, (*path, VALUE))


def _name(path: tuple[Any, ...]) -> str:
    """The name of the property a body path ends in (or in whose array)."""
    names = [step for step in path if isinstance(step, str) and step not in (KEY, VALUE)]
    return names[-1] if names else ""


def _is_id(path: tuple[Any, ...]) -> bool:
    name = _name(path)
    return name.endswith("_id") or (name in ID_LISTS and path[-1] == 0)


def _valid_id(name: str) -> str:
    """A valid id for a field or parameter, to which a hostile character is appended."""
    return PATH_VALUES.get(name, ITEM if name in ID_LISTS else "id-1")


def _dotted(path: tuple[Any, ...]) -> str:
    return "body" + "".join(f"[{step}]" if isinstance(step, int) else f".{step}"
                            for step in path)


@dataclass(frozen=True)
class Hostile:
    """One request with one hostile part: a body field, a query or a path parameter."""

    operation: Operation
    where: str  # "body", "query" or "path"
    target: tuple[Any, ...] | str  # a body path, or a parameter's name
    value: str  # what goes there (Python text for a body; URL text for query and path)
    number: bool = False  # the value is a number literal, not a string

    @property
    def id(self) -> str:
        target = (_dotted(self.target) if isinstance(self.target, tuple)
                  else f"{self.where}.{self.target}")
        return f"{self.operation.label} {target}={_describe(self.value)}"


def _describe(value: str) -> str:
    """A case's value, short and readable, for its test id."""
    for name, text in sorted(HUGE.items(), key=lambda item: -len(item[1])):
        value = value.replace(text, f"<{name}>")
    value = value.replace("%20", " ").replace("%3C", "<").replace("%3A", ":")
    return (value.replace(SURROGATE, "<surrogate>").replace(SURROGATE_IN_URL, "<surrogate>")
            .replace(ZERO_WIDTH_SPACE, "<zwsp>").replace(quote(ZERO_WIDTH_SPACE), "<zwsp>")
            .replace(BIDI_OVERRIDE, "<bidi>").replace(quote(BIDI_OVERRIDE), "<bidi>"))


def _hostile_cases() -> Iterator[Hostile]:
    for operation in OPERATIONS:
        body = operation.body_schema
        for path, kind in _walk(body) if body is not None else ():
            if kind == "string":
                yield Hostile(operation, "body", path, SURROGATE)
                if _is_id(path):
                    valid = _valid_id(_name(path))
                    yield Hostile(operation, "body", path, valid + ZERO_WIDTH_SPACE)
                    yield Hostile(operation, "body", path, valid + BIDI_OVERRIDE)
            else:
                for digits in HUGE.values():
                    yield Hostile(operation, "body", path, digits, number=True)
        for where in ("query", "path"):
            for parameter in operation.parameters(where):
                name, kinds = parameter["name"], _kinds(parameter["schema"])
                if "array" in kinds:
                    kinds |= _kinds(parameter["schema"]["items"])
                if "string" in kinds:
                    yield Hostile(operation, where, name, SURROGATE_IN_URL)
                    if name.endswith("_id") or name in ID_LISTS:
                        valid = quote(_valid_id(name), safe="")
                        yield Hostile(operation, where, name,
                                      valid + quote(ZERO_WIDTH_SPACE))
                        yield Hostile(operation, where, name,
                                      valid + quote(BIDI_OVERRIDE))
                if kinds & {"integer", "number"}:
                    for digits in HUGE.values():
                        yield Hostile(operation, where, name, digits, number=True)
    recommend = Operation("get", "/recommendations/{user_id}")
    session = Operation("post", "/recommendations/session")
    for value in ("99999999999999999999", quote("\u00b2")):  # over int64; a superscript 2
        yield Hostile(recommend, "query", "model", value)
    for digits in HUGE.values():
        yield Hostile(recommend, "query", "filter", quote(f"price < {digits}"))
        yield Hostile(recommend, "query", "boost", quote(f"price < {digits}:1.5"))
        yield Hostile(session, "body", ("filter",), f"price < {digits}")
        yield Hostile(session, "body", ("boost", 0), f"price < {digits}:1.5")


HOSTILE = list(_hostile_cases())


def _first_example(operation: Operation) -> Case:
    """Hypothesis' first case for an operation, from a fixed seed: its simplest valid
    request (required fields only)."""
    found: list[Case] = []
    strategy = schema[operation.path][operation.method.upper()].as_strategy()

    @given(strategy)
    @settings(max_examples=1, phases=[Phase.generate], database=None, deadline=None,
              suppress_health_check=list(HealthCheck))
    @seed(0)
    def capture(case: Case) -> None:
        found.append(case)

    capture()
    return found[0]


def _overlay(generated: Any, example: Any) -> Any:
    """The example, with what it leaves out taken from the generated value (the spec's
    item and profile examples have no item_id / user_id)."""
    if isinstance(generated, dict) and isinstance(example, dict):
        return {**generated, **{key: _overlay(generated.get(key), value)
                                for key, value in example.items()}}
    if isinstance(generated, list) and isinstance(example, list):
        return [_overlay(generated[i] if i < len(generated) else None, value)
                for i, value in enumerate(example)]
    return example


def _example(operation: Operation) -> Any:
    """The spec's example for a body: the media type's first, else the schema's (its
    items' for an array)."""
    media = operation.spec["requestBody"]["content"]["application/json"]
    if "examples" in media:
        return next(iter(media["examples"].values()))["value"]
    if "example" in media:
        return media["example"]
    body = operation.body_schema
    assert body is not None
    if body.get("examples"):
        return body["examples"][0]
    if body.get("type") == "array" and body["items"].get("examples"):
        return [body["items"]["examples"][0]]
    return None


#: Changes to the examples, so that each hostile body is judged on its own: one experiment
#: runs at a time (a second start is a 409), so the base body creates a draft; an event
#: with the example's id would be a duplicate, skipped before it is stored, so the id is
#: derived from the content instead (null).
BODY_CHANGES: dict[str, dict[str, Any]] = {"POST /experiments": {"start": False},
                                           "POST /events": {"event_id": None},
                                           # Items the served model knows.
                                           "POST /items/similar": {"items": [ITEM]}}


@cache
def valid_body(operation: Operation) -> Any:
    """A body the spec accepts for the operation: its example where it has one, else
    hypothesis' first case, the gaps of one filled from the other."""
    generated = _first_example(operation).body
    if not isinstance(generated, dict | list):  # an optional body, left out
        generated = (operation.body_schema or {}).get("default", {})
    example = _example(operation)
    body = generated if example is None else _overlay(generated, example)
    if isinstance(body, dict):
        body = {**body, **BODY_CHANGES.get(operation.label, {})}
    return body


def _set(body: Any, path: tuple[Any, ...], value: Any) -> Any:
    """A copy of ``body`` with ``value`` at ``path`` (missing arrays and free-form objects
    on the way are created)."""
    body = copy.deepcopy(body)
    if path and path[0] == 0 and isinstance(body, dict):  # a one-or-many body: the many
        body = [body]
    root = {"": body}
    container: Any = root
    steps: list[Any] = ["", *path]
    for position, step in enumerate(steps[:-1]):
        following = steps[position + 1]
        if step == VALUE:
            step = next(iter(container), "k")
        if isinstance(container, dict) and step not in container:
            assert following in (0, KEY, VALUE), f"no example reaches {_dotted(path)}"
            container[step] = [] if following == 0 else {}
        elif following in (KEY, VALUE) and not isinstance(container[step], dict):
            container[step] = {}  # the example took another branch (consent: true)
        if isinstance(container, list) and not container:
            raise AssertionError(f"no example reaches {_dotted(path)}")
        container = container[step]
    last = steps[-1]
    if last == KEY:
        existing = next(iter(container.items()), ("k", "v"))
        container.pop(existing[0], None)
        container[value] = existing[1]
    elif last == VALUE:
        container[next(iter(container), "k")] = value
    elif isinstance(container, list):
        container[:1] = [value]
    else:
        container[last] = value
    return root[""]


def _request(case: Hostile) -> tuple[str, str, str | None]:
    """Method, URL and raw JSON body of a hostile case."""
    operation = case.operation
    path, query = operation.path, ""
    for parameter in operation.parameters("path"):
        name = parameter["name"]
        value = (case.value if (case.where, case.target) == ("path", name)
                 else quote(PATH_VALUES[name], safe=""))
        path = path.replace(f"{{{name}}}", value)
    if case.where == "query":
        query = f"?{case.target}={case.value}"
    body = None
    if operation.body_schema is not None:
        value = valid_body(operation)
        if case.where == "body":
            assert isinstance(case.target, tuple)
            value = _set(value, case.target, _HUGE_MARK if case.number else case.value)
        body = json.dumps(value)
        if case.number:
            body = body.replace(json.dumps(_HUGE_MARK), case.value)
    return operation.method.upper(), path + query, body


BODY_OPERATIONS = [operation for operation in OPERATIONS if operation.body_schema]


@pytest.mark.parametrize("operation", BODY_OPERATIONS, ids=lambda op: op.label)
def test_the_base_of_each_hostile_body_is_valid_and_accepted(
        operation: Operation, client: TestClient, admin: dict[str, str]) -> None:
    """Without its hostile field, each body is accepted: the 4xx below is the field's."""
    body = valid_body(operation)
    assert operation.body_schema is not None
    validator = jsonschema_rs.validator_for(operation.body_schema)
    assert validator.is_valid(body), list(validator.iter_errors(body))[:3]
    path = operation.path
    for name, value in PATH_VALUES.items():
        path = path.replace(f"{{{name}}}", quote(value, safe=""))

    response = client.request(operation.method.upper(), path, json=body, headers=admin)

    assert 200 <= response.status_code < 300, (response.status_code, response.text[:500])


@pytest.mark.parametrize("case", HOSTILE, ids=[case.id for case in HOSTILE])
def test_hostile_input_is_refused_with_a_4xx_and_a_json_body(
        case: Hostile, client: TestClient, admin: dict[str, str]) -> None:
    method, url, body = _request(case)

    response = client.request(method, url, content=body,
                              headers={"Content-Type": "application/json", **admin})

    assert 400 <= response.status_code < 500, (response.status_code, response.text[:500])
    assert response.headers["content-type"].startswith("application/json")
    assert isinstance(response.json(), dict)


def test_hostile_cases_cover_every_body_string_and_number() -> None:
    """The generated cases reach what the brief names: nested fields, free-form keys."""
    ids = {case.id for case in HOSTILE}
    for expected in ["POST /experiments body.variants[0].name=<surrogate>",
                     "POST /events body.context.<key>=<surrogate>",
                     "POST /events body[0].context.<key>=<surrogate>",
                     "POST /items body[0].attributes.<key>=<surrogate>",
                     "PUT /users/{user_id} body.attributes.<value>=<5000 digits>",
                     "POST /recommendations/session body.k=<400 digits>",
                     "GET /recommendations/{user_id} query.k=<5000 digits>",
                     "GET /items/{item_id} path.item_id=a0<zwsp>",
                     "GET /recommendations/{user_id} query.model=%C2%B2"]:
        assert expected in ids, expected
