"""Validation on several cores, for `hub validate`: many files shared out among worker processes, and a large
Bundle validated in parts (`hub.fhir.parts`), one a core, into the one outcome a single walk gives.

The workers are forked from the command, so they start with its loaded packages, compiled profiles and parsed
input, and send back only findings. A pool that cannot start or breaks falls back to validating in this
process: more cores make a run faster, never different.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import BrokenExecutor, ProcessPoolExecutor
from typing import Any

from hub.core.outcome import Outcome
from hub.fhir.parts import Part, Share, merge
from hub.fhir.validator import Validator

PARTED_ENTRIES = 1000  # about where parts begin to pay: 1,000 FUT entries took 2.05 s parted, 2.12 s in one process
LEAD_ENTRIES = 200  # the entries walked before the workers fork: enough to meet the profiles a Bundle uses

_work: Any = None  # what the forked workers do, set before they are forked: they inherit it


def cores() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0))


def _pool(workers: int) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"))


def _part(index: int) -> Share:
    validator, resource, profiles, context, part = _work
    return validator.validate_part(resource, Part(index, part.count, part.lead), profiles,  # type: ignore[no-any-return]
                                   context=context)


def validate_in_parts(validator: Validator, resource: dict[str, Any], profiles: tuple[str, ...],
                      context: str | None, jobs: int) -> Outcome:
    """`validator.validate(resource, profiles)` on `jobs` cores: this process walks the lead part first, with
    the Bundle's first entries (compiling the profiles they use, which the workers forked after it inherit),
    then one of the others while `jobs - 1` workers walk the rest."""
    global _work
    lead = min(LEAD_ENTRIES, len(resource["entry"]) // (4 * jobs))
    _work = (validator, resource, profiles, context, Part(0, jobs + 1, lead))
    try:
        shares = [_part(0)]
        with _pool(jobs - 1) as pool:
            others = [pool.submit(_part, k) for k in range(2, jobs + 1)]
            shares.append(_part(1))
            return merge(shares + [f.result() for f in others])
    except (BrokenExecutor, OSError):
        return validator.validate(resource, profiles, context=context)
    finally:
        _work = None


def _one(item: Any) -> Any:
    return _work(item)


def shared_out(work: Callable[[Any], Any], items: Iterable[Any], jobs: int) -> Iterator[Any]:
    """`work` of each item, in order, on `jobs` worker processes; in this process when the pool breaks (what
    was done already is not done again)."""
    global _work
    todo = list(items)
    done = 0
    _work = work
    try:
        with _pool(jobs) as pool:
            for result in pool.map(_one, todo, chunksize=max(1, min(16, len(todo) // (jobs * 4)))):
                done += 1
                yield result
    except (BrokenExecutor, OSError):
        for item in todo[done:]:
            yield work(item)
    finally:
        _work = None
