-- Counts the case projection keeps so that the board's cards, drill-downs
-- and accountability table sum a few rows instead of counting clocks.
--
-- Open clocks per kind of case, division and stage: `breached` those whose
-- breach is recorded, `running` the others. `division` is '' where the
-- clock names none.
CREATE TABLE sla_open_counts
(
    aggregate_type text    NOT NULL,
    division       text    NOT NULL,
    stage          text    NOT NULL,
    running        integer NOT NULL,
    breached       integer NOT NULL,
    PRIMARY KEY (aggregate_type, division, stage)
) STRICT;

INSERT INTO sla_open_counts (aggregate_type, division, stage, running, breached)
SELECT aggregate_type, coalesce(division, ''), stage, sum(status <> 'breached'), sum(status = 'breached')
FROM sla_clocks
WHERE stopped_at IS NULL
GROUP BY 1, 2, 3;

-- Breached clocks (open or stopped late) per division, body and person
-- holding the case when the due time passed ('' where none is named).
CREATE TABLE sla_breach_holders
(
    division text    NOT NULL,
    body     text    NOT NULL,
    person   text    NOT NULL,
    breached integer NOT NULL,
    PRIMARY KEY (division, body, person)
) STRICT;

INSERT INTO sla_breach_holders (division, body, person, breached)
SELECT coalesce(breach_division, division, ''), coalesce(breach_body, body, ''),
       coalesce(breach_person, person, ''), count(*)
FROM sla_clocks
WHERE status = 'breached'
GROUP BY 1, 2, 3;

-- Running clocks the timers have not marked breached, by due time: what is
-- past due but not yet swept, and what is due soon, without reading the
-- breached ones.
CREATE INDEX sla_clocks_unbreached_by_due
    ON sla_clocks (due_at) WHERE stopped_at IS NULL AND breached_at IS NULL;
