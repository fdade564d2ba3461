#!/usr/bin/env bash
# The main job, offline: start the bundled sandbox of the vendor APIs, point the default
# connections at it, print every vendor's balance through the airflow-credits CLI, then run
# the example DAGs with dag.test() against it: each preflight decision, then the credit history
# landed into an embedded SQLite warehouse.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
DEMO=.demo
mkdir -p "$DEMO"
export AIRFLOW_HOME="$PWD/$DEMO/airflow-home"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
rm -f "$DEMO/sandbox.env"

# Its exports include the examples' SQLite warehouse and reservation database, in $DEMO.
"$BIN/airflow-credits" sandbox --port 0 --data-dir "$PWD/$DEMO" --env-file "$DEMO/sandbox.env" \
  > "$DEMO/sandbox.log" 2>&1 &
SANDBOX_PID=$!
trap 'kill $SANDBOX_PID 2>/dev/null || true; wait $SANDBOX_PID 2>/dev/null || true' EXIT

for _ in $(seq 1 100); do
  [ -s "$DEMO/sandbox.env" ] && break
  kill -0 "$SANDBOX_PID" 2>/dev/null || { cat "$DEMO/sandbox.log"; exit 1; }
  sleep 0.1
done
[ -s "$DEMO/sandbox.env" ] || { echo "sandbox did not start"; cat "$DEMO/sandbox.log"; exit 1; }
# shellcheck disable=SC1091
source "$DEMO/sandbox.env"
head -n 1 "$DEMO/sandbox.log"
echo

for conn in leadmagic_default localleads_default truemail_default credit_api_default; do
  "$BIN/airflow-credits" balance "$conn"
  echo
done

echo "Running the example DAGs with dag.test() against the sandbox (task logs: $DEMO/examples.log)..."
SANDBOX_URL=$(sed -n 's/^Credits sandbox serving on \(http[^ ]*\).*/\1/p' "$DEMO/sandbox.log")
export AIRFLOW__CORE__DAGS_FOLDER="$PWD/example_dags"
export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN="sqlite:///$AIRFLOW_HOME/airflow.db"
export CREDITS_EXAMPLE_POKE_INTERVAL=1
rm -f "$DEMO/warehouse.db" "$DEMO/reservations.db"
"$BIN/airflow-credits" budgets import example_dags/team_budgets.yaml --conn-id credits_reservations
"$BIN/airflow-credits" alerts import example_dags/team_alerts.yaml --conn-id credits_reservations
echo
if ! "$BIN/python" scripts/run_examples.py "$SANDBOX_URL" "$DEMO/summary.txt" > "$DEMO/examples.log" 2>&1; then
  tail -n 40 "$DEMO/examples.log"
  exit 1
fi
cat "$DEMO/summary.txt"
echo
"$BIN/airflow-credits" runway localleads_default --sql-conn-id credits_warehouse
echo
"$BIN/airflow-credits" budgets list --conn-id credits_reservations
echo
"$BIN/airflow-credits" alerts history --conn-id credits_reservations
echo
echo "Warehouse (SQLite): $DEMO/warehouse.db; credit reservations and usage (SQLite): $DEMO/reservations.db"
