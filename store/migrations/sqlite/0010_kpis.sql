-- The supervisors' figures; see the PostgreSQL migration of the same name
-- for the design.

ALTER TABLE statistics RENAME COLUMN received TO moved_in;
ALTER TABLE statistics ADD COLUMN mediations_moved integer NOT NULL DEFAULT 0;
ALTER TABLE statistics ADD COLUMN agreed_at_or_below_origin integer NOT NULL DEFAULT 0;
ALTER TABLE statistics ADD COLUMN agreements_followed_up integer NOT NULL DEFAULT 0;
ALTER TABLE statistics ADD COLUMN agreements_performed integer NOT NULL DEFAULT 0;
ALTER TABLE statistics ADD COLUMN evaluations integer NOT NULL DEFAULT 0;
ALTER TABLE statistics ADD COLUMN satisfied integer NOT NULL DEFAULT 0;
ALTER TABLE statistics ADD COLUMN basically_satisfied integer NOT NULL DEFAULT 0;

ALTER TABLE statistics_cases ADD COLUMN origin_level text;
ALTER TABLE statistics_cases ADD COLUMN mediating integer NOT NULL DEFAULT 0;
ALTER TABLE statistics_cases ADD COLUMN agreement_division text;
ALTER TABLE statistics_cases ADD COLUMN agreement_level text;
ALTER TABLE statistics_cases ADD COLUMN agreement_period text;
ALTER TABLE statistics_cases ADD COLUMN agreement_followed_up integer NOT NULL DEFAULT 0;
ALTER TABLE statistics_cases ADD COLUMN agreement_performed integer NOT NULL DEFAULT 0;

-- Counted again from the log's first event (see the PostgreSQL migration).
DELETE FROM statistics;
DELETE FROM statistics_cases;
DELETE FROM projection_checkpoints WHERE name = 'statistics';

CREATE TABLE petition_statistics
(
    division                text    NOT NULL,
    level                   text    NOT NULL,
    period                  text    NOT NULL,
    received                integer NOT NULL DEFAULT 0,
    acceptance_decided      integer NOT NULL DEFAULT 0,
    acceptance_in_time      integer NOT NULL DEFAULT 0,
    opinions                integer NOT NULL DEFAULT 0,
    opinions_on_time        integer NOT NULL DEFAULT 0,
    review_opinions         integer NOT NULL DEFAULT 0,
    review_opinions_on_time integer NOT NULL DEFAULT 0,
    evaluations             integer NOT NULL DEFAULT 0,
    satisfied               integer NOT NULL DEFAULT 0,
    basically_satisfied     integer NOT NULL DEFAULT 0,
    PRIMARY KEY (division, level, period)
) STRICT;

CREATE INDEX petition_statistics_by_period ON petition_statistics (period, division);

CREATE TABLE petition_statistics_cases
(
    case_id     text    PRIMARY KEY,
    division    text    NOT NULL,
    level       text    NOT NULL,
    triage_late integer NOT NULL DEFAULT 0,
    version     integer NOT NULL
) STRICT;
