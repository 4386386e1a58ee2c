#!/usr/bin/env bash
# The full test suite, on both AiiDA back ends. Pass extra pytest options through, e.g. -m "not slow".
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

# PostgreSQL and RabbitMQ run on this machine; start them if something stopped them.
if ! pg_isready -q -h localhost 2>/dev/null; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start || true
fi
if ! rabbitmqctl -q status >/dev/null 2>&1; then rabbitmq-server -detached || true; sleep 5; fi

echo "=== ruff (lint) ==="
python -m ruff check --output-format concise .

echo "=== tests/slem without AiiDA (fast subset; scripts/no_aiida makes 'import aiida' fail) ==="
PYTHONPATH="$PWD/scripts/no_aiida${PYTHONPATH:+:$PYTHONPATH}" python -c "import aiida" 2>/dev/null \
    && { echo "scripts/no_aiida did not block 'import aiida'"; exit 1; }
PYTHONPATH="$PWD/scripts/no_aiida${PYTHONPATH:+:$PYTHONPATH}" \
    python -m pytest tests/slem -m "not slow" -q -p no:cacheprovider

echo "=== embedded profile (SQLite + ZeroMQ): whole suite ==="
AIIDA_SLEM_TEST_BACKEND=embedded python -m pytest tests -ra -p no:cacheprovider "$@"
echo "=== PostgreSQL + RabbitMQ profile: AiiDA tests ==="
AIIDA_SLEM_TEST_BACKEND=psql python -m pytest tests/aiida -ra -p no:cacheprovider "$@"
