"""Live watch: object-written events for an execution, replayed from storage, then
followed as they happen, until the execution's record reaches a terminal status."""

from factflow_storage.watch.events import EXECUTION_COMPLETED, OBJECT_CREATED, CompletedEvent, ObjectEvent
from factflow_storage.watch.stream import watch_events

__all__ = ["EXECUTION_COMPLETED", "OBJECT_CREATED", "CompletedEvent", "ObjectEvent", "watch_events"]
