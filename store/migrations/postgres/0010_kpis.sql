-- The supervisors' figures as DOMAIN.md and issue 12 define them
-- (projections/src/statistics.rs and petition_statistics.rs document which
-- event counts where).

-- Disputes. `received` counted disputes moved in from another division
-- (escalated, taken over, sent down), not what its name said; it is named
-- for what it counts. The API still serves it as `received` too.
ALTER TABLE statistics RENAME COLUMN received TO moved_in;
-- Mediations ended by escalation or take-over (the success rate's
-- denominator), agreements at or below the level where the dispute arose
-- (lowest-level resolution), follow-ups of agreements (performance) and
-- evaluations (satisfaction).
ALTER TABLE statistics ADD COLUMN mediations_moved bigint NOT NULL DEFAULT 0;
ALTER TABLE statistics ADD COLUMN agreed_at_or_below_origin bigint NOT NULL DEFAULT 0;
ALTER TABLE statistics ADD COLUMN agreements_followed_up bigint NOT NULL DEFAULT 0;
ALTER TABLE statistics ADD COLUMN agreements_performed bigint NOT NULL DEFAULT 0;
ALTER TABLE statistics ADD COLUMN evaluations bigint NOT NULL DEFAULT 0;
ALTER TABLE statistics ADD COLUMN satisfied bigint NOT NULL DEFAULT 0;
ALTER TABLE statistics ADD COLUMN basically_satisfied bigint NOT NULL DEFAULT 0;

-- What the new counters need to know of each dispute: the level where it
-- arose, whether a mediation is under way, and where its standing
-- agreement was counted with what its follow-ups have counted.
ALTER TABLE statistics_cases ADD COLUMN origin_level text;
ALTER TABLE statistics_cases ADD COLUMN mediating boolean NOT NULL DEFAULT false;
ALTER TABLE statistics_cases ADD COLUMN agreement_division text;
ALTER TABLE statistics_cases ADD COLUMN agreement_level text;
ALTER TABLE statistics_cases ADD COLUMN agreement_period text;
ALTER TABLE statistics_cases ADD COLUMN agreement_followed_up boolean NOT NULL DEFAULT false;
ALTER TABLE statistics_cases ADD COLUMN agreement_performed boolean NOT NULL DEFAULT false;

-- The counts kept so far lack the new columns' history, and lowest-level
-- resolution changed meaning: the read model starts again from the log's
-- first event, which the runner does on its own once its checkpoint is
-- gone (as `mediation replay --projection statistics` would, but without
-- an operator having to remember it).
DELETE FROM statistics;
DELETE FROM statistics_cases;
DELETE FROM projection_checkpoints WHERE name = 'statistics';

-- Petitions: the three rates (及时受理率, 按期办结率, 群众满意率) per
-- division, competent level and month (+08:00, 'YYYY-MM').
CREATE TABLE petition_statistics
(
    division                text   NOT NULL,
    level                   text   NOT NULL,
    period                  text   NOT NULL,
    received                bigint NOT NULL DEFAULT 0,
    acceptance_decided      bigint NOT NULL DEFAULT 0,
    acceptance_in_time      bigint NOT NULL DEFAULT 0,
    opinions                bigint NOT NULL DEFAULT 0,
    opinions_on_time        bigint NOT NULL DEFAULT 0,
    review_opinions         bigint NOT NULL DEFAULT 0,
    review_opinions_on_time bigint NOT NULL DEFAULT 0,
    evaluations             bigint NOT NULL DEFAULT 0,
    satisfied               bigint NOT NULL DEFAULT 0,
    basically_satisfied     bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (division, level, period)
);

CREATE INDEX petition_statistics_by_period ON petition_statistics (period, division);

-- Where each petition belongs, and whether its triage was late (an
-- objection sends it back to triage against the same deadline).
CREATE TABLE petition_statistics_cases
(
    case_id     text    PRIMARY KEY,
    division    text    NOT NULL,
    level       text    NOT NULL,
    triage_late boolean NOT NULL DEFAULT false,
    version     bigint  NOT NULL
);
