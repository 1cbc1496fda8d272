#!/usr/bin/env bash
# Run the test suite; pytest's exit code 5 ("no tests collected") is a failure, never a pass.
#
#   scripts/run_tests.sh [pytest options]   the whole suite, in two phases: unit, service and
#                                            browser on TEST_WORKERS processes (default 2),
#                                            then students, bench and stack one at a time (they use
#                                            every core and measure)
#   scripts/run_tests.sh PATH... [options]   just those tests, as pytest would
set -uo pipefail
cd "$(dirname "$0")/.."

pytest_() { .venv/bin/python -m pytest -ra "$@"; }

if [ "$#" -gt 0 ] && [[ "$1" != -* ]]; then
  pytest_ "$@"
  rc=$?
  [ "$rc" -eq 5 ] && { echo "error: pytest collected no tests" >&2; exit 1; }
  exit "$rc"
fi
# --durations: the slowest tests in the log, to keep the whole run within CI's time budget
pytest_ tests/unit tests/service tests/browser -n "${TEST_WORKERS:-2}" --dist loadscope \
  --durations=10 "$@"
first=$?
pytest_ tests/students tests/bench tests/stack --durations=15 "$@"
second=$?
# A filter (-k, -m) may leave one phase empty (5), never both.
if [ "$first" -eq 5 ] && [ "$second" -eq 5 ]; then
  echo "error: pytest collected no tests" >&2
  exit 1
fi
for rc in "$first" "$second"; do
  [ "$rc" -eq 0 ] || [ "$rc" -eq 5 ] || exit "$rc"
done
exit 0
