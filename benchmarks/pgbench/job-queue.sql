-- A job queue's worker (as Solid Queue, Oban and river take jobs): the
-- first free queued job by priority, locked with SKIP LOCKED, marked done.
BEGIN;
SELECT id FROM jobs WHERE state = 'queued' ORDER BY priority, id LIMIT 1 FOR UPDATE SKIP LOCKED \gset
UPDATE jobs SET state = 'done' WHERE id = :id;
END;
