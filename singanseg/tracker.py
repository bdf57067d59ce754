"""Experiment tracking as the libraries see it: a small logger handed in by the caller.

The method (`singanseg.train_many`, `singanseg.train_many_batched`) and the baseline GANs log
per-scale and per-iteration numbers, but they do not know where the numbers go: the
pipeline hands in its MLflow logger (`pipeline.infra.mlflow_tracker.MlflowTracker`), a library user
hands in nothing (`NULL_TRACKER`) or an implementation of their own. A tracker travels
to executor workers inside task kwargs, so an implementation must be picklable (a run id
and a store address, not an open client).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class Tracker(Protocol):
    """Log params and metrics of one run, and open child runs (one per model or subset)."""

    def log_params(self, params: Mapping[str, Any]) -> None: ...

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None: ...

    def child(
        self, name: str, tags: Mapping[str, str] | None = None
    ) -> contextlib.AbstractContextManager[Tracker]:
        """A context manager yielding the child run's tracker; the child ends (FAILED on an exception) on exit."""
        ...


class NullTracker:
    """Logs nothing: the default when no tracker is handed in."""

    def log_params(self, params: Mapping[str, Any]) -> None:
        pass

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        pass

    @contextlib.contextmanager
    def child(self, name: str, tags: Mapping[str, str] | None = None) -> Iterator[NullTracker]:
        yield self

    def __bool__(self) -> bool:  # `if tracker:` reads "is anything tracked"
        return False

    def __eq__(self, other: object) -> bool:
        return isinstance(other, NullTracker)

    def __hash__(self) -> int:
        return hash(NullTracker)


NULL_TRACKER = NullTracker()


def or_null(tracker: Tracker | None) -> Tracker:
    return NULL_TRACKER if tracker is None else tracker


__all__ = ["NULL_TRACKER", "NullTracker", "Tracker", "or_null"]
