import type { Migration } from '../migration.js';

/**
 * The first schema: tables, sequences, and the functions that make every transition in one
 * statement (one transaction, one round trip). `S` is the schema name,
 * already checked to be a plain identifier.
 */
export const migration001: Migration = {
  version: 1,
  name: 'init',
  sql: (S) => `
CREATE SEQUENCE ${S}.task_id_seq;
CREATE SEQUENCE ${S}.subtask_id_seq;
-- Round-robin order of tasks for claims, and FIFO order of subtasks waiting for a READY slot.
CREATE SEQUENCE ${S}.claim_seq;
CREATE SEQUENCE ${S}.eligible_seq;

-- Every legal status move, as in @dagops/engine's transitions.ts (a test compares them).
CREATE TABLE ${S}.subtask_transitions (
  from_status text NOT NULL,
  to_status text NOT NULL,
  PRIMARY KEY (from_status, to_status)
);
INSERT INTO ${S}.subtask_transitions VALUES
  ('PENDING', 'READY'),
  ('READY', 'RUNNING'), ('READY', 'PENDING'),
  ('RUNNING', 'SUCCESSFUL'), ('RUNNING', 'READY'), ('RUNNING', 'FAILED'),
  ('RUNNING', 'CANCELING'), ('RUNNING', 'PENDING'),
  ('CANCELING', 'FAILED'),
  ('FAILED', 'READY'), ('FAILED', 'SUCCESSFUL'), ('FAILED', 'PENDING'),
  ('SUCCESSFUL', 'READY');
CREATE TABLE ${S}.task_transitions (
  from_status text NOT NULL,
  to_status text NOT NULL,
  PRIMARY KEY (from_status, to_status)
);
INSERT INTO ${S}.task_transitions VALUES
  ('RUNNING', 'SUCCESSFUL'), ('RUNNING', 'FAILED'), ('FAILED', 'RUNNING');

CREATE TABLE ${S}.tasks (
  id int8 PRIMARY KEY,
  name text NOT NULL,
  -- json, not jsonb: kept as written, key order included (only ever read back whole).
  template json NOT NULL,
  creator text NOT NULL,
  executor text NOT NULL,
  host_id int8,
  type text NOT NULL,
  task_definition_id int8 NOT NULL,
  context json NOT NULL,
  status text NOT NULL,
  operation text NOT NULL,
  start_time int8 NOT NULL,
  end_time int8,
  concurrency int4 NOT NULL,
  -- The template or the arguments prohibit rollback.
  prohibit_rollback bool NOT NULL,
  -- Subtask ids are consecutive: first_subtask_id .. first_subtask_id + subtask_count - 1.
  first_subtask_id int8 NOT NULL,
  subtask_count int4 NOT NULL,
  -- Subtasks per status, kept by moved(): the hot path never counts rows.
  n_pending int4 NOT NULL,
  n_ready int4 NOT NULL,
  n_running int4 NOT NULL DEFAULT 0,
  n_canceling int4 NOT NULL DEFAULT 0,
  n_failed int4 NOT NULL DEFAULT 0,
  n_successful int4 NOT NULL DEFAULT 0,
  -- Subtasks whose rollback failed in the current rollback.
  failed_rollbacks int4 NOT NULL DEFAULT 0,
  -- The current rollback was canceled: start nothing new, FAILED once nothing runs.
  rollback_canceled bool NOT NULL DEFAULT false,
  claim_seq int8 NOT NULL DEFAULT nextval('${S}.claim_seq')
);
CREATE INDEX tasks_running ON ${S}.tasks (claim_seq) WHERE status = 'RUNNING';

CREATE TABLE ${S}.subtasks (
  id int8 PRIMARY KEY,
  -- No foreign keys: only the functions below write, and per-row checks would cost more than
  -- the bulk insert of a 10,000-host task itself.
  task_id int8 NOT NULL,
  node_key text NOT NULL,
  series_id int4 NOT NULL,
  parallel_idx int4 NOT NULL,
  class_name text NOT NULL,
  name text NOT NULL,
  description text NOT NULL,
  node_type text NOT NULL,
  timeout float8 NOT NULL,
  prohibit_rollback bool NOT NULL,
  upstreams int8[] NOT NULL,
  downstreams int8[] NOT NULL,
  status text NOT NULL,
  operation text NOT NULL,
  run_time int4 NOT NULL,
  -- Attempt number within the current retry round.
  attempt int4 NOT NULL DEFAULT 1,
  start_time int8,
  end_time int8,
  executor text,
  error jsonb,
  -- Executing: upstreams not yet SUCCESSFUL. Rolling back: downstreams not yet PENDING.
  waiting int4 NOT NULL,
  -- Part in the current rollback: 0 none, 1 awaiting its rollback, 2 its rollback failed.
  rollback_state int2 NOT NULL DEFAULT 0,
  -- Set while its dependencies are done and it waits for a READY slot (FIFO).
  eligible_seq int8,
  -- A READY retry waiting for its backoff (engine clock, epoch ms).
  retry_at int8,
  -- The claim's lease (database clock).
  lease_until timestamptz,
  input jsonb,
  output jsonb
);
-- No index on task_id: a task's subtasks are an id range of the primary key.
CREATE INDEX subtasks_ready ON ${S}.subtasks (task_id, id) WHERE status = 'READY';
CREATE INDEX subtasks_eligible ON ${S}.subtasks (task_id, eligible_seq)
  WHERE eligible_seq IS NOT NULL;
CREATE INDEX subtasks_leases ON ${S}.subtasks (lease_until)
  WHERE status IN ('RUNNING', 'CANCELING');
CREATE INDEX subtasks_retries ON ${S}.subtasks (retry_at) WHERE retry_at IS NOT NULL;

CREATE TABLE ${S}.edges (
  task_id int8 NOT NULL,
  from_id int8 NOT NULL,
  to_id int8 NOT NULL,
  PRIMARY KEY (from_id, to_id)
);
-- No index on task_id: a task's edges start from its subtask id range.

CREATE TABLE ${S}.logs (
  id int8 GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  task_id int8 NOT NULL,
  subtask_id int8 NOT NULL,
  run_time int4 NOT NULL,
  time int8 NOT NULL,
  message text NOT NULL
);
CREATE INDEX logs_subtask ON ${S}.logs (subtask_id, id);

CREATE TABLE ${S}.audit (
  id int8 GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  task_id int8 NOT NULL,
  subtask_id int8,
  operation text NOT NULL,
  actor text NOT NULL,
  at int8 NOT NULL
);
CREATE INDEX audit_task ON ${S}.audit (task_id, id);

-- Raises a dagops error: SQLSTATE DG000, the numeric code in DETAIL, the target in HINT.
CREATE FUNCTION ${S}.refuse(p_code int, p_message text, p_target text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION USING ERRCODE = 'DG000', MESSAGE = p_message, DETAIL = p_code::text,
    HINT = coalesce(p_target, '');
END $$;

-- The one place subtask status moves are checked and counted: every statement that changes
-- statuses passes its moves here (tasks, subtask ids, from, to; one element per subtask), which
-- refuses a move the transition table does not list and updates the tasks' counters.
CREATE FUNCTION ${S}.moved(p_tasks int8[], p_ids int8[], p_from text[], p_to text[])
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  v_bad text;
BEGIN
  IF p_tasks IS NULL THEN RETURN; END IF;
  SELECT format('subtask %s cannot move from %s to %s', m.id, m.f, m.t) INTO v_bad
  FROM unnest(p_ids, p_from, p_to) AS m(id, f, t)
  WHERE m.f <> m.t AND NOT EXISTS (SELECT 1 FROM ${S}.subtask_transitions tr
                                   WHERE tr.from_status = m.f AND tr.to_status = m.t)
  LIMIT 1;
  IF v_bad IS NOT NULL THEN
    PERFORM ${S}.refuse(20003, v_bad, split_part(v_bad, ' ', 2));
  END IF;
  UPDATE ${S}.tasks t SET
    n_pending = t.n_pending + d.pending,
    n_ready = t.n_ready + d.ready,
    n_running = t.n_running + d.running,
    n_canceling = t.n_canceling + d.canceling,
    n_failed = t.n_failed + d.failed,
    n_successful = t.n_successful + d.successful
  FROM (
    SELECT task,
      sum((m.t = 'PENDING')::int - (m.f = 'PENDING')::int) AS pending,
      sum((m.t = 'READY')::int - (m.f = 'READY')::int) AS ready,
      sum((m.t = 'RUNNING')::int - (m.f = 'RUNNING')::int) AS running,
      sum((m.t = 'CANCELING')::int - (m.f = 'CANCELING')::int) AS canceling,
      sum((m.t = 'FAILED')::int - (m.f = 'FAILED')::int) AS failed,
      sum((m.t = 'SUCCESSFUL')::int - (m.f = 'SUCCESSFUL')::int) AS successful
    FROM unnest(p_tasks, p_from, p_to) AS m(task, f, t)
    WHERE m.f <> m.t
    GROUP BY task
  ) d
  WHERE t.id = d.task;
END $$;

CREATE FUNCTION ${S}.task_moved() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM ${S}.task_transitions t
                 WHERE t.from_status = OLD.status AND t.to_status = NEW.status) THEN
    PERFORM ${S}.refuse(20003, format('task %s cannot move from %s to %s',
      OLD.id, OLD.status, NEW.status), OLD.id::text);
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER task_moved BEFORE UPDATE ON ${S}.tasks
  FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
  EXECUTE FUNCTION ${S}.task_moved();

-- A status change as the engine reports it (StatusChange).
CREATE FUNCTION ${S}.subtask_change(p_task int8, p_id int8, p_run_time int4, p_from text,
  p_to text, p_operation text) RETURNS jsonb LANGUAGE sql IMMUTABLE AS $$
  SELECT jsonb_build_object('kind', 'subtask', 'taskId', p_task, 'subtaskId', p_id,
    'runTime', p_run_time, 'from', p_from, 'to', p_to, 'operation', p_operation)
$$;

-- A task status move, checked by the task_moved trigger; returns the change.
CREATE FUNCTION ${S}.move_task(p_task int8, p_to text, p_operation text, p_now int8)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
  v_from text;
BEGIN
  SELECT status INTO v_from FROM ${S}.tasks WHERE id = p_task;
  UPDATE ${S}.tasks SET status = p_to, operation = p_operation,
    end_time = CASE WHEN p_to = 'RUNNING' THEN NULL ELSE p_now END,
    rollback_canceled = CASE WHEN p_to = 'RUNNING' THEN rollback_canceled ELSE false END
  WHERE id = p_task;
  PERFORM pg_notify('${S}', 't' || p_task) WHERE p_to <> 'RUNNING';
  RETURN jsonb_build_object('kind', 'task', 'taskId', p_task, 'from', v_from, 'to', p_to,
    'operation', p_operation);
END $$;

-- Finishes the task when it is done, or promotes what waits for a READY slot (MemoryTask.settle).
-- Says 'w' on the channel when the task has claimable work afterwards.
CREATE FUNCTION ${S}.settle(p_task int8, p_now int8) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
  t ${S}.tasks;
  v_changes jsonb := '[]';
  v_rolling bool;
  v_running int;
  v_room int;
  v_tasks int8[];
  v_ids int8[];
  v_from text[];
  v_to text[];
BEGIN
  SELECT * INTO t FROM ${S}.tasks WHERE id = p_task;
  IF t.status <> 'RUNNING' THEN RETURN v_changes; END IF;
  v_rolling := t.operation = 'ROLLBACK';
  v_running := t.n_running + t.n_canceling;
  IF (CASE WHEN v_rolling THEN t.failed_rollbacks ELSE t.n_failed END) > 0
     OR t.operation = 'CANCEL' OR t.rollback_canceled THEN
    IF v_running = 0 THEN
      v_changes := v_changes || jsonb_build_array(
        ${S}.move_task(p_task, 'FAILED', t.operation, p_now));
    END IF;
    RETURN v_changes;
  END IF;
  IF (CASE WHEN v_rolling THEN t.n_pending ELSE t.n_successful END) = t.subtask_count THEN
    RETURN v_changes || jsonb_build_array(
      ${S}.move_task(p_task, 'SUCCESSFUL', t.operation, p_now));
  END IF;
  v_room := t.concurrency - (t.n_ready + v_running);
  IF v_room > 0 THEN
    WITH picked AS (
      SELECT id, status, eligible_seq FROM ${S}.subtasks
      WHERE task_id = p_task AND eligible_seq IS NOT NULL
      ORDER BY eligible_seq LIMIT v_room
    ), promoted AS (
      UPDATE ${S}.subtasks x SET status = 'READY', eligible_seq = NULL, error = NULL,
        -- A rollback is an execution of its own: a new runTime fences it and keys it.
        run_time = x.run_time + (CASE WHEN v_rolling THEN 1 ELSE 0 END)
      FROM picked p WHERE x.id = p.id
      RETURNING x.id, x.run_time, x.operation, p.status AS old_status, p.eligible_seq
    )
    SELECT v_changes || coalesce(jsonb_agg(
        ${S}.subtask_change(p_task, id, run_time, old_status, 'READY', operation)
        ORDER BY eligible_seq) FILTER (WHERE old_status <> 'READY'), '[]'),
      array_agg(p_task), array_agg(id), array_agg(old_status), array_agg('READY'::text)
    INTO v_changes, v_tasks, v_ids, v_from, v_to FROM promoted;
    PERFORM ${S}.moved(v_tasks, v_ids, v_from, v_to);
    SELECT * INTO t FROM ${S}.tasks WHERE id = p_task;
  END IF;
  IF t.n_ready > 0 AND t.n_running < t.concurrency THEN
    PERFORM pg_notify('${S}', 'w');
  END IF;
  RETURN v_changes;
END $$;

-- FAILED task → RUNNING with p_operation unless failures still block it (MemoryTask.resume).
CREATE FUNCTION ${S}.resume(p_task int8, p_operation text, p_now int8) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
  t ${S}.tasks;
BEGIN
  SELECT * INTO t FROM ${S}.tasks WHERE id = p_task;
  IF t.status <> 'FAILED' THEN RETURN '[]'; END IF;
  IF (CASE WHEN p_operation = 'ROLLBACK' THEN t.failed_rollbacks ELSE t.n_failed END) > 0 THEN
    IF p_operation = 'ROLLBACK' THEN
      UPDATE ${S}.tasks SET operation = p_operation WHERE id = p_task;
    END IF;
    RETURN '[]';
  END IF;
  RETURN jsonb_build_array(${S}.move_task(p_task, 'RUNNING', p_operation, p_now));
END $$;

-- Decrements the waiting count of p_ids (one per occurrence) and queues those reaching zero.
CREATE FUNCTION ${S}.release(p_ids int8[], p_awaiting_only bool) RETURNS void
LANGUAGE sql AS $$
  UPDATE ${S}.subtasks x SET waiting = x.waiting - r.n,
    eligible_seq = CASE WHEN x.waiting - r.n = 0 THEN nextval('${S}.eligible_seq')
                        ELSE x.eligible_seq END
  FROM (SELECT id, count(*)::int AS n FROM unnest(p_ids) AS u(id) GROUP BY id ORDER BY min(id)) r
  WHERE x.id = r.id AND (NOT p_awaiting_only OR x.rollback_state = 1)
$$;

-- Reserves a task id and p_count consecutive subtask ids.
CREATE FUNCTION ${S}.reserve_ids(p_count int) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
  v_first int8;
BEGIN
  PERFORM pg_advisory_xact_lock(7290101, hashtext('${S}'));
  v_first := nextval('${S}.subtask_id_seq');
  IF p_count > 1 THEN
    PERFORM setval('${S}.subtask_id_seq', v_first + p_count - 1);
  END IF;
  RETURN jsonb_build_object('taskId', nextval('${S}.task_id_seq'), 'firstSubtaskId', v_first);
END $$;

-- The distinct outputs of a subtask's upstreams, in upstream order (merging equal outputs twice
-- changes nothing): what the engine merges into the input of a subtask with several upstreams.
CREATE FUNCTION ${S}.upstream_outputs(p_upstreams int8[]) RETURNS jsonb
LANGUAGE sql STABLE AS $$
  SELECT jsonb_agg(o ORDER BY ord) FROM (
    SELECT DISTINCT ON (coalesce(u.output, '{}')) coalesce(u.output, '{}') AS o, a.ord
    FROM unnest(p_upstreams) WITH ORDINALITY AS a(id, ord)
    JOIN ${S}.subtasks u ON u.id = a.id
    ORDER BY coalesce(u.output, '{}'), a.ord) d
$$;

-- A claim as the engine receives it (what changes; the rest of the subtask never does and the
-- engine keeps it): [id, taskId, runTime, attempt, status, operation, startTime, executor,
-- input, upstreamOutputs, output]. The input is given when known without a merge: saved by an
-- earlier attempt, a root's, or a single upstream's output; otherwise the upstreams' outputs.
CREATE FUNCTION ${S}.claim_json(x ${S}.subtasks) RETURNS jsonb LANGUAGE sql STABLE AS $$
  SELECT jsonb_build_array(x.id, x.task_id, x.run_time, x.attempt, x.status, x.operation,
    x.start_time, x.executor,
    CASE
      WHEN x.input IS NOT NULL THEN x.input
      WHEN cardinality(x.upstreams) = 0 THEN '{}'::jsonb
      WHEN cardinality(x.upstreams) = 1 THEN (
        SELECT coalesce(u.output, '{}') FROM ${S}.subtasks u WHERE u.id = x.upstreams[1])
    END,
    CASE WHEN x.input IS NULL AND cardinality(x.upstreams) > 1
      THEN ${S}.upstream_outputs(x.upstreams) END,
    x.output)
$$;

-- The parts of a task's subtasks that never change, for engines to keep:
-- [[id, nodeKey, seriesId, parallelIdx, className, name, description, nodeType, timeout,
-- prohibitRollback, upstreams, downstreams], ...] in id order.
CREATE FUNCTION ${S}.task_shape(p_task int8) RETURNS jsonb LANGUAGE sql STABLE AS $$
  SELECT coalesce(jsonb_agg(jsonb_build_array(x.id, x.node_key, x.series_id, x.parallel_idx,
    x.class_name, x.name, x.description, x.node_type, x.timeout, x.prohibit_rollback,
    x.upstreams, x.downstreams) ORDER BY x.id), '[]')
  FROM ${S}.subtasks x, ${S}.tasks t
  WHERE t.id = p_task AND x.id BETWEEN t.first_subtask_id
    AND t.first_subtask_id + t.subtask_count - 1
$$;

-- Claims up to p_limit READY subtasks for p_executor, fairly across tasks (round robin), never
-- more RUNNING per task than its concurrency, nothing of a task that failed, is canceled or is
-- canceling. Task rows are locked: waiting, in id order, when this transaction holds no other
-- task lock (p_wait); otherwise SKIP LOCKED, so that a transaction that already locked tasks
-- never waits for another (no lock cycles). Subtask rows are taken FOR UPDATE SKIP LOCKED.
CREATE FUNCTION ${S}.claim(p_executor text, p_limit int, p_now int8, p_lease_ms int,
  p_wait bool) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
  v_claims jsonb := '[]';
  v_left int := p_limit;
  v_task int8;
  v_tasks int8[];
  v_t ${S}.tasks;
  v_taken jsonb;
  v_count int;
  v_move_tasks int8[];
  v_ids int8[];
  v_from text[];
  v_to text[];
BEGIN
  IF p_limit <= 0 THEN RETURN v_claims; END IF;
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
  IF v_tasks IS NULL THEN RETURN v_claims; END IF;
  IF p_wait THEN
    PERFORM 1 FROM ${S}.tasks WHERE id = ANY (v_tasks) ORDER BY id FOR UPDATE;
  END IF;
  FOREACH v_task IN ARRAY v_tasks LOOP
    EXIT WHEN v_left <= 0;
    IF p_wait THEN
      SELECT * INTO v_t FROM ${S}.tasks WHERE id = v_task;
    ELSE
      SELECT * INTO v_t FROM ${S}.tasks WHERE id = v_task FOR UPDATE SKIP LOCKED;
      CONTINUE WHEN NOT FOUND;
    END IF;
    CONTINUE WHEN v_t.status <> 'RUNNING' OR v_t.n_canceling > 0 OR v_t.operation = 'CANCEL'
      OR v_t.rollback_canceled
      OR (CASE WHEN v_t.operation = 'ROLLBACK' THEN v_t.failed_rollbacks ELSE v_t.n_failed END) > 0
      OR v_t.n_running >= v_t.concurrency OR v_t.n_ready = 0;
    WITH picked AS (
      SELECT id FROM ${S}.subtasks
      WHERE task_id = v_task AND status = 'READY' AND retry_at IS NULL AND waiting = 0
      ORDER BY id LIMIT least(v_t.concurrency - v_t.n_running, v_left)
      FOR UPDATE SKIP LOCKED
    ), claimed AS (
      UPDATE ${S}.subtasks x SET status = 'RUNNING', start_time = p_now, end_time = NULL,
        executor = p_executor, lease_until = now() + p_lease_ms * interval '1 millisecond'
      FROM picked p WHERE x.id = p.id
      RETURNING x.id, x.run_time, x.attempt, x.operation, x.upstreams, x.input, x.output
    )
    -- As claim_json renders a claim, written out: this runs for every subtask.
    SELECT coalesce(jsonb_agg(jsonb_build_array(c.id, v_task, c.run_time, c.attempt,
        'RUNNING', c.operation, p_now, p_executor,
        CASE
          WHEN c.input IS NOT NULL THEN c.input
          WHEN cardinality(c.upstreams) = 0 THEN '{}'::jsonb
          WHEN cardinality(c.upstreams) = 1 THEN (
            SELECT coalesce(u.output, '{}') FROM ${S}.subtasks u WHERE u.id = c.upstreams[1])
        END,
        CASE WHEN c.input IS NULL AND cardinality(c.upstreams) > 1
          THEN ${S}.upstream_outputs(c.upstreams) END,
        c.output) ORDER BY c.id), '[]'),
      count(*), array_agg(v_task), array_agg(c.id), array_agg('READY'::text),
      array_agg('RUNNING'::text)
    INTO v_taken, v_count, v_move_tasks, v_ids, v_from, v_to FROM claimed c;
    PERFORM ${S}.moved(v_move_tasks, v_ids, v_from, v_to);
    IF v_count > 0 THEN
      v_claims := v_claims || v_taken;
      v_left := v_left - v_count;
      UPDATE ${S}.tasks SET claim_seq = nextval('${S}.claim_seq') WHERE id = v_task;
    END IF;
  END LOOP;
  RETURN v_claims;
END $$;

-- Ends attempts: completions and failures, each fenced by (subtask, runTime, executor, still
-- RUNNING or CANCELING) and reported one by one; then settles each task once. Items:
-- [{t, s, r, e, k: 'c'|'f', in, out, err, ra, now}]. Returns [[index, changes]] for the
-- accepted items (index into p_items, from 0); the others were refused.
CREATE FUNCTION ${S}.finish(p_items jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
  v_ids int8[];
  v_tasks int8[];
  v_from text[];
  v_to text[];
  v_run_times int4[];
  v_operations text[];
  v_ords int4[];
  v_ends int8[];
  v_marked int8[];
  v_released int8[];
  v_retried bool;
  v_result jsonb := '[]';
  v_task record;
  v_changes jsonb;
BEGIN
  PERFORM 1 FROM ${S}.tasks WHERE id IN (
    SELECT (j ->> 't')::int8 FROM jsonb_array_elements(p_items) j) ORDER BY id FOR UPDATE;
  WITH items AS (
    -- The first write of an attempt wins; a repeat of it is refused.
    SELECT DISTINCT ON ((j ->> 's')::int8) (j ->> 's')::int8 AS sid, (j ->> 't')::int8 AS tid,
      (j ->> 'r')::int AS rt, j ->> 'e' AS ex, j ->> 'k' AS kind, j -> 'in' AS inp,
      j -> 'out' AS outp, j -> 'err' AS err, (j ->> 'ra')::int8 AS retry_at,
      (j ->> 'now')::int8 AS at, (ord - 1)::int AS ord
    FROM jsonb_array_elements(p_items) WITH ORDINALITY AS e(j, ord)
    ORDER BY (j ->> 's')::int8, ord
  ), old AS (
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
  SELECT array_agg(id), array_agg(task_id), array_agg(old_status), array_agg(status),
    array_agg(run_time), array_agg(operation), array_agg(ord), array_agg(end_time),
    -- Newly failed rollbacks, by task (one element each).
    array_agg(task_id) FILTER (WHERE rollback_state = 2 AND old_rb <> 2),
    bool_or(status = 'READY')
  INTO v_ids, v_tasks, v_from, v_to, v_run_times, v_operations, v_ords, v_ends, v_marked,
    v_retried
  FROM ended;
  IF v_ids IS NULL THEN RETURN v_result; END IF;
  PERFORM ${S}.moved(v_tasks, v_ids, v_from, v_to);

  -- Completions release their downstreams; rolled-back subtasks, their awaiting upstreams.
  v_released := ARRAY(SELECT e.id FROM unnest(v_ids, v_to) AS e(id, st) WHERE e.st = 'SUCCESSFUL');
  IF cardinality(v_released) > 0 THEN
    UPDATE ${S}.subtasks x SET waiting = x.waiting - r.n,
      eligible_seq = CASE WHEN x.waiting - r.n = 0 THEN nextval('${S}.eligible_seq')
                          ELSE x.eligible_seq END
    FROM (
      SELECT d AS id, count(*)::int AS n
      FROM unnest(v_released) AS e(id) JOIN ${S}.subtasks s ON s.id = e.id,
        unnest(s.downstreams) AS d
      GROUP BY d
    ) r
    WHERE x.id = r.id;
  END IF;
  v_released := ARRAY(SELECT e.id FROM unnest(v_ids, v_to) AS e(id, st) WHERE e.st = 'PENDING');
  IF cardinality(v_released) > 0 THEN
    PERFORM ${S}.release(array_agg(u), true)
    FROM unnest(v_released) AS r(id) JOIN ${S}.subtasks s ON s.id = r.id,
      unnest(s.upstreams) AS u;
  END IF;
  IF v_marked IS NOT NULL THEN
    UPDATE ${S}.tasks t SET failed_rollbacks = t.failed_rollbacks + f.n
    FROM (SELECT task, count(*)::int AS n FROM unnest(v_marked) AS m(task) GROUP BY task) f
    WHERE t.id = f.task;
  END IF;
  IF v_retried THEN PERFORM pg_notify('${S}', 'r'); END IF;

  -- Each item's own consequences: the end of a canceled attempt is news to the caller.
  SELECT jsonb_agg(jsonb_build_array(e.ord,
      CASE WHEN e.f = 'CANCELING' THEN jsonb_build_array(
        ${S}.subtask_change(e.task, e.id, e.rt, 'CANCELING', 'FAILED', e.op))
      ELSE '[]'::jsonb END) ORDER BY e.ord)
  INTO v_result
  FROM unnest(v_ords, v_tasks, v_ids, v_run_times, v_from, v_operations)
    AS e(ord, task, id, rt, f, op);
  -- Then each task settles once; its changes go with its last accepted item.
  FOR v_task IN
    SELECT e.task AS id, max(e.at) AS at, max(e.ord) AS last
    FROM unnest(v_tasks, v_ends, v_ords) AS e(task, at, ord) GROUP BY e.task ORDER BY e.task
  LOOP
    v_changes := ${S}.settle(v_task.id, v_task.at);
    IF jsonb_array_length(v_changes) > 0 THEN
      v_result := v_result || jsonb_build_array(jsonb_build_array(v_task.last, v_changes));
    END IF;
  END LOOP;
  RETURN v_result;
END $$;

-- Appends handler log lines ([{t, s, r, time, m}]); lines for unknown subtasks are dropped.
CREATE FUNCTION ${S}.append_logs(p_lines jsonb) RETURNS void LANGUAGE sql AS $$
  INSERT INTO ${S}.logs (task_id, subtask_id, run_time, time, message)
  SELECT (j ->> 't')::int8, (j ->> 's')::int8, (j ->> 'r')::int, (j ->> 'time')::int8, j ->> 'm'
  FROM jsonb_array_elements(p_lines) WITH ORDINALITY AS e(j, ord)
  WHERE EXISTS (SELECT 1 FROM ${S}.subtasks s
                WHERE s.id = (j ->> 's')::int8 AND s.task_id = (j ->> 't')::int8)
  ORDER BY ord
$$;

-- One round trip of an engine: log lines, then ends of attempts, then claims
-- (p_claims: [{e: executor, n: limit}]). Returns {finished, claims: [[...], ...]}.
-- Every query of the hot path is an index probe by design. A fresh schema has no statistics
-- yet, and with default estimates the planner takes a partial index (retries, READY) for a
-- large part of the table and scans the table instead: the hot-path entry points turn
-- sequential scans off.
CREATE FUNCTION ${S}.step(p_logs jsonb, p_items jsonb, p_claims jsonb, p_now int8,
  p_lease_ms int) RETURNS jsonb LANGUAGE plpgsql SET enable_seqscan = off AS $$
DECLARE
  v_finished jsonb := '[]';
  v_claims jsonb := '[]';
  v_request jsonb;
  v_locked bool := false;
BEGIN
  IF p_logs IS NOT NULL THEN PERFORM ${S}.append_logs(p_logs); END IF;
  IF p_items IS NOT NULL THEN
    v_finished := ${S}.finish(p_items);
    v_locked := true;
  END IF;
  FOR v_request IN SELECT * FROM jsonb_array_elements(coalesce(p_claims, '[]')) LOOP
    v_claims := v_claims || jsonb_build_array(${S}.claim(v_request ->> 'e',
      (v_request ->> 'n')::int, p_now, p_lease_ms, NOT v_locked));
    v_locked := true;
  END LOOP;
  RETURN jsonb_build_object('finished', v_finished, 'claims', v_claims);
END $$;

-- Extends the leases of attempts still held ([{s, r, e}]); returns the subtask ids whose lease
-- is lost (the subtask moved on, was re-fenced by a reaper, or the lease expired) and those
-- another engine asked to cancel.
CREATE FUNCTION ${S}.heartbeat(p_fences jsonb, p_lease_ms int) RETURNS jsonb
LANGUAGE plpgsql SET enable_seqscan = off AS $$
DECLARE
  v_lost jsonb;
  v_canceled jsonb;
BEGIN
  WITH f AS (
    SELECT (j ->> 's')::int8 AS sid, (j ->> 'r')::int AS rt, j ->> 'e' AS ex
    FROM jsonb_array_elements(p_fences) j
  ), held AS (
    SELECT x.id FROM ${S}.subtasks x JOIN f ON x.id = f.sid
    WHERE x.run_time = f.rt AND x.executor = f.ex AND x.status IN ('RUNNING', 'CANCELING')
      AND x.lease_until >= now()
    ORDER BY x.id FOR UPDATE OF x SKIP LOCKED
  )
  UPDATE ${S}.subtasks x SET lease_until = now() + p_lease_ms * interval '1 millisecond'
  FROM held WHERE x.id = held.id;
  -- Rows skipped above (locked by a writer) are judged by their committed state.
  SELECT coalesce(jsonb_agg(f.sid) FILTER (WHERE x.id IS NULL), '[]'),
    coalesce(jsonb_agg(f.sid) FILTER (WHERE x.status = 'CANCELING'), '[]')
  INTO v_lost, v_canceled
  FROM (SELECT (j ->> 's')::int8 AS sid, (j ->> 'r')::int AS rt, j ->> 'e' AS ex
        FROM jsonb_array_elements(p_fences) j) f
  LEFT JOIN ${S}.subtasks x ON x.id = f.sid AND x.run_time = f.rt AND x.executor = f.ex
    AND x.status IN ('RUNNING', 'CANCELING') AND x.lease_until >= now();
  RETURN jsonb_build_object('lost', v_lost, 'canceled', v_canceled);
END $$;

-- Takes over up to p_limit attempts whose lease expired: re-fenced to p_executor (with a new
-- lease) in the same statement, so that two reapers never both act on one; the caller then
-- fails them. Returns claims whose executor names the engine that lost the lease.
CREATE FUNCTION ${S}.reap(p_executor text, p_limit int, p_lease_ms int) RETURNS jsonb
LANGUAGE sql SET enable_seqscan = off AS $$
  WITH expired AS (
    SELECT id, executor FROM ${S}.subtasks
    WHERE status IN ('RUNNING', 'CANCELING') AND lease_until < now()
    ORDER BY lease_until LIMIT p_limit
    FOR UPDATE SKIP LOCKED
  ), taken AS (
    UPDATE ${S}.subtasks x SET executor = p_executor,
      lease_until = now() + p_lease_ms * interval '1 millisecond'
    FROM expired e WHERE x.id = e.id
    RETURNING x AS sub, e.executor AS lost_by
  )
  SELECT coalesce(jsonb_agg(jsonb_set(${S}.claim_json(t.sub), '{7}', to_jsonb(t.lost_by))
    ORDER BY (t.sub).id), '[]')
  FROM taken t
$$;
-- Saves a task at submission, its subtasks (bulk, from arrays), its edges and the first audit
-- entry. Subtask ids are consecutive from p_first, in series order. What subtasks of one node
-- share (key, class, name, description, node type, timeout, prohibitRollback) comes once per
-- kind (arrays p_k_*), each subtask naming its kind (p_kind, from 1). Upstream lists come
-- concatenated (p_ups) with each subtask's first index and count; downstreams likewise.
CREATE FUNCTION ${S}.insert_task(p_task jsonb, p_template json, p_context json, p_first int8,
  p_k_keys text[], p_k_classes text[], p_k_names text[], p_k_descriptions text[],
  p_k_node_types text[], p_k_timeouts float8[], p_k_prohibit bool[],
  p_kind int4[], p_parallel int4[], p_ups int8[], p_up_starts int4[], p_up_counts int4[],
  p_downs int8[], p_down_starts int4[], p_down_counts int4[], p_statuses text[],
  p_operations text[], p_run_times int4[], p_actor text, p_now int8)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  v_task int8 := (p_task ->> 'id')::int8;
BEGIN
  INSERT INTO ${S}.tasks (id, name, template, creator, executor, host_id, type,
    task_definition_id, context, status, operation, start_time, concurrency, prohibit_rollback,
    first_subtask_id, subtask_count, n_pending, n_ready, n_running, n_canceling, n_failed,
    n_successful)
  SELECT v_task, p_task ->> 'name', p_template, p_task ->> 'creator',
    p_task ->> 'executor', (p_task ->> 'hostId')::int8, p_task ->> 'type',
    (p_task ->> 'taskDefinitionId')::int8, p_context, p_task ->> 'status',
    p_task ->> 'operation', (p_task ->> 'startTime')::int8, (p_task ->> 'concurrency')::int,
    (p_task ->> 'prohibitRollback')::bool, p_first, cardinality(p_kind),
    count(*) FILTER (WHERE st = 'PENDING'), count(*) FILTER (WHERE st = 'READY'),
    count(*) FILTER (WHERE st = 'RUNNING'), count(*) FILTER (WHERE st = 'CANCELING'),
    count(*) FILTER (WHERE st = 'FAILED'), count(*) FILTER (WHERE st = 'SUCCESSFUL')
  FROM unnest(p_statuses) AS u(st);
  WITH inserted AS (
    INSERT INTO ${S}.subtasks (id, task_id, node_key, series_id, parallel_idx, class_name, name,
      description, node_type, timeout, prohibit_rollback, upstreams, downstreams, status,
      operation, run_time, waiting)
    SELECT p_first + u.ord - 1, v_task, p_k_keys[u.kind], u.ord - 1, u.parallel,
      p_k_classes[u.kind], p_k_names[u.kind], p_k_descriptions[u.kind],
      p_k_node_types[u.kind], p_k_timeouts[u.kind], p_k_prohibit[u.kind],
      CASE WHEN u.up_count = 0 THEN '{}' ELSE p_ups[u.up_start : u.up_start + u.up_count - 1] END,
      CASE WHEN u.down_count = 0 THEN '{}'
        ELSE p_downs[u.down_start : u.down_start + u.down_count - 1] END,
      u.status, u.operation, u.run_time, u.up_count
    FROM unnest(p_kind, p_parallel, p_up_starts, p_up_counts, p_down_starts, p_down_counts,
      p_statuses, p_operations, p_run_times) WITH ORDINALITY
      AS u(kind, parallel, up_start, up_count, down_start, down_count, status, operation,
        run_time, ord)
    RETURNING id, downstreams
  )
  INSERT INTO ${S}.edges (task_id, from_id, to_id)
  SELECT v_task, i.id, d.id FROM inserted i, unnest(i.downstreams) AS d(id);
  INSERT INTO ${S}.audit (task_id, operation, actor, at) VALUES (v_task, 'EXECUTE', p_actor, p_now);
  PERFORM pg_notify('${S}', 'w');
END $$;

-- Locks a task for an operation; refuses with 20000 when it does not exist.
CREATE FUNCTION ${S}.lock_task(p_task int8) RETURNS ${S}.tasks LANGUAGE plpgsql AS $$
DECLARE
  t ${S}.tasks;
BEGIN
  SELECT * INTO t FROM ${S}.tasks WHERE id = p_task FOR UPDATE;
  IF NOT FOUND THEN
    PERFORM ${S}.refuse(20000, format('task %s does not exist', p_task), p_task::text);
  END IF;
  RETURN t;
END $$;

-- A subtask of the task; refuses with 20000 when it is not part of it.
CREATE FUNCTION ${S}.subtask_of(p_task int8, p_subtask int8) RETURNS ${S}.subtasks
LANGUAGE plpgsql AS $$
DECLARE
  x ${S}.subtasks;
BEGIN
  SELECT * INTO x FROM ${S}.subtasks WHERE id = p_subtask AND task_id = p_task;
  IF NOT FOUND THEN
    PERFORM ${S}.refuse(20000, format('subtask %s is not part of task %s', p_subtask, p_task),
      p_subtask::text);
  END IF;
  RETURN x;
END $$;

CREATE FUNCTION ${S}.require_status(x ${S}.subtasks, p_status text, p_verb text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
  IF x.status <> p_status THEN
    PERFORM ${S}.refuse(20003, format('subtask %s is %s: only a %s subtask can be %s',
      x.id, x.status, p_status, p_verb), x.id::text);
  END IF;
END $$;

CREATE FUNCTION ${S}.refuse_in_rollback(t ${S}.tasks, p_verb text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
  IF t.operation = 'ROLLBACK' THEN
    PERFORM ${S}.refuse(20003, format('task %s is being rolled back: it cannot be %s; roll back again or skip the failed rollback',
      t.id, p_verb), t.id::text);
  END IF;
END $$;

CREATE FUNCTION ${S}.audit(p_task int8, p_subtask int8, p_operation text, p_actor text,
  p_at int8) RETURNS void LANGUAGE sql AS $$
  INSERT INTO ${S}.audit (task_id, subtask_id, operation, actor, at)
  VALUES (p_task, p_subtask, p_operation, p_actor, p_at)
$$;

-- FAILED → READY for a new round of attempts (operation RETRY, runTime + 1).
CREATE FUNCTION ${S}.rearm(p_task int8, p_ids int8[]) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
  v_changes jsonb;
  v_ids int8[];
BEGIN
  WITH rearmed AS (
    UPDATE ${S}.subtasks SET run_time = run_time + 1, attempt = 1, status = 'READY',
      operation = 'RETRY', error = NULL, retry_at = NULL, eligible_seq = NULL
    WHERE id = ANY (p_ids) AND status = 'FAILED'
    RETURNING id, run_time
  )
  SELECT coalesce(jsonb_agg(${S}.subtask_change(p_task, id, run_time, 'FAILED', 'READY',
    'RETRY') ORDER BY id), '[]'), array_agg(id)
  INTO v_changes, v_ids FROM rearmed;
  PERFORM ${S}.moved(array_fill(p_task, ARRAY[coalesce(cardinality(v_ids), 0)]), v_ids,
    array_fill('FAILED'::text, ARRAY[coalesce(cardinality(v_ids), 0)]),
    array_fill('READY'::text, ARRAY[coalesce(cardinality(v_ids), 0)]));
  RETURN v_changes;
END $$;

-- A task's subtask ids are first .. last: scans by task go through the primary key.
CREATE FUNCTION ${S}.last_id(t ${S}.tasks) RETURNS int8 LANGUAGE sql IMMUTABLE AS $$
  SELECT t.first_subtask_id + t.subtask_count - 1
$$;

CREATE FUNCTION ${S}.retry_task(p_task int8, p_actor text, p_now int8) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
  t ${S}.tasks := ${S}.lock_task(p_task);
  v jsonb;
BEGIN
  IF t.status <> 'FAILED' THEN
    PERFORM ${S}.refuse(20003, format('task %s is %s: only a FAILED task can be retried',
      t.id, t.status), t.id::text);
  END IF;
  PERFORM ${S}.refuse_in_rollback(t, 'retried');
  v := ${S}.rearm(p_task, ARRAY(
    SELECT id FROM ${S}.subtasks
    WHERE id BETWEEN t.first_subtask_id AND ${S}.last_id(t) AND status = 'FAILED'));
  v := v || ${S}.resume(p_task, 'RETRY', p_now);
  PERFORM ${S}.audit(p_task, NULL, 'RETRY', p_actor, p_now);
  RETURN v || ${S}.settle(p_task, p_now);
END $$;

CREATE FUNCTION ${S}.retry_subtask(p_task int8, p_subtask int8, p_actor text, p_now int8)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
  t ${S}.tasks := ${S}.lock_task(p_task);
  x ${S}.subtasks := ${S}.subtask_of(p_task, p_subtask);
  v jsonb;
BEGIN
  PERFORM ${S}.require_status(x, 'FAILED', 'retried');
  PERFORM ${S}.refuse_in_rollback(t, 'retried');
  v := ${S}.rearm(p_task, ARRAY[x.id]) || ${S}.resume(p_task, 'RETRY', p_now);
  PERFORM ${S}.audit(p_task, x.id, 'RETRY', p_actor, p_now);
  RETURN v || ${S}.settle(p_task, p_now);
END $$;

-- Skip: a FAILED subtask becomes SUCCESSFUL (SKIP) with its input as output; during a rollback,
-- a subtask whose rollback failed becomes PENDING (ROLLBACK_SKIP) without running its rollback.
CREATE FUNCTION ${S}.skip_subtask(p_task int8, p_subtask int8, p_actor text, p_now int8)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
  t ${S}.tasks := ${S}.lock_task(p_task);
  x ${S}.subtasks := ${S}.subtask_of(p_task, p_subtask);
  v jsonb;
  v_operation text;
BEGIN
  PERFORM ${S}.require_status(x, 'FAILED', 'skipped');
  IF t.operation = 'ROLLBACK' THEN
    IF x.rollback_state <> 2 THEN
      PERFORM ${S}.refuse(20003, format('subtask %s is waiting for its rollback: only a subtask whose rollback failed can be skipped during a rollback',
        x.id), x.id::text);
    END IF;
    v_operation := 'ROLLBACK_SKIP';
    UPDATE ${S}.subtasks SET rollback_state = 0, status = 'PENDING', operation = v_operation,
      error = NULL WHERE id = x.id;
    PERFORM ${S}.moved(ARRAY[p_task], ARRAY[x.id], ARRAY['FAILED'], ARRAY['PENDING']);
    UPDATE ${S}.tasks SET failed_rollbacks = failed_rollbacks - 1 WHERE id = p_task;
    PERFORM ${S}.release(x.upstreams, true);
    v := jsonb_build_array(${S}.subtask_change(p_task, x.id, x.run_time, 'FAILED', 'PENDING',
      v_operation)) || ${S}.resume(p_task, 'ROLLBACK', p_now);
  ELSE
    v_operation := 'SKIP';
    UPDATE ${S}.subtasks SET input = coalesce(input, '{}'), output = coalesce(input, '{}'),
      status = 'SUCCESSFUL', operation = v_operation, error = NULL WHERE id = x.id;
    PERFORM ${S}.moved(ARRAY[p_task], ARRAY[x.id], ARRAY['FAILED'], ARRAY['SUCCESSFUL']);
    PERFORM ${S}.release(x.downstreams, false);
    v := jsonb_build_array(${S}.subtask_change(p_task, x.id, x.run_time, 'FAILED',
      'SUCCESSFUL', v_operation)) || ${S}.resume(p_task, 'SKIP', p_now);
  END IF;
  PERFORM ${S}.audit(p_task, x.id, v_operation, p_actor, p_now);
  RETURN v || ${S}.settle(p_task, p_now);
END $$;

-- Cancel subtask: RUNNING → CANCELING; the attempt's end makes it FAILED. Says 'c' on the
-- channel so that the engine running it hears of it at once.
CREATE FUNCTION ${S}.cancel_subtask(p_task int8, p_subtask int8, p_actor text, p_now int8)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
  t ${S}.tasks := ${S}.lock_task(p_task);
  x ${S}.subtasks := ${S}.subtask_of(p_task, p_subtask);
  v_operation text := CASE WHEN t.operation = 'ROLLBACK' THEN 'ROLLBACK' ELSE 'CANCEL' END;
BEGIN
  PERFORM ${S}.require_status(x, 'RUNNING', 'canceled');
  UPDATE ${S}.subtasks SET status = 'CANCELING', operation = v_operation WHERE id = x.id;
  PERFORM ${S}.moved(ARRAY[p_task], ARRAY[x.id], ARRAY['RUNNING'], ARRAY['CANCELING']);
  PERFORM ${S}.audit(p_task, x.id, 'CANCEL', p_actor, p_now);
  PERFORM pg_notify('${S}', 'c');
  RETURN jsonb_build_array(${S}.subtask_change(p_task, x.id, x.run_time, 'RUNNING', 'CANCELING',
    v_operation));
END $$;

-- Cancel task: every RUNNING subtask CANCELING, nothing new starts, FAILED once nothing runs.
CREATE FUNCTION ${S}.cancel_task(p_task int8, p_actor text, p_now int8) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
  t ${S}.tasks := ${S}.lock_task(p_task);
  v_operation text := CASE WHEN t.operation = 'ROLLBACK' THEN 'ROLLBACK' ELSE 'CANCEL' END;
  v jsonb;
  v_ids int8[];
BEGIN
  IF t.status <> 'RUNNING' THEN
    PERFORM ${S}.refuse(20003, format('task %s is %s: only a RUNNING task can be canceled',
      t.id, t.status), t.id::text);
  END IF;
  WITH canceled AS (
    UPDATE ${S}.subtasks SET status = 'CANCELING', operation = v_operation
    WHERE id BETWEEN t.first_subtask_id AND ${S}.last_id(t) AND status = 'RUNNING'
    RETURNING id, run_time
  )
  SELECT coalesce(jsonb_agg(${S}.subtask_change(p_task, id, run_time, 'RUNNING', 'CANCELING',
    v_operation) ORDER BY id), '[]'), array_agg(id) INTO v, v_ids FROM canceled;
  PERFORM ${S}.moved(array_fill(p_task, ARRAY[coalesce(cardinality(v_ids), 0)]), v_ids,
    array_fill('RUNNING'::text, ARRAY[coalesce(cardinality(v_ids), 0)]),
    array_fill('CANCELING'::text, ARRAY[coalesce(cardinality(v_ids), 0)]));
  IF t.operation = 'ROLLBACK' THEN
    UPDATE ${S}.tasks SET rollback_canceled = true WHERE id = p_task;
  ELSE
    UPDATE ${S}.tasks SET operation = 'CANCEL' WHERE id = p_task;
  END IF;
  PERFORM ${S}.audit(p_task, NULL, 'CANCEL', p_actor, p_now);
  IF jsonb_array_length(v) > 0 THEN PERFORM pg_notify('${S}', 'c'); END IF;
  RETURN v || ${S}.settle(p_task, p_now);
END $$;

-- Rollback task (SPEC §5): every subtask that ran gets operation ROLLBACK and waits for its
-- downstreams to be PENDING again; subtasks that never ran are not called.
CREATE FUNCTION ${S}.rollback_task(p_task int8, p_actor text, p_now int8) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
  t ${S}.tasks := ${S}.lock_task(p_task);
  v_prohibiting record;
  v jsonb;
  v_ids int8[];
BEGIN
  IF t.status <> 'FAILED' THEN
    PERFORM ${S}.refuse(20003, format('task %s is %s: only a FAILED task can be rolled back',
      t.id, t.status), t.id::text);
  END IF;
  SELECT id, name INTO v_prohibiting FROM ${S}.subtasks
  WHERE id BETWEEN t.first_subtask_id AND ${S}.last_id(t) AND prohibit_rollback
    AND start_time IS NOT NULL
  ORDER BY id LIMIT 1;
  IF t.prohibit_rollback OR v_prohibiting.id IS NOT NULL THEN
    PERFORM ${S}.refuse(20004, format('task %s cannot be rolled back: %s', t.id,
      CASE WHEN v_prohibiting.id IS NOT NULL
        THEN format('subtask %s (%s) ran and prohibits rollback', v_prohibiting.id,
          v_prohibiting.name)
        ELSE 'its template or arguments prohibit rollback' END),
      coalesce(v_prohibiting.id, t.id)::text);
  END IF;
  WITH reset AS (
    UPDATE ${S}.subtasks SET status = 'PENDING', retry_at = NULL
    WHERE id BETWEEN t.first_subtask_id AND ${S}.last_id(t) AND status = 'READY'
      AND start_time IS NULL
    RETURNING id, run_time, operation
  )
  SELECT coalesce(jsonb_agg(${S}.subtask_change(p_task, id, run_time, 'READY', 'PENDING',
    operation) ORDER BY id), '[]'), array_agg(id) INTO v, v_ids FROM reset;
  PERFORM ${S}.moved(array_fill(p_task, ARRAY[coalesce(cardinality(v_ids), 0)]), v_ids,
    array_fill('READY'::text, ARRAY[coalesce(cardinality(v_ids), 0)]),
    array_fill('PENDING'::text, ARRAY[coalesce(cardinality(v_ids), 0)]));
  UPDATE ${S}.subtasks SET eligible_seq = NULL, rollback_state = 0
  WHERE id BETWEEN t.first_subtask_id AND ${S}.last_id(t)
    AND (eligible_seq IS NOT NULL OR rollback_state <> 0);
  UPDATE ${S}.tasks SET failed_rollbacks = 0 WHERE id = p_task;
  WITH need AS (
    SELECT s.id, s.status, (
      SELECT count(*) FROM unnest(s.downstreams) AS d(id)
      JOIN ${S}.subtasks ds ON ds.id = d.id WHERE ds.status <> 'PENDING')::int AS waiting
    FROM ${S}.subtasks s
    WHERE s.id BETWEEN t.first_subtask_id AND ${S}.last_id(t) AND s.start_time IS NOT NULL
      AND s.status <> 'PENDING'
    ORDER BY s.id
  )
  UPDATE ${S}.subtasks x SET rollback_state = 1, operation = 'ROLLBACK', waiting = n.waiting,
    retry_at = NULL,
    -- Already READY (a retry waiting for its backoff): claimable as it is, not promoted again.
    eligible_seq = CASE WHEN n.waiting = 0 AND n.status <> 'READY'
                        THEN nextval('${S}.eligible_seq') END
  FROM need n WHERE x.id = n.id;
  v := v || ${S}.resume(p_task, 'ROLLBACK', p_now);
  PERFORM ${S}.audit(p_task, NULL, 'ROLLBACK', p_actor, p_now);
  RETURN v || ${S}.settle(p_task, p_now);
END $$;
`,
};
