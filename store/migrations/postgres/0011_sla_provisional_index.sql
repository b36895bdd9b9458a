-- When a year's holiday schedule is loaded, the engine looks for the
-- running clocks whose due time was counted over that year by guess, and
-- boards may list only provisional clocks. An index over just those clocks,
-- in the boards' order (due, case, stage, start), keeps both a read of the
-- few provisional clocks rather than of every clock.
CREATE INDEX sla_clocks_provisional_by_due
    ON sla_clocks (due_at, case_id, stage, started_at) WHERE provisional AND stopped_at IS NULL;
