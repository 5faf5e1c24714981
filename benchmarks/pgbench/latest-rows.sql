-- A feed's read-write step (scripts/latest-rows-vs-postgres.sh): the
-- latest 20 events and one account's newest event id, then a touch of a
-- random older event, in one transaction.
\set id random(1, :events)
\set account random(0, 99)
BEGIN;
SELECT id, account, body FROM events ORDER BY id DESC LIMIT 20;
SELECT max(id) FROM events WHERE account = :account;
UPDATE events SET body = 'seen' WHERE id = :id;
COMMIT;
