"""The plan panel: the model's plan above the prompt, updated in place as the run goes."""

from __future__ import annotations

from textual.content import Content
from textual.widgets import Static

from ponder.app.wording.events import plan_lines
from ponder.runtime.events import PlanUpdated

STYLES = {"completed": "$text-muted", "in_progress": "$accent bold", "pending": ""}


class PlanPanel(Static):
    def show(self, event: PlanUpdated) -> None:
        """The plan as the model last gave it; an empty plan hides the panel."""
        title = "Plan" + (f": {event.explanation}" if event.explanation else "")
        lines = [Content.styled(title, "bold")]
        for line, item in zip(plan_lines(event), event.plan, strict=True):
            lines.append(Content.styled(line, STYLES[item.status]))
        self.update(Content("\n").join(lines))
        self.display = bool(event.plan)
