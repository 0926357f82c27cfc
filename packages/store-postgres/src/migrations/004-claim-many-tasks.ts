import type { Migration } from '../migration.js';

/**
 * Claims across many tasks in a few statements. The first `claim` looped over the candidate
 * tasks with half a dozen statements each; a service running thousands of 3-subtask tasks at
 * once spent ~15 ms of database time per claim call that way (about 1,600 subtasks/s where one
 * large task runs at 7,000/s). Now the candidates are locked together, their READY subtasks
 * are picked in one statement (per task at most its free concurrency, in the tasks' round-robin
 * order, at most p_limit in all), and statuses, counters and the round robin are updated once
 * per call. Same rules as before: never more RUNNING per task than its concurrency, nothing of
 * a task that failed, is canceled or is canceling; task rows are locked waiting (in id order)
 * only when the transaction holds no other task lock (p_wait), otherwise SKIP LOCKED.
 */
export const migration004: Migration = {
  version: 4,
  name: 'claim many tasks',
  sql: (S) => `
CREATE OR REPLACE FUNCTION ${S}.claim(p_executor text, p_limit int, p_now int8, p_lease_ms int,
  p_wait bool) RETURNS jsonb LANGUAGE plpgsql
-- The candidates are read in round-robin order from the tasks_running index and the scan stops
-- at p_limit. A bitmap scan would read every entry first, dead ones included (every claim moves
-- a served task to the back of the round robin, leaving a dead entry at the front until
-- vacuum): with 8,000 tasks running, 62,000 entries and 16 ms a claim.
SET enable_bitmapscan = off AS $$
DECLARE
  v_tasks int8[];
  v_locked int8[];
  v_claims jsonb;
  v_move_tasks int8[];
  v_ids int8[];
  v_from text[];
  v_to text[];
BEGIN
  IF p_limit <= 0 THEN RETURN '[]'; END IF;
  -- Retries that fell due become claimable (as MemoryStore releases its backoff heap).
  IF EXISTS (SELECT 1 FROM ${S}.subtasks WHERE retry_at IS NOT NULL AND retry_at <= p_now) THEN
    UPDATE ${S}.subtasks SET retry_at = NULL WHERE id IN (
      SELECT id FROM ${S}.subtasks
      WHERE retry_at IS NOT NULL AND retry_at <= p_now AND status = 'READY'
      FOR UPDATE SKIP LOCKED);
  END IF;
  SELECT array_agg(id ORDER BY claim_seq) INTO v_tasks FROM (
    SELECT id, claim_seq FROM ${S}.tasks t
    WHERE status = 'RUNNING' AND n_ready > 0 AND n_running < concurrency AND n_canceling = 0
      AND operation <> 'CANCEL' AND NOT rollback_canceled
      AND (CASE WHEN operation = 'ROLLBACK' THEN failed_rollbacks ELSE n_failed END) = 0
      -- A scalar subquery (not EXISTS, which may become a scan of every READY subtask):
      -- one index probe per task.
      AND (SELECT true FROM ${S}.subtasks s WHERE s.task_id = t.id AND s.status = 'READY'
           AND s.retry_at IS NULL AND s.waiting = 0 LIMIT 1)
    ORDER BY claim_seq LIMIT p_limit) c;
  IF v_tasks IS NULL THEN RETURN '[]'; END IF;
  IF p_wait THEN
    PERFORM 1 FROM ${S}.tasks WHERE id = ANY (v_tasks) ORDER BY id FOR UPDATE;
    v_locked := v_tasks;
  ELSE
    -- Rows this transaction already locked are not skipped, only other transactions' locks.
    SELECT array_agg(id) INTO v_locked FROM (
      SELECT id FROM ${S}.tasks WHERE id = ANY (v_tasks) ORDER BY id FOR UPDATE SKIP LOCKED) l;
    IF v_locked IS NULL THEN RETURN '[]'; END IF;
  END IF;
  WITH candidates AS (
    -- Checked again now that the rows are locked (a new snapshot: their latest state).
    SELECT t.id, t.concurrency - t.n_running AS room, o.ord
    FROM unnest(v_tasks) WITH ORDINALITY AS o(id, ord)
    JOIN ${S}.tasks t ON t.id = o.id
    WHERE t.id = ANY (v_locked) AND t.status = 'RUNNING' AND t.n_canceling = 0
      AND t.operation <> 'CANCEL' AND NOT t.rollback_canceled
      AND (CASE WHEN t.operation = 'ROLLBACK' THEN t.failed_rollbacks ELSE t.n_failed END) = 0
      AND t.n_running < t.concurrency AND t.n_ready > 0
  ), picked AS (
    -- A nested loop in round-robin order, stopped by the LIMIT: rows past it are never read,
    -- so never locked.
    SELECT s.id, c.id AS task_id, c.ord
    FROM (SELECT * FROM candidates ORDER BY ord) c
    CROSS JOIN LATERAL (
      SELECT x.id FROM ${S}.subtasks x
      WHERE x.task_id = c.id AND x.status = 'READY' AND x.retry_at IS NULL AND x.waiting = 0
      ORDER BY x.id LIMIT c.room
      FOR UPDATE SKIP LOCKED) s
    LIMIT p_limit
  ), claimed AS (
    UPDATE ${S}.subtasks x SET status = 'RUNNING', start_time = p_now, end_time = NULL,
      executor = p_executor, lease_until = now() + p_lease_ms * interval '1 millisecond'
    FROM picked p WHERE x.id = p.id
    RETURNING x.id, x.task_id, x.run_time, x.attempt, x.operation, x.upstreams, x.input,
      x.output, p.ord
  )
  -- As claim_json renders a claim, written out: this runs for every subtask.
  SELECT coalesce(jsonb_agg(jsonb_build_array(c.id, c.task_id, c.run_time, c.attempt,
      'RUNNING', c.operation, p_now, p_executor,
      CASE
        WHEN c.input IS NOT NULL THEN c.input
        WHEN cardinality(c.upstreams) = 0 THEN '{}'::jsonb
        WHEN cardinality(c.upstreams) = 1 THEN (
          SELECT coalesce(u.output, '{}') FROM ${S}.subtasks u WHERE u.id = c.upstreams[1])
      END,
      CASE WHEN c.input IS NULL AND cardinality(c.upstreams) > 1
        THEN ${S}.upstream_outputs(c.upstreams) END,
      c.output) ORDER BY c.ord, c.id), '[]'),
    array_agg(c.task_id), array_agg(c.id), array_agg('READY'::text), array_agg('RUNNING'::text)
  INTO v_claims, v_move_tasks, v_ids, v_from, v_to FROM claimed c;
  IF v_ids IS NULL THEN RETURN '[]'; END IF;
  PERFORM ${S}.moved(v_move_tasks, v_ids, v_from, v_to);
  -- Tasks that gave work go to the back of the round robin.
  UPDATE ${S}.tasks SET claim_seq = nextval('${S}.claim_seq')
  WHERE id IN (SELECT DISTINCT unnest(v_move_tasks));
  RETURN v_claims;
END $$;
`,
};
