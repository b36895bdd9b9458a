-- Read models for supervisors, kept from the global log by the projection
-- runner (projections/src/{statistics,caseload,petitioners}.rs). Never
-- written by commands; a rebuild writes copies of these tables from
-- position 0 and swaps them in. Instants are stored to the millisecond on
-- both backends, so that both hold the same rows.

-- Escalation and resolution: event counts per division, level and month
-- (the calendar month of the event's time in +08:00, as 'YYYY-MM'). Which
-- event counts where is documented in projections/src/statistics.rs. The
-- rates are computed when queried, as ratios of sums, never stored.
CREATE TABLE statistics
(
    division                  text   NOT NULL,
    level                     text   NOT NULL,
    period                    text   NOT NULL,
    registered                bigint NOT NULL DEFAULT 0,
    received                  bigint NOT NULL DEFAULT 0,
    reopened                  bigint NOT NULL DEFAULT 0,
    escalated_up              bigint NOT NULL DEFAULT 0,
    taken_over                bigint NOT NULL DEFAULT 0,
    sent_down                 bigint NOT NULL DEFAULT 0,
    agreements                bigint NOT NULL DEFAULT 0,
    terminations              bigint NOT NULL DEFAULT 0,
    referred                  bigint NOT NULL DEFAULT 0,
    closed                    bigint NOT NULL DEFAULT 0,
    closed_at_or_below_intake bigint NOT NULL DEFAULT 0,
    closed_on_time            bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (division, level, period)
);

-- Queries ask for a division subtree (a range of codes, served by the
-- primary key) and a range of months; this serves a narrow month range
-- over a wide subtree.
CREATE INDEX statistics_by_period ON statistics (period, division);

-- Where each dispute stands, as far as the counters need it: the division
-- and level holding it (to attribute agreements, terminations and
-- referrals, whose events do not name them) and the handling deadline in
-- force (to count a closure as on time).
CREATE TABLE statistics_cases
(
    case_id      text        PRIMARY KEY,
    division     text        NOT NULL,
    level        text        NOT NULL,
    handling_due timestamptz,
    version      bigint      NOT NULL
);

-- Caseload: one row per open dispute, held by a mediation body once
-- dispatched (body_id set) or by its division while awaiting dispatch
-- (body_id NULL). opened_at is when the current holder got the case: the
-- dispatch, or the registration, move or reopening that brought it to its
-- level. The row goes when the case is closed or referred to a legal
-- channel, and changes when it moves level or is dispatched elsewhere.
CREATE TABLE caseload
(
    case_id   text        PRIMARY KEY,
    division  text        NOT NULL,
    level     text        NOT NULL,
    body_id   text,
    body_name text,
    mediator  text,
    opened_at timestamptz NOT NULL
);

CREATE INDEX caseload_by_division ON caseload (division, body_id, mediator, opened_at);

-- Petitioner history: one row per received petition. The petitioner is
-- kept only as a SHA-256 of the normalised name and contact (personal
-- data, never stored here in clear); the facts only as a SHA-256 of their
-- normalised text; the complained unit normalised.
CREATE TABLE petitioner_history
(
    case_id         text        PRIMARY KEY,
    petitioner_key  text        NOT NULL,
    complained_unit text,
    facts_hash      text        NOT NULL,
    division        text        NOT NULL,
    received_at     timestamptz NOT NULL,
    channel         text        NOT NULL,
    competent_level text        NOT NULL,
    visited_level   text,
    skipped_level   boolean     NOT NULL DEFAULT false,
    repeat_of       text
);

CREATE INDEX petitioner_history_by_petitioner ON petitioner_history (petitioner_key, received_at);
CREATE INDEX petitioner_history_by_unit_facts
    ON petitioner_history (complained_unit, facts_hash, received_at);
CREATE INDEX petitioner_history_by_division ON petitioner_history (division, received_at);
CREATE INDEX petitioner_history_skipped
    ON petitioner_history (division, received_at) WHERE skipped_level;
