-- SLA clocks: one row per obligation a case's holder has run, kept by the
-- case projection (same transaction and checkpoint as the case index). A
-- row is keyed by its case, stage and start; a clock re-timed by an
-- extension or a hearing keeps its row with the new due time.
CREATE TABLE sla_clocks
(
    aggregate_type text        NOT NULL,
    case_id        text        NOT NULL,
    stage          text        NOT NULL,
    started_at     timestamptz NOT NULL,
    due_at         timestamptz NOT NULL,
    paused_seconds bigint      NOT NULL,
    -- When 50% and 75% of the allowed time will have run, paused time not
    -- counted: what the timer watcher looks for.
    warn_50_at     timestamptz NOT NULL,
    warn_75_at     timestamptz NOT NULL,
    provisional    boolean     NOT NULL,
    division       text,
    level          text,
    body           text,
    person         text,
    -- running, warned_50, warned_75, breached (past due, recorded in the
    -- case's history), met (stopped in time), or breached with stopped_at
    -- set (stopped late).
    status         text        NOT NULL,
    warned_50_at   timestamptz,
    warned_75_at   timestamptz,
    breached_at    timestamptz,
    stopped_at     timestamptz,
    PRIMARY KEY (aggregate_type, case_id, stage, started_at)
);

CREATE INDEX sla_clocks_running_by_due ON sla_clocks (due_at) WHERE stopped_at IS NULL;
CREATE INDEX sla_clocks_by_division ON sla_clocks (division, due_at);
CREATE INDEX sla_clocks_by_body ON sla_clocks (body, status);
