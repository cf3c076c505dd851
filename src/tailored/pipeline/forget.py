"""Forgetting users in a saved artifact: the rewrite an erasure does on disk.

:func:`forget_in_artifact` loads a pipeline or a bare model artifact, removes the users
(:meth:`Pipeline.forget_users <tailored.pipeline.Pipeline.forget_users>`) and, when it
held any of them, replaces the directory with one written afresh, so that no file under
it still holds their ids (a rewrite in place could leave the old bytes in a file
another process keeps open, or a half-written file after a crash).
"""

from __future__ import annotations

import fcntl
import os
import re
import secrets
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from tailored.models.artifact import read_meta
from tailored.models.base import Forgetting

from .pipeline import ARTIFACT_KIND, Pipeline


def forget_in_artifact(path: str | Path, user_ids: str | Sequence[str]) -> Forgetting:
    """Remove ``user_ids`` from the artifact directory ``path``; what was forgotten.

    A pipeline artifact stays a pipeline, a bare model a bare model. When the artifact
    holds none of the users nothing is written. Otherwise the new artifact is written
    into a sibling directory, then swapped in by two renames (old ->
    ``<name>.old-<random>``, new -> ``<name>``) and the old one deleted. A loader that
    opens ``path`` between the two renames finds no artifact for that instant and must
    retry; one that already opened the old files reads the old artifact whole.

    Examples
    --------
    >>> import tempfile
    >>> from tailored.models import Popular
    >>> from tailored.testing import checkerboard
    >>> path = Popular().fit(checkerboard()).save(Path(tempfile.mkdtemp()) / "popular")
    >>> forget_in_artifact(path, ["a000", "nobody"])
    Forgetting(known=1, exact=True)
    >>> forget_in_artifact(path, ["a000"])
    Forgetting(known=0, exact=True)
    """
    directory = Path(path)
    with _rewriting(directory):
        bare_model = read_meta(directory).get("kind") != ARTIFACT_KIND
        pipeline = Pipeline.load(directory)
        forgetting = pipeline.forget_users(user_ids)
        if forgetting.known:
            fresh = Path(tempfile.mkdtemp(prefix=f".{directory.name}.new-",
                                          dir=directory.parent))
            try:
                (pipeline.scorer if bare_model else pipeline).save(fresh)
                os.chmod(fresh, directory.stat().st_mode & 0o7777)  # mkdtemp's: owner only
                old = directory.with_name(f"{directory.name}.old-{secrets.token_hex(4)}")
                directory.rename(old)
                try:
                    fresh.rename(directory)
                except BaseException:
                    old.rename(directory)  # the old artifact back rather than none
                    raise
            except BaseException:
                shutil.rmtree(fresh, ignore_errors=True)
                raise
            shutil.rmtree(old)
    return forgetting


@contextmanager
def _rewriting(directory: Path) -> Iterator[None]:
    """Hold the rewrite lock of the directory's parent, and first delete what an
    interrupted earlier rewrite left there: an old copy still holds the users it was
    erasing.

    One rewrite at a time: two of one artifact at once would each load it before the
    other's swap, and the last swap would bring back the users the first one removed.
    """
    parent = os.open(directory.parent, os.O_RDONLY)
    try:
        fcntl.flock(parent, fcntl.LOCK_EX)  # released when the descriptor closes
        leftover = re.compile(rf"({re.escape(directory.name)}\.old-[0-9a-f]{{8}}"
                              rf"|\.{re.escape(directory.name)}\.new-.+)")
        for sibling in directory.parent.iterdir():
            if sibling.is_dir() and leftover.fullmatch(sibling.name):
                shutil.rmtree(sibling)
        yield
    finally:
        os.close(parent)


__all__ = ["forget_in_artifact"]
