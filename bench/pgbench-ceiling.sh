#!/usr/bin/env bash
# The PostgreSQL ceiling for one command's append: pgbench running, at the
# engine's concurrency, a transaction of the same shape as the engine's
# append (one INSERT of the events one command writes, into a table shaped
# like the event log), on the same server.
#
#   bench/pgbench-ceiling.sh DATABASE_URL CLIENTS SECONDS EVENTS_PER_COMMAND
#
# Prints pgbench's report; `mediation-bench` (bench/src/ceiling.rs, which
# embeds this script) reads its "tps = " line.
set -euo pipefail

url=${1:?usage: pgbench-ceiling.sh DATABASE_URL CLIENTS SECONDS EVENTS_PER_COMMAND}
clients=${2:-16}
seconds=${3:-10}
events=${4:-1}

psql "$url" -q -v ON_ERROR_STOP=1 <<'SQL'
DROP TABLE IF EXISTS bench_ceiling;
-- The event log's columns, keys and defaults; the position comes from a
-- sequence instead of the engine's trigger.
CREATE TABLE bench_ceiling
(
    aggregate_type text        NOT NULL,
    aggregate_id   text        NOT NULL,
    sequence       bigint      NOT NULL,
    event_type     text        NOT NULL,
    event_version  text        NOT NULL,
    payload        jsonb       NOT NULL,
    metadata       jsonb       NOT NULL,
    position       bigserial   NOT NULL,
    event_id       uuid        NOT NULL DEFAULT gen_random_uuid(),
    recorded_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (aggregate_type, aggregate_id, sequence)
);
CREATE UNIQUE INDEX bench_ceiling_by_position ON bench_ceiling (position);
SQL

script=$(mktemp)
trap 'rm -f "$script"' EXIT
{
    # A new case id per transaction, as the engine appends to many cases.
    echo '\set case random(1, 1000000000000)'
    printf 'INSERT INTO bench_ceiling (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) VALUES '
    for ((i = 1; i <= events; i++)); do
        ((i > 1)) && printf ', '
        printf "('Dispute', 'c-' || :client_id || '-' || :case, %d, 'DisputeDispatched', '1.0', " "$i"
        printf "'{\"DisputeDispatched\": {\"body\": {\"id\": \"committee-990101101201\", \"name\": \"Mediation Committee\", \"kind\": \"Peoples\"}, \"mediator\": \"Mediator Wu\", \"actor\": \"clerk-1\", \"at\": \"2026-03-02T01:00:00Z\"}}', "
        printf "'{\"rpc\": \"DispatchDispute\", \"division\": \"990101101201\", \"agency\": \"local\", \"request_id\": \"3f1c0a52-4f2e-4a8e-9a47-1f0f0e8a7c11\", \"request_hash\": \"9b74c9897bac770ffc029102a200c5de\", \"command_id\": \"a4d3c2b1-0f9e-4d8c-8b7a-6a5b4c3d2e1f\"}')"
    done
    echo ';'
} >"$script"

pgbench "$url" --no-vacuum --protocol=prepared --client="$clients" \
    --jobs="$(( clients < 2 ? clients : 2 ))" --time="$seconds" --file="$script"
psql "$url" -q -c 'DROP TABLE bench_ceiling'
