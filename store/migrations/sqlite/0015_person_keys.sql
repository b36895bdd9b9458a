-- Parties and petitioners sealed in the log under a key per person, so
-- that a person can be forgotten by deleting one row (issue 13;
-- store/src/identities.rs). `person` is the deployment's keyed pseudonym
-- of the person; `key` 32 random bytes, base64.
CREATE TABLE person_keys
(
    person     text PRIMARY KEY,
    key        text NOT NULL,
    created_at text NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
) STRICT;

-- Which cases name each person, so that forgetting them finds the cases
-- whose read models and snapshots hold their name.
CREATE TABLE person_cases
(
    person         text NOT NULL,
    aggregate_type text NOT NULL,
    aggregate_id   text NOT NULL,
    PRIMARY KEY (person, aggregate_type, aggregate_id)
) STRICT;
