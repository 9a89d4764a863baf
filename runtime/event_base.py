"""What every event is: a frozen pydantic model, in heavy mode tagged with its trajectory."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class EventBase(BaseModel):
    model_config = ConfigDict(frozen=True)

    trajectory: int | None = None
    """In heavy mode, which of the parallel trajectories (1..N) the event belongs to."""
