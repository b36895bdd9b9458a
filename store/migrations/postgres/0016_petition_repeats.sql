-- Which petitions repeat an earlier one (the same petitioner key, or the
-- same complained unit and facts hash, received before), kept by the
-- petitioner history (projections/src/petitioners.rs), so that the repeat
-- board and ListRepeatPetitions look only at those, through a partial
-- index, instead of joining every petition in scope to its history.
ALTER TABLE petitioner_history ADD COLUMN repeats boolean NOT NULL DEFAULT false;

UPDATE petitioner_history AS l SET repeats = true
WHERE EXISTS (
    SELECT 1 FROM petitioner_history AS e
    WHERE (e.petitioner_key = l.petitioner_key
           OR (e.complained_unit = l.complained_unit AND e.facts_hash = l.facts_hash))
      AND (e.received_at < l.received_at OR (e.received_at = l.received_at AND e.case_id < l.case_id))
);

CREATE INDEX petitioner_history_repeats
    ON petitioner_history (division, received_at) WHERE repeats;
