"""User profiles over REST: create, read, update, delete and consent (a ``write`` key
for all: a profile is personal data, not for a frontend's ``read`` key); user tokens,
the credential a backend hands to its signed-in visitor's page; and a data subject's
rights, export and erasure (an ``admin`` key)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Body, HTTPException, Path, Query, Response, status

from tailored.jobs.export import export_user
from tailored.schema import CONSENT_PURPOSES, Id, User, by_purpose
from tailored.store import Store

from .. import user_tokens
from ..auth import AUTH_RESPONSES, AdminAccess, WriteAccess
from ..deps import LiveDep, SettingsDep, StateDep, StoreDep
from ..errors import check_batch_size
from ..schemas import (
    ConsentChangeOut,
    ConsentIn,
    ConsentOut,
    ErasureOut,
    Profile,
    SimilarUser,
    SimilarUsers,
    TokenRequest,
    Upserted,
    UserFields,
    UserOut,
    UserPatch,
    UserToken,
)
from .recommendations import MAX_K

router = APIRouter(tags=["users"], responses=AUTH_RESPONSES)

UserId = Annotated[Id, Path(description="The user's id, as sent with their events.")]
_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No profile for this user."}}


def _missing(user_id: str) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND,
                         detail=f"no profile for user {user_id!r}; PUT /users/{{user_id}} "
                                "creates it")


@router.get("/users/{user_id}", summary="Read a user's profile", response_model=UserOut,
            responses=_NOT_FOUND)
def get_user(user_id: UserId, caller: WriteAccess, store: StoreDep) -> UserOut:
    user = store.users.get(user_id)
    if user is None:
        raise _missing(user_id)
    return UserOut.of(user)


@router.put(
    "/users/{user_id}",
    summary="Create or replace a user's profile",
    description="Stores the attributes as sent; `consent` changes only the purposes it "
                "names (left out, it stays as recorded). 201 when the profile is new, 200 "
                "when it replaced one.",
    response_model=UserOut,
    status_code=status.HTTP_201_CREATED,
    responses={200: {"model": UserOut, "description": "An existing profile was replaced."}},
)
def put_user(user_id: UserId, fields: UserFields, caller: WriteAccess, store: StoreDep,
             response: Response) -> UserOut:
    existed = store.users.get(user_id) is not None
    store.users.upsert([_user(user_id, fields)])
    if existed:
        response.status_code = status.HTTP_200_OK
    return UserOut.of(_stored(store, user_id))


def _user(user_id: str, fields: UserFields) -> User:
    consent = {} if fields.consent is None else by_purpose(fields.consent)  # {}: unchanged
    return User(user_id=user_id, attributes=fields.attributes, consent=consent)


def _stored(store: Store, user_id: str) -> User:
    user = store.users.get(user_id)
    if user is None:  # erased between the write and this read
        raise _missing(user_id)
    return user


@router.patch(
    "/users/{user_id}",
    summary="Change some fields of a profile",
    description="Only the fields sent change; `attributes` are merged into the stored ones "
                "and an attribute set to null is removed.",
    response_model=UserOut,
    responses=_NOT_FOUND,
)
def patch_user(user_id: UserId, patch: UserPatch, caller: WriteAccess,
               store: StoreDep) -> UserOut:
    user = store.users.update(user_id, patch.changes())
    if user is None:
        raise _missing(user_id)
    return UserOut.of(user)


@router.delete(
    "/users/{user_id}",
    summary="Delete a user's profile",
    description="Removes the profile (attributes, consent). The user's events and "
                "consent history stay: they are what their recommendations come from. To "
                "remove every trace of a user, `POST /users/{user_id}/erase`.",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=_NOT_FOUND,
)
def delete_user(user_id: UserId, caller: WriteAccess, store: StoreDep) -> Response:
    if not store.users.delete(user_id):
        raise _missing(user_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/users",
    summary="Create or replace profiles in a batch",
    description="Upserts every profile of the list in one transaction (at most "
                "`max_batch_events`).",
    response_model=Upserted,
    responses={413: {"description": "More profiles than `max_batch_events`."}},
)
def post_users(users: Annotated[list[Profile], Body(min_length=1)], caller: WriteAccess,
               store: StoreDep, settings: SettingsDep) -> Upserted:
    check_batch_size(len(users), settings.max_batch_events, "profiles")
    store.users.upsert([_user(user.user_id, user) for user in users])
    return Upserted(received=len(users))


@router.get("/users/{user_id}/consent", summary="Read a user's consent and its history",
            response_model=ConsentOut)
def get_consent(user_id: UserId, caller: WriteAccess, store: StoreDep) -> ConsentOut:
    return _consent(store, user_id)


@router.put(
    "/users/{user_id}/consent",
    summary="Grant or withdraw consent",
    description="Changes the purposes sent (`true`/`false` for all, or an object by "
                "purpose) and records each change with its time; a user without a "
                "profile gets one. Without `personalization`, the user's next request "
                "gets the non-personalised answer and no training uses their events; "
                "without `analytics`, their answers are no longer logged.",
    response_model=ConsentOut,
)
def put_consent(user_id: UserId, consent: Annotated[ConsentIn, Body()], caller: WriteAccess,
                store: StoreDep) -> ConsentOut:
    if store.users.update(user_id, {"consent": consent}) is None:
        store.users.upsert([User(user_id=user_id, consent=by_purpose(consent))])
    return _consent(store, user_id)


def _consent(store: Store, user_id: str) -> ConsentOut:
    user = store.users.get(user_id)
    recorded = {} if user is None else user.consent
    history = store.users.consent_history(user_id)
    if user is None and not history:
        raise _missing(user_id)
    return ConsentOut(user_id=user_id,
                      consent={**dict.fromkeys(CONSENT_PURPOSES, True), **recorded},
                      history=[ConsentChangeOut(**vars(c)) for c in history])


@router.get(
    "/users/{user_id}/similar",
    summary="Users like a user",
    description="The `k` users whose histories (as stored now) are most like this user's, "
                "for the social blocks some sites show (\"people like you\"). Nobody who "
                "withholds personalization is in it, on either side. A `write` key: it "
                "names other people. In a store with pseudonymous ids the users are named "
                "by pseudonym.",
    response_model=SimilarUsers,
    responses={503: {"description": "No trained model yet; run `tailored train`."}},
)
def similar_users(
    user_id: UserId, caller: WriteAccess, live: LiveDep,
    k: Annotated[int, Query(ge=1, le=MAX_K, description="How many users to return.")] = 10,
) -> SimilarUsers:
    similar = live.similar_users(user_id, k)
    return SimilarUsers(user_id=user_id, users=[
        SimilarUser(user_id=str(other), score=float(score), rank=int(rank))
        for other, score, rank in zip(similar["similar_user_id"], similar["score"],
                                      similar["rank"], strict=True)])


@router.post(
    "/users/{user_id}/erase",
    summary="Erase a user everywhere",
    description="The right to be forgotten, at once: the user's events, profile, consent "
                "history, served answers and experiment exposures are deleted, every "
                "registered model artifact is rewritten without the user (loaded versions "
                "are reloaded, cached lists dropped), and an audit record keeps who erased "
                "and when under a keyed hash of the id. Where a model's item-level state "
                "still carries the user's influence, `retrain_due` says by when a "
                "retraining replaces it. Idempotent: erasing again finds nothing more. An "
                "`admin` key.",
    response_model=ErasureOut,
)
async def erase(user_id: UserId, caller: AdminAccess, state: StateDep) -> dict[str, Any]:
    # Rewrites artifacts and reloads models: off the event loop.
    report = await anyio.to_thread.run_sync(
        state.erase, [user_id], caller.name)
    return report.summary()


@router.post(
    "/users/{user_id}/token",
    summary="Issue a user token",
    description="A token bound to this user, for the page of a visitor your backend has "
                "signed in: it may read this user's recommendations (with reasons), "
                "similar items and items, and send this user's events, nothing else. "
                "Tokens are signed with the `user_token_secret` setting (409 while it is "
                "unset); the README's Security section shows how to sign them offline.",
    response_model=UserToken,
    responses={409: {"description": "`user_token_secret` is not set."}},
)
def issue_token(user_id: UserId, caller: WriteAccess, settings: SettingsDep,
                request: Annotated[TokenRequest | None, Body()] = None) -> UserToken:
    if settings.user_token_secret is None:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=(
            "user tokens are off: set user_token_secret (TAILORED_USER_TOKEN_SECRET, at "
            "least 32 characters) on every host, and restart"))
    asked = request if request is not None else TokenRequest.model_validate({})
    token = user_tokens.issue(settings.user_token_secret.get_secret_value(), user_id,
                              ttl_seconds=asked.ttl_seconds)
    return UserToken(user_id=user_id, token=token,
                     expires_at=datetime.fromtimestamp(user_tokens.expires_at(token), UTC))


@router.get(
    "/users/{user_id}/export",
    summary="Export everything stored about a user",
    description="One JSON document (format `tailored.user-export/1`) with the user's "
                "profile, every event and every recommendation the service gave them "
                "(model, version, experiment arm, items with scores and propensities), "
                "for a data subject's access request; its fields are documented in "
                "`tailored.jobs.export` and the README. An `admin` key: it reads a "
                "person's whole history. 404 when the store holds nothing about the user "
                "(no profile, event or answer).",
    responses={404: {"description": "Nothing is stored about this user."}},
)
async def export(user_id: UserId, caller: AdminAccess, store: StoreDep) -> dict[str, Any]:
    # Reads every event and answer of the user: off the event loop.
    document = await anyio.to_thread.run_sync(export_user, store, user_id)
    if document["profile"] is None and not any(document["counts"].values()):
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=(
            f"nothing is stored about user {user_id!r}: no profile, event or "
            "recommendation"))
    return document
