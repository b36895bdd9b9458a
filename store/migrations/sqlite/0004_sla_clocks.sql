-- SLA clocks; see the PostgreSQL migration of the same name. Instants are
-- stored as sqlx writes them, one format throughout, so they compare as text.
CREATE TABLE sla_clocks
(
    aggregate_type text    NOT NULL,
    case_id        text    NOT NULL,
    stage          text    NOT NULL,
    started_at     text    NOT NULL,
    due_at         text    NOT NULL,
    paused_seconds integer NOT NULL,
    warn_50_at     text    NOT NULL,
    warn_75_at     text    NOT NULL,
    provisional    integer NOT NULL,
    division       text,
    level          text,
    body           text,
    person         text,
    status         text    NOT NULL,
    warned_50_at   text,
    warned_75_at   text,
    breached_at    text,
    stopped_at     text,
    PRIMARY KEY (aggregate_type, case_id, stage, started_at)
) STRICT;

CREATE INDEX sla_clocks_running_by_due ON sla_clocks (due_at) WHERE stopped_at IS NULL;
CREATE INDEX sla_clocks_by_division ON sla_clocks (division, due_at);
CREATE INDEX sla_clocks_by_body ON sla_clocks (body, status);
