"""The plan panel: the model's plan above the prompt, updated in place as the run goes."""

from __future__ import annotations

from textual.content import Content
from textual.widgets import Static

from ponder.app.wording.events import plan_lines
from ponder.runtime.events import Event, PlanUpdated, RunStarted

STYLES = {"completed": "$text-muted", "in_progress": "$accent bold", "pending": ""}


class PlanPanel(Static):
    def apply(self, event: Event) -> None:
        """Follows the run: a new plan is shown, and a new task starts without the last one's."""
        if isinstance(event, PlanUpdated):
            self.show(event)
        elif isinstance(event, RunStarted):
            self.display = False

    def show(self, event: PlanUpdated) -> None:
        """The plan as the model last gave it; an empty plan hides the panel."""
        title = "Plan" + (f": {event.explanation}" if event.explanation else "")
        lines = [Content.styled(title, "bold")]
        for line, item in zip(plan_lines(event), event.plan, strict=True):
            lines.append(Content.styled(line, STYLES[item.status]))
        self.update(Content("\n").join(lines))
        self.display = bool(event.plan)
