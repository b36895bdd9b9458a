-- Read models for supervisors; see the PostgreSQL migration of the same
-- name for the design. Instants are text in the form
-- '%Y-%m-%dT%H:%M:%fZ' (UTC, milliseconds), so that they sort as text and
-- compare with SQLite's own strftime output.

CREATE TABLE statistics
(
    division                  text    NOT NULL,
    level                     text    NOT NULL,
    period                    text    NOT NULL,
    registered                integer NOT NULL DEFAULT 0,
    received                  integer NOT NULL DEFAULT 0,
    reopened                  integer NOT NULL DEFAULT 0,
    escalated_up              integer NOT NULL DEFAULT 0,
    taken_over                integer NOT NULL DEFAULT 0,
    sent_down                 integer NOT NULL DEFAULT 0,
    agreements                integer NOT NULL DEFAULT 0,
    terminations              integer NOT NULL DEFAULT 0,
    referred                  integer NOT NULL DEFAULT 0,
    closed                    integer NOT NULL DEFAULT 0,
    closed_at_or_below_intake integer NOT NULL DEFAULT 0,
    closed_on_time            integer NOT NULL DEFAULT 0,
    PRIMARY KEY (division, level, period)
) STRICT;

CREATE INDEX statistics_by_period ON statistics (period, division);

CREATE TABLE statistics_cases
(
    case_id      text    PRIMARY KEY,
    division     text    NOT NULL,
    level        text    NOT NULL,
    handling_due text,
    version      integer NOT NULL
) STRICT;

CREATE TABLE caseload
(
    case_id   text PRIMARY KEY,
    division  text NOT NULL,
    level     text NOT NULL,
    body_id   text,
    body_name text,
    mediator  text,
    opened_at text NOT NULL
) STRICT;

CREATE INDEX caseload_by_division ON caseload (division, body_id, mediator, opened_at);

CREATE TABLE petitioner_history
(
    case_id         text    PRIMARY KEY,
    petitioner_key  text    NOT NULL,
    complained_unit text,
    facts_hash      text    NOT NULL,
    division        text    NOT NULL,
    received_at     text    NOT NULL,
    channel         text    NOT NULL,
    competent_level text    NOT NULL,
    visited_level   text,
    skipped_level   integer NOT NULL DEFAULT 0,
    repeat_of       text
) STRICT;

CREATE INDEX petitioner_history_by_petitioner ON petitioner_history (petitioner_key, received_at);
CREATE INDEX petitioner_history_by_unit_facts
    ON petitioner_history (complained_unit, facts_hash, received_at);
CREATE INDEX petitioner_history_by_division ON petitioner_history (division, received_at);
CREATE INDEX petitioner_history_skipped
    ON petitioner_history (division, received_at) WHERE skipped_level;
