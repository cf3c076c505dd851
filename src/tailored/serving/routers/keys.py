"""API keys over REST, for an ``admin`` key: create, list, revoke.

The CLI (``tailored keys create``) makes the first key; this router lets an operator
rotate keys without a shell on the server.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, status

from ..auth import AUTH_RESPONSES, KeyVerifier, get_verifier, require_scope
from ..deps import StoreDep
from ..schemas import CreatedKey, KeyInfo, KeyRequest

router = APIRouter(prefix="/keys", tags=["keys"], responses=AUTH_RESPONSES,
                   dependencies=[Depends(require_scope("admin"))])

VerifierDep = Annotated[KeyVerifier, Depends(get_verifier)]


@router.get("", summary="List API keys", response_model=list[KeyInfo],
            description="Every key, revoked ones too, oldest first; never a secret.")
def list_keys(store: StoreDep) -> list[KeyInfo]:
    return [KeyInfo.of(key) for key in store.keys.list()]


@router.post("", summary="Create an API key", response_model=CreatedKey,
             status_code=status.HTTP_201_CREATED,
             description="The answer holds the key's secret, shown this once: only its hash "
                         "is stored.")
def create_key(request: KeyRequest, store: StoreDep, verifier: VerifierDep) -> CreatedKey:
    key, secret = store.keys.create(request.name, request.scopes)
    verifier.key_created()
    return CreatedKey(**KeyInfo.of(key).model_dump(), secret=secret)


@router.delete("/{key_id}", summary="Revoke an API key", response_model=KeyInfo,
               description="The key is refused from now on by this process, and by other "
                           "processes within `key_cache_seconds`.",
               responses={404: {"description": "No such key."}})
def revoke_key(key_id: Annotated[str, Path(max_length=64)], store: StoreDep,
               verifier: VerifierDep) -> KeyInfo:
    if store.keys.get(key_id) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND,
                            detail=f"no API key {key_id!r}; GET /keys lists the keys")
    key = store.keys.revoke(key_id)
    verifier.forget(key_id)
    return KeyInfo.of(key)
