"""``ponder exec --output-schema FILE``: a final answer that is JSON matching a JSON Schema.

The model is told the schema with the task; its answer is parsed (a fenced ```json block is
accepted) and validated. An answer that does not match is sent back once or twice with the
validator's complaint before the run is called a failure.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from ponder.app.exit_codes import UsageError

RETRIES = 2
_FENCE = re.compile(r"^\s*```(?:json)?\s*\n(.*?)\n\s*```\s*$", re.DOTALL)


def load_schema(path: Path) -> dict[str, Any]:
    import jsonschema  # imported here: only runs that ask for a schema pay for it

    try:
        schema = json.loads(path.read_text())
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except OSError as error:
        raise UsageError(f"--output-schema: cannot read {path}: {error.strerror}") from None
    except ValueError as error:
        raise UsageError(f"--output-schema: {path} is not JSON: {error}") from None
    except jsonschema.SchemaError as error:
        raise UsageError(f"--output-schema: {path} is not a JSON Schema: {error.message}") from None
    if not isinstance(schema, dict):
        raise UsageError(f"--output-schema: {path} must hold a JSON object")
    return schema


def with_schema(task: str, schema: dict[str, Any]) -> str:
    return (
        f"{task}\n\nWhen you are done, give your final answer as one JSON value that matches this "
        f"JSON Schema, and nothing else:\n```json\n{json.dumps(schema, indent=2)}\n```"
    )


def parse_answer(answer: str, schema: dict[str, Any]) -> tuple[Any, str | None]:
    """The answer's JSON value, and why it does not match the schema (None when it does)."""
    import jsonschema

    fenced = _FENCE.match(answer)
    text = fenced.group(1) if fenced else answer
    try:
        value = json.loads(text)
    except ValueError as error:
        return None, f"it is not JSON ({error})"
    problem = jsonschema.exceptions.best_match(
        jsonschema.validators.validator_for(schema)(schema).iter_errors(value)
    )
    if problem is not None:
        where = "/".join(str(part) for part in problem.absolute_path) or "the top level"
        return value, f"at {where}: {problem.message}"
    return value, None


def retry_task(problem: str) -> str:
    return (
        f"Your final answer does not match the JSON Schema: {problem}. Reply with only the "
        "corrected JSON value."
    )
