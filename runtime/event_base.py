"""What every event is: a frozen pydantic model, in heavy mode tagged with its trajectory."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class EventBase(BaseModel):
    # Each event type's validator is built when the type is first used, not at import: a run
    # uses a few of the forty, and building them all cost every start of ponder 0.2 s.
    model_config = ConfigDict(frozen=True, defer_build=True)

    trajectory: int | None = None
    """In heavy mode, which of the parallel trajectories (1..N) the event belongs to."""
