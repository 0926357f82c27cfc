import type { Migration } from '../migration.js';

/**
 * A step takes its tasks' rows last. `finish` locked the task row before anything else, and
 * the lock lasts until commit: two engines on one task ran their steps one at a time, and
 * `bench:store` measured 1.17× one engine where two engines with a task each reach 1.57×.
 *
 * A step now does its per-subtask work first, engines side by side: it ends the attempts
 * (each row fenced, as before), claims READY subtasks optimistically, and decrements its
 * downstreams' waiting counts (those rows locked in id order). Then it locks its task rows,
 * in id order, and does what must see every other step: the counters, the claims checked
 * against the task as it now is (a claim the task no longer allows goes back to READY, as it
 * was), the settling of each task, and claims of what that made READY.
 *
 * Operations and rest writers change subtasks of a task without ending attempts; they must not
 * run beside a step of the same task (a rest writer counts the upstreams that succeeded before
 * its rows existed, which a step still under way would not show). Each step holds a shared
 * advisory lock of every task it works on; `lock_task` (every operation), `materialize` and
 * `write_rest` take it exclusively before they lock the task's row. A claim that meets a task
 * held that way skips it, as SKIP LOCKED skips a row.
 *
 * Lock order, so that no two transactions wait for each other: a task's advisory lock first
 * (steps in task id order); then subtask rows the step owns or skips to (attempts it ends,
 * READY rows it claims); then downstream rows, in id order; then task rows, in id order.
 */
export const migration010: Migration = {
  version: 10,
  name: 'lock tasks last',
  sql: (S) => `
-- The key of a task's advisory lock: the schema in the high half, the task id in the low half
-- (two tasks sharing a key only share the lock).
CREATE FUNCTION ${S}.task_lock_key(p_task int8) RETURNS int8 LANGUAGE sql IMMUTABLE AS $$
  SELECT (hashtext('${S}.tasks')::int8 << 32) | (p_task & 4294967295)
$$;

-- Waits until no step works on the task, and keeps new steps out until commit.
CREATE FUNCTION ${S}.lock_steps_out(p_task int8) RETURNS void LANGUAGE sql AS $$
  SELECT pg_advisory_xact_lock(${S}.task_lock_key(p_task))
$$;

CREATE OR REPLACE FUNCTION ${S}.lock_task(p_task int8) RETURNS ${S}.tasks LANGUAGE plpgsql AS $$
DECLARE
  t ${S}.tasks;
BEGIN
  PERFORM ${S}.lock_steps_out(p_task);
  PERFORM ${S}.materialize(p_task, true);
  SELECT * INTO t FROM ${S}.tasks WHERE id = p_task FOR UPDATE;
  IF NOT FOUND THEN
    PERFORM ${S}.refuse(20000, format('task %s does not exist', p_task), p_task::text);
  END IF;
  RETURN t;
END $$;

-- The rest writers keep steps out before they count the upstreams that already succeeded.
DO $$
DECLARE
  f oid;
  v_old text := 'PERFORM 1 FROM ${S}.tasks WHERE id = p_task FOR UPDATE;';
  v_def text;
BEGIN
  FOR f IN
    SELECT p.oid FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
    WHERE n.nspname = '${S}' AND p.proname IN ('materialize', 'write_rest')
  LOOP
    v_def := pg_get_functiondef(f);
    IF position(v_old IN v_def) = 0 THEN
      RAISE EXCEPTION 'function % does not lock its task as migration 010 expects', f::regproc;
    END IF;
    EXECUTE replace(v_def, v_old, 'PERFORM ${S}.lock_steps_out(p_task); ' || v_old);
  END LOOP;
END $$;

-- Ends attempts as finish did, without the task rows: takes the shared advisory lock of each
-- item's task (in id order) and ends the attempts fenced by (subtask, runTime, executor, still
-- RUNNING or CANCELING). Returns the accepted ends, for release_ends, and for the counters and
-- settling under the task locks.
CREATE FUNCTION ${S}.end_attempts(p_items jsonb, OUT ids int8[], OUT tasks int8[],
  OUT froms text[], OUT tos text[], OUT run_times int4[], OUT operations text[],
  OUT ords int4[], OUT ends int8[], OUT marked int8[], OUT retried bool)
LANGUAGE plpgsql AS $$
DECLARE
  v_task int8;
BEGIN
  FOR v_task IN
    SELECT DISTINCT (j ->> 't')::int8 FROM jsonb_array_elements(p_items) j ORDER BY 1
  LOOP
    PERFORM pg_advisory_xact_lock_shared(${S}.task_lock_key(v_task));
  END LOOP;
  WITH items AS (
    -- The first write of an attempt wins; a repeat of it is refused.
    SELECT DISTINCT ON ((j ->> 's')::int8) (j ->> 's')::int8 AS sid, (j ->> 't')::int8 AS tid,
      (j ->> 'r')::int AS rt, j ->> 'e' AS ex, j ->> 'k' AS kind, j -> 'in' AS inp,
      j -> 'out' AS outp, j -> 'err' AS err, (j ->> 'ra')::int8 AS retry_at,
      (j ->> 'now')::int8 AS at, (ord - 1)::int AS ord
    FROM jsonb_array_elements(p_items) WITH ORDINALITY AS e(j, ord)
    ORDER BY (j ->> 's')::int8, ord
  ), old AS (
    -- The task's operation changes only under lock_task, which this step's lock keeps out.
    SELECT i.*, s.status AS old_status, s.rollback_state AS old_rb,
      t.operation = 'ROLLBACK' AS rolling
    FROM items i
    JOIN ${S}.subtasks s ON s.id = i.sid
    JOIN ${S}.tasks t ON t.id = s.task_id
  ), ended AS (
    UPDATE ${S}.subtasks x SET
      status = CASE
        WHEN o.old_status = 'CANCELING' THEN 'FAILED'
        WHEN o.kind = 'c' THEN CASE WHEN o.rolling THEN 'PENDING' ELSE 'SUCCESSFUL' END
        WHEN o.retry_at IS NOT NULL AND NOT o.rolling THEN 'READY'
        ELSE 'FAILED' END,
      operation = CASE
        WHEN o.old_status = 'CANCELING' THEN
          CASE WHEN o.rolling THEN 'ROLLBACK' ELSE 'CANCEL' END
        WHEN o.kind = 'c' AND o.rolling THEN 'ROLLBACK'
        WHEN o.kind = 'f' AND o.retry_at IS NOT NULL AND NOT o.rolling THEN 'RETRY'
        ELSE x.operation END,
      run_time = x.run_time + CASE
        WHEN o.kind = 'f' AND o.retry_at IS NOT NULL AND NOT o.rolling
             AND o.old_status = 'RUNNING' THEN 1 ELSE 0 END,
      attempt = x.attempt + CASE
        WHEN o.kind = 'f' AND o.retry_at IS NOT NULL AND NOT o.rolling
             AND o.old_status = 'RUNNING' THEN 1 ELSE 0 END,
      retry_at = CASE
        WHEN o.kind = 'f' AND o.old_status = 'RUNNING' AND NOT o.rolling THEN o.retry_at
        ELSE NULL END,
      error = CASE
        WHEN o.old_status = 'CANCELING' THEN coalesce(CASE WHEN o.kind = 'f' THEN o.err END,
          jsonb_build_object('name', 'CanceledError', 'message', 'the attempt was canceled',
            'code', 20021))
        WHEN o.kind = 'f' AND (o.retry_at IS NULL OR o.rolling) THEN o.err
        ELSE NULL END,
      input = CASE
        WHEN o.kind = 'c' AND o.old_status = 'RUNNING' AND NOT o.rolling THEN o.inp
        WHEN o.kind = 'f' AND o.inp IS NOT NULL THEN o.inp
        ELSE x.input END,
      output = CASE
        WHEN o.kind = 'c' AND o.old_status = 'RUNNING' AND NOT o.rolling THEN o.outp
        ELSE x.output END,
      rollback_state = CASE
        WHEN NOT o.rolling THEN x.rollback_state
        WHEN o.kind = 'c' AND o.old_status = 'RUNNING' THEN 0
        ELSE 2 END,
      end_time = o.at,
      lease_until = NULL
    FROM old o
    WHERE x.id = o.sid AND x.task_id = o.tid AND x.run_time = o.rt AND x.executor = o.ex
      AND x.status IN ('RUNNING', 'CANCELING')
    RETURNING x.id, x.task_id, x.run_time, x.status, x.operation, x.rollback_state,
      o.old_status, o.old_rb, o.ord, x.end_time
  )
  SELECT array_agg(e.id), array_agg(e.task_id), array_agg(e.old_status), array_agg(e.status),
    array_agg(e.run_time), array_agg(e.operation), array_agg(e.ord), array_agg(e.end_time),
    -- Newly failed rollbacks, by task (one element each).
    array_agg(e.task_id) FILTER (WHERE e.rollback_state = 2 AND e.old_rb <> 2),
    coalesce(bool_or(e.status = 'READY'), false)
  INTO ids, tasks, froms, tos, run_times, operations, ords, ends, marked, retried
  FROM ended e;
END $$;

-- Decrements the waiting counts that accepted ends release (end_attempts' ids and new
-- statuses), the rows locked in id order: completions release their downstreams, rolled-back
-- subtasks their upstreams awaiting their own rollback. Rows many ends release (a barrier) stay
-- locked until commit: a step does this after its claims, just before the task rows.
CREATE FUNCTION ${S}.release_ends(p_ids int8[], p_tos text[]) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
  v_released int8[];
BEGIN
  -- One element per edge.
  v_released := ARRAY(
    SELECT d FROM unnest(p_ids, p_tos) AS e(id, st) JOIN ${S}.subtasks s ON s.id = e.id,
      unnest(s.downstreams) AS d
    WHERE e.st = 'SUCCESSFUL');
  IF cardinality(v_released) > 0 THEN
    PERFORM 1 FROM ${S}.subtasks WHERE id = ANY (v_released) ORDER BY id FOR UPDATE;
    UPDATE ${S}.subtasks x SET waiting = x.waiting - r.n,
      eligible_seq = CASE WHEN x.waiting - r.n = 0 THEN nextval('${S}.eligible_seq')
                          ELSE x.eligible_seq END
    FROM (SELECT u.id, count(*)::int AS n FROM unnest(v_released) AS u(id) GROUP BY u.id) r
    WHERE x.id = r.id;
  END IF;
  v_released := ARRAY(
    SELECT u FROM unnest(p_ids, p_tos) AS e(id, st) JOIN ${S}.subtasks s ON s.id = e.id,
      unnest(s.upstreams) AS u
    WHERE e.st = 'PENDING');
  IF cardinality(v_released) > 0 THEN
    PERFORM 1 FROM ${S}.subtasks WHERE id = ANY (v_released) AND rollback_state = 1
    ORDER BY id FOR UPDATE;
    PERFORM ${S}.release(v_released, true);
  END IF;
END $$;

-- Claims READY subtasks as claim does, but without the task rows (their counters are not
-- changed): the step checks them under the task locks, and keeps or returns each one. Tasks
-- an operation holds are skipped. Rows: the subtask, its task, its place in the round robin,
-- what claiming changed (to put back), and the claim as the engine receives it.
CREATE FUNCTION ${S}.claim_ready(p_executor text, p_limit int, p_now int8, p_lease_ms int)
RETURNS TABLE (r_id int8, r_task int8, r_ord int8, r_start int8, r_end int8,
  r_executor text, r_lease timestamptz, r_claim jsonb)
LANGUAGE plpgsql
-- As in claim (migration 004): the candidates in round-robin order, no bitmap scan.
SET enable_bitmapscan = off AS $$
DECLARE
  v_tasks int8[];
  v_open int8[] := '{}';
  v_task int8;
BEGIN
  IF p_limit <= 0 THEN RETURN; END IF;
  -- Retries that fell due become claimable (as MemoryStore releases its backoff heap).
  IF EXISTS (SELECT 1 FROM ${S}.subtasks WHERE retry_at IS NOT NULL AND retry_at <= p_now) THEN
    UPDATE ${S}.subtasks SET retry_at = NULL WHERE id IN (
      SELECT id FROM ${S}.subtasks
      WHERE retry_at IS NOT NULL AND retry_at <= p_now AND status = 'READY'
      FOR UPDATE SKIP LOCKED);
  END IF;
  SELECT array_agg(c.id ORDER BY c.claim_seq) INTO v_tasks FROM (
    SELECT t.id, t.claim_seq FROM ${S}.tasks t
    WHERE t.status = 'RUNNING' AND t.n_ready > 0 AND t.n_running < t.concurrency
      AND t.n_canceling = 0 AND t.operation <> 'CANCEL' AND NOT t.rollback_canceled
      AND (CASE WHEN t.operation = 'ROLLBACK' THEN t.failed_rollbacks ELSE t.n_failed END) = 0
      AND (SELECT true FROM ${S}.subtasks s WHERE s.task_id = t.id AND s.status = 'READY'
           AND s.retry_at IS NULL AND s.waiting = 0 LIMIT 1)
    ORDER BY t.claim_seq LIMIT p_limit) c;
  IF v_tasks IS NULL THEN RETURN; END IF;
  FOREACH v_task IN ARRAY v_tasks LOOP
    IF pg_try_advisory_xact_lock_shared(${S}.task_lock_key(v_task)) THEN
      v_open := v_open || v_task;
    END IF;
  END LOOP;
  RETURN QUERY
  WITH candidates AS (
    SELECT t.id, t.concurrency - t.n_running AS room, o.ord
    FROM unnest(v_tasks) WITH ORDINALITY AS o(id, ord)
    JOIN ${S}.tasks t ON t.id = o.id
    WHERE t.id = ANY (v_open)
  ), picked AS (
    SELECT s.id, c.id AS task_id, c.ord, s.start_time, s.end_time, s.executor, s.lease_until
    FROM (SELECT * FROM candidates ORDER BY ord) c
    CROSS JOIN LATERAL (
      SELECT x.id, x.start_time, x.end_time, x.executor, x.lease_until FROM ${S}.subtasks x
      WHERE x.task_id = c.id AND x.status = 'READY' AND x.retry_at IS NULL AND x.waiting = 0
      ORDER BY x.id LIMIT greatest(c.room, 0)
      FOR UPDATE SKIP LOCKED) s
    LIMIT p_limit
  ), claimed AS (
    UPDATE ${S}.subtasks x SET status = 'RUNNING', start_time = p_now, end_time = NULL,
      executor = p_executor, lease_until = now() + p_lease_ms * interval '1 millisecond'
    FROM picked p WHERE x.id = p.id
    RETURNING x.id, x.task_id, x.run_time, x.attempt, x.operation, x.upstreams, x.input,
      x.output, p.ord, p.start_time AS old_start, p.end_time AS old_end,
      p.executor AS old_executor, p.lease_until AS old_lease
  )
  -- As claim_json renders a claim, written out: this runs for every subtask.
  SELECT c.id, c.task_id, c.ord, c.old_start, c.old_end, c.old_executor, c.old_lease,
    jsonb_build_array(c.id, c.task_id, c.run_time, c.attempt, 'RUNNING', c.operation, p_now,
      p_executor,
      CASE
        WHEN c.input IS NOT NULL THEN c.input
        WHEN cardinality(c.upstreams) = 0 THEN '{}'::jsonb
        WHEN cardinality(c.upstreams) = 1 THEN (
          SELECT coalesce(u.output, '{}') FROM ${S}.subtasks u WHERE u.id = c.upstreams[1])
      END,
      CASE WHEN c.input IS NULL AND cardinality(c.upstreams) > 1
        THEN ${S}.upstream_outputs(c.upstreams) END,
      c.output)
  FROM claimed c ORDER BY c.ord, c.id;
END $$;

-- One round trip of an engine, as before: log lines, then ends of attempts, then claims
-- (p_claims: [{e: executor, n: limit}]); returns {finished, claims: [[...], ...]}. What each
-- subtask needs is done before the task rows are locked (see the migration's comment).
CREATE OR REPLACE FUNCTION ${S}.step(p_logs jsonb, p_items jsonb, p_claims jsonb, p_now int8,
  p_lease_ms int) RETURNS jsonb LANGUAGE plpgsql SET enable_seqscan = off AS $$
DECLARE
  -- end_attempts' answer.
  e_ids int8[];
  e_tasks int8[];
  e_froms text[];
  e_tos text[];
  e_run_times int4[];
  e_operations text[];
  e_ords int4[];
  e_ends int8[];
  e_marked int8[];
  e_retried bool;
  v_result jsonb := '[]';
  v_claims jsonb := '[]';
  v_request jsonb;
  v_k int4 := 0;
  v_want int4;
  v_got jsonb;
  v_count int4;
  v_task record;
  v_changes jsonb;
  -- Claims made before the task locks, in order (ordinal n = array index).
  c_ids int8[] := '{}';
  c_tasks int8[] := '{}';
  c_reqs int4[] := '{}';
  c_starts int8[] := '{}';
  c_ends int8[] := '{}';
  c_executors text[] := '{}';
  c_leases timestamptz[] := '{}';
  c_claims jsonb[] := '{}';
  c_kept int4[] := '{}';
BEGIN
  IF p_logs IS NOT NULL THEN PERFORM ${S}.append_logs(p_logs); END IF;
  IF p_items IS NOT NULL THEN
    SELECT * INTO e_ids, e_tasks, e_froms, e_tos, e_run_times, e_operations, e_ords, e_ends,
      e_marked, e_retried
    FROM ${S}.end_attempts(p_items);
  END IF;
  FOR v_request IN SELECT * FROM jsonb_array_elements(coalesce(p_claims, '[]')) LOOP
    v_k := v_k + 1;
    SELECT c_ids || coalesce(array_agg(r.r_id ORDER BY r.r_ord, r.r_id), '{}'),
      c_tasks || coalesce(array_agg(r.r_task ORDER BY r.r_ord, r.r_id), '{}'),
      c_reqs || coalesce(array_agg(v_k ORDER BY r.r_ord, r.r_id), '{}'),
      c_starts || coalesce(array_agg(r.r_start ORDER BY r.r_ord, r.r_id), '{}'),
      c_ends || coalesce(array_agg(r.r_end ORDER BY r.r_ord, r.r_id), '{}'),
      c_executors || coalesce(array_agg(r.r_executor ORDER BY r.r_ord, r.r_id), '{}'),
      c_leases || coalesce(array_agg(r.r_lease ORDER BY r.r_ord, r.r_id), '{}'),
      c_claims || coalesce(array_agg(r.r_claim ORDER BY r.r_ord, r.r_id), '{}')
    INTO c_ids, c_tasks, c_reqs, c_starts, c_ends, c_executors, c_leases, c_claims
    FROM ${S}.claim_ready(v_request ->> 'e', (v_request ->> 'n')::int, p_now, p_lease_ms) r;
  END LOOP;
  IF e_ids IS NOT NULL THEN PERFORM ${S}.release_ends(e_ids, e_tos); END IF;

  -- From here on, one step of a task at a time.
  PERFORM 1 FROM ${S}.tasks
  WHERE id IN (SELECT unnest(e_tasks) UNION SELECT unnest(c_tasks)) ORDER BY id FOR UPDATE;
  IF e_ids IS NOT NULL THEN
    PERFORM ${S}.moved(e_tasks, e_ids, e_froms, e_tos);
    IF e_marked IS NOT NULL THEN
      UPDATE ${S}.tasks t SET failed_rollbacks = t.failed_rollbacks + f.n
      FROM (SELECT m.task, count(*)::int AS n FROM unnest(e_marked) AS m(task) GROUP BY m.task) f
      WHERE t.id = f.task;
    END IF;
    IF e_retried THEN PERFORM ${S}.notify('r'); END IF;
  END IF;
  IF cardinality(c_ids) > 0 THEN
    -- A claim stands if its task still allows it: claimable, and within its concurrency
    -- (claims of one task counted in order). The others go back to READY as they were.
    SELECT array_agg(r.n::int4 ORDER BY r.n) FILTER (WHERE r.ok) INTO c_kept
    FROM (
      SELECT c.n, t.status = 'RUNNING' AND t.n_canceling = 0 AND t.operation <> 'CANCEL'
          AND NOT t.rollback_canceled
          AND (CASE WHEN t.operation = 'ROLLBACK' THEN t.failed_rollbacks ELSE t.n_failed END) = 0
          AND row_number() OVER (PARTITION BY c.task ORDER BY c.n) <= t.concurrency - t.n_running
          AS ok
      FROM unnest(c_tasks) WITH ORDINALITY AS c(task, n)
      JOIN ${S}.tasks t ON t.id = c.task
    ) r;
    c_kept := coalesce(c_kept, '{}');
    IF cardinality(c_kept) < cardinality(c_ids) THEN
      UPDATE ${S}.subtasks x SET status = 'READY', start_time = b.start_time,
        end_time = b.end_time, executor = b.executor, lease_until = b.lease_until
      FROM unnest(c_ids, c_starts, c_ends, c_executors, c_leases) WITH ORDINALITY
        AS b(id, start_time, end_time, executor, lease_until, n)
      WHERE x.id = b.id AND b.n <> ALL (c_kept);
    END IF;
    IF cardinality(c_kept) > 0 THEN
      PERFORM ${S}.moved(array_agg(c_tasks[k]), array_agg(c_ids[k]),
        array_agg('READY'::text), array_agg('RUNNING'::text))
      FROM unnest(c_kept) AS k;
      -- Tasks that gave work go to the back of the round robin.
      UPDATE ${S}.tasks SET claim_seq = nextval('${S}.claim_seq')
      WHERE id IN (SELECT DISTINCT c_tasks[k] FROM unnest(c_kept) AS k);
    END IF;
  END IF;

  IF e_ids IS NOT NULL THEN
    -- Each item's own consequences: the end of a canceled attempt is news to the caller.
    SELECT jsonb_agg(jsonb_build_array(i.ord,
        CASE WHEN i.f = 'CANCELING' THEN jsonb_build_array(
          ${S}.subtask_change(i.task, i.id, i.rt, 'CANCELING', 'FAILED', i.op))
        ELSE '[]'::jsonb END) ORDER BY i.ord)
    INTO v_result
    FROM unnest(e_ords, e_tasks, e_ids, e_run_times, e_froms, e_operations)
      AS i(ord, task, id, rt, f, op);
    -- Then each task settles once; its changes go with its last accepted item.
    FOR v_task IN
      SELECT i.task AS id, max(i.at) AS at, max(i.ord) AS last
      FROM unnest(e_tasks, e_ends, e_ords) AS i(task, at, ord) GROUP BY i.task ORDER BY i.task
    LOOP
      v_changes := ${S}.settle(v_task.id, v_task.at);
      IF jsonb_array_length(v_changes) > 0 THEN
        v_result := v_result || jsonb_build_array(jsonb_build_array(v_task.last, v_changes));
      END IF;
    END LOOP;
  END IF;

  -- Each request's claims: those that stand, then what settling made READY (claim skips the
  -- task rows of other steps and waits for none).
  v_k := 0;
  FOR v_request IN SELECT * FROM jsonb_array_elements(coalesce(p_claims, '[]')) LOOP
    v_k := v_k + 1;
    SELECT coalesce(jsonb_agg(c_claims[k] ORDER BY k), '[]'), count(*) INTO v_got, v_count
    FROM unnest(c_kept) AS k WHERE c_reqs[k] = v_k;
    v_want := (v_request ->> 'n')::int;
    IF v_count < v_want THEN
      v_got := v_got || ${S}.claim(v_request ->> 'e', v_want - v_count, p_now, p_lease_ms,
        false);
    END IF;
    v_claims := v_claims || jsonb_build_array(v_got);
  END LOOP;
  RETURN jsonb_build_object('finished', v_result, 'claims', v_claims);
END $$;

-- Replaced by end_attempts and step.
DROP FUNCTION ${S}.finish(jsonb);
`,
};
