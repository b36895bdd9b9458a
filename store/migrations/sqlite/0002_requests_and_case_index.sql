-- Idempotent commands; see the PostgreSQL migration of the same name for
-- the design. SQLite has one writer at a time, so the check and the insert
-- below cannot interleave with another transaction's.
CREATE TABLE command_requests
(
    agency         text    NOT NULL,
    request_id     text    NOT NULL,
    request_hash   text    NOT NULL,
    command_id     text    NOT NULL,
    aggregate_type text    NOT NULL,
    aggregate_id   text    NOT NULL,
    last_sequence  integer NOT NULL,
    recorded_at    text    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (agency, request_id)
) STRICT;

CREATE TRIGGER events_record_request
    AFTER INSERT ON events
    WHEN json_extract(NEW.metadata, '$.request_id') IS NOT NULL
BEGIN
    SELECT RAISE(ABORT, 'UNIQUE constraint failed: the request has already been carried out')
      FROM command_requests
     WHERE agency = coalesce(json_extract(NEW.metadata, '$.agency'), '')
       AND request_id = json_extract(NEW.metadata, '$.request_id')
       AND command_id <> coalesce(json_extract(NEW.metadata, '$.command_id'), '');
    INSERT INTO command_requests
        (agency, request_id, request_hash, command_id, aggregate_type, aggregate_id, last_sequence)
    VALUES (coalesce(json_extract(NEW.metadata, '$.agency'), ''),
            json_extract(NEW.metadata, '$.request_id'),
            coalesce(json_extract(NEW.metadata, '$.request_hash'), ''),
            coalesce(json_extract(NEW.metadata, '$.command_id'), ''),
            NEW.aggregate_type, NEW.aggregate_id, NEW.sequence)
    ON CONFLICT (agency, request_id) DO UPDATE SET last_sequence = excluded.last_sequence;
END;

CREATE TABLE case_index
(
    aggregate_type text    NOT NULL,
    case_id        text    NOT NULL,
    division       text,
    level          text,
    status         text    NOT NULL,
    category       text,
    risk           text,
    channel        text,
    version        integer NOT NULL,
    position       integer NOT NULL,
    state          text    NOT NULL,
    PRIMARY KEY (aggregate_type, case_id)
) STRICT;

CREATE INDEX case_index_by_division ON case_index (aggregate_type, division, case_id);
CREATE INDEX case_index_by_status ON case_index (aggregate_type, status, case_id);

CREATE TABLE projection_checkpoints
(
    name       text    PRIMARY KEY,
    position   integer NOT NULL,
    updated_at text    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
) STRICT;
