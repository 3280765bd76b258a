"""sluice: write Sluice transforms in Python.

A transform filters, reshapes or routes the change events that Sluice reads from the MySQL
binlog before they reach Kafka. It is a WebAssembly component (built with componentize-py)
that Sluice runs in a sandbox. The API is the Rust SDK's (`guest-sdk/API.md` compares them):

    import sluice

    @sluice.transform
    class Redact:
        def __init__(self, config: sluice.Config):
            self.column = config.get("column", "email")

        def interest(self) -> sluice.Interest:
            # Only this column's values cross into the sandbox.
            return sluice.Interest.columns([self.column])

        def process(self, event: sluice.Event) -> None:
            if event.get(self.column) is not None:
                event.set(self.column, "<redacted>")

Test it natively with `sluice.testing.Harness` under pytest, build it with
`python -m sluice.build app.py -o app.wasm`, and run it with `sluice transform test` or
`sluice run`. One object is built per instance, so state kept on `self` lasts across events
and batches. Raising fails the batch: a `sluice.Error` with its message, any other exception
with its type, message and traceback; the transform's failure policy decides what follows.
"""

from __future__ import annotations

import sys

from .event import Config, Error, Event, Interest, Kind, Position
from .values import Date, DateTime, Float32, Json, Time, Timestamp

__all__ = [
    "transform", "log", "Config", "Error", "Event", "Interest", "Kind", "Position",
    "Date", "DateTime", "Float32", "Json", "Time", "Timestamp",
    "TRACE", "DEBUG", "INFO", "WARN", "ERROR",
]

#: Log levels of `log`.
TRACE, DEBUG, INFO, WARN, ERROR = range(5)
_LEVEL_NAMES = ("TRACE", "DEBUG", "INFO", "WARN", "ERROR")


def _in_component() -> bool:
    """Whether componentize-py is building (or running) the component: its generated bindings
    are importable then, and only then."""
    try:
        import wit_world  # noqa: F401
    except ImportError:
        return False
    return True


def transform(cls):
    """Makes `cls` the module's transform: the one attribute a transform needs.

    `cls(config)` builds it once per instance; `interest()` (optional) says what it needs to
    see; `process(event)` handles each event. Under componentize-py this also defines the
    module's `WitWorld`, the class the component exports; under plain Python it only returns
    `cls`, for `sluice.testing`."""
    if not callable(getattr(cls, "process", None)):
        raise TypeError(f"{cls.__name__} needs a process(self, event) method")
    if _in_component():
        from . import _component

        module = sys.modules[cls.__module__]
        if getattr(module, "WitWorld", None) is not None:
            raise TypeError(f"{cls.__module__} already exports a transform: one per component")
        module.WitWorld = _component.world(cls)
    return cls


def log(level: int, message: str) -> None:
    """Writes to the host's log, tagged with the transform's name (stderr when run natively)."""
    if _in_component():
        from . import _component

        _component.log(level, message)
    else:
        print(f"[{_LEVEL_NAMES[level]}] {message}", file=sys.stderr)
