-- A job queue's worker in one statement (as Que and graphile-worker take
-- jobs): the first free queued job by priority, locked with SKIP LOCKED in
-- a subquery, marked done by an UPDATE joined to it. SpanDB looks the
-- job's row up by key (optimizer rule 5, lookup joins) rather than scan
-- the table, whose every row another worker's lock would hold up.
UPDATE jobs SET state = 'done'
  FROM (SELECT id FROM jobs WHERE state = 'queued' ORDER BY priority, id LIMIT 1 FOR UPDATE SKIP LOCKED) AS next
  WHERE jobs.id = next.id;
