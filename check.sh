#!/usr/bin/env bash
# Every check CI runs, in order: lint, format, types, the dependency rule, then the tests.
# Extra arguments go to pytest (./check.sh -k parser).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
bin=${PONDER_VENV:-.venv}/bin
[ -x "$bin/pytest" ] || { echo "check.sh: no dev tools in $bin; run ./install.sh --dev first" >&2; exit 2; }

echo "== ruff"
"$bin/ruff" check .
"$bin/ruff" format --check .

echo "== mypy"
# The code folders install as ponder.* through an import mapping that mypy cannot follow, so
# mypy reads them through a throwaway ponder/ folder of links.
view=$(mktemp -d)
trap 'rm -rf "$view"' EXIT
mkdir "$view/ponder"
for folder in app model runtime sandbox themes; do ln -s "$PWD/$folder" "$view/ponder/$folder"; done
MYPYPATH="$view" "$bin/mypy" --strict -p ponder.model -p ponder.sandbox -p ponder.runtime
MYPYPATH="$view" "$bin/mypy" -p ponder.app

echo "== import rules"
"$bin/lint-imports"

echo "== pytest"
"$bin/pytest" "$@"
