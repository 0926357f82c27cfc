import type { Migration } from '../migration.js';

/**
 * A large task is saved in two transactions, so that its first subtasks start while the rest
 * is still being written. Saving a 10,000-host batch stop (30,002 subtasks, 40,000 edges) took
 * ~220 ms of one transaction, and no subtask could start before it committed.
 *
 * The first transaction (`save_task`) saves the task row with the counters of all its
 * subtasks, the rows of the first few hundred subtasks, and the rest as one JSON value in
 * `task_rest`: the task is durable and complete from then on, the submission is acknowledged,
 * and engines may claim. `materialize` then writes the rest's rows and edges from `task_rest`
 * and deletes it, in the second transaction; the submitting store runs it at once, and any
 * store's reaper runs it for a submitter that died in between.
 *
 * Until then, only the subtasks of the head can change, and only by their attempts (claims and
 * finishes): every operation (`lock_task`) and every read that needs all subtasks completes the
 * task first. A head subtask that succeeds before its downstream's row exists cannot decrement
 * that row's waiting count; `materialize` counts such upstreams itself, under the task's lock,
 * which every finish also takes.
 */
export const migration005: Migration = {
  version: 5,
  name: 'submit head first',
  sql: (S) => `
CREATE TABLE ${S}.task_rest (
  task_id int8 PRIMARY KEY,
  -- Subtasks of the head (saved with the task): the rest starts at ordinal head + 1.
  head int4 NOT NULL,
  -- The arguments of insert_subtasks, as a JSON object of arrays (see materialize).
  rest json NOT NULL
);
-- Written once and read once: not worth compressing on the submission's critical path.
ALTER TABLE ${S}.task_rest ALTER COLUMN rest SET STORAGE EXTERNAL;

-- Inserts the subtasks of ordinals p_from .. p_to (from 1) of a task and their outgoing edges,
-- from the arrays save_task takes (see there).
CREATE FUNCTION ${S}.insert_subtasks(p_task int8, p_first int8, p_from int4, p_to int4,
  p_k_keys text[], p_k_classes text[], p_k_names text[], p_k_descriptions text[],
  p_k_node_types text[], p_k_timeouts float8[], p_k_prohibit bool[],
  p_kind int4[], p_parallel int4[], p_ups int8[], p_up_starts int4[], p_up_counts int4[],
  p_downs int8[], p_down_starts int4[], p_down_counts int4[], p_statuses text[],
  p_operations text[], p_run_times int4[])
RETURNS void LANGUAGE sql AS $$
  WITH inserted AS (
    INSERT INTO ${S}.subtasks (id, task_id, node_key, series_id, parallel_idx, class_name, name,
      description, node_type, timeout, prohibit_rollback, upstreams, downstreams, status,
      operation, run_time, waiting)
    SELECT p_first + u.ord - 1, p_task, p_k_keys[u.kind], u.ord - 1, u.parallel,
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
    WHERE u.ord BETWEEN p_from AND p_to
    RETURNING id, downstreams
  )
  INSERT INTO ${S}.edges (task_id, from_id, to_id)
  SELECT p_task, i.id, d.id FROM inserted i, unnest(i.downstreams) AS d(id)
$$;

-- The insert_task of migration 001 gives way to save_task.
DROP FUNCTION ${S}.insert_task(jsonb, json, json, int8, text[], text[], text[], text[], text[],
  float8[], bool[], int4[], int4[], int8[], int4[], int4[], int8[], int4[], int4[], text[], text[],
  int4[], text, int8);

-- Saves a task at submission (one transaction): the task row with the counters of all its
-- p_count subtasks (p_counts: pending, ready, running, canceling, failed, successful), the first
-- audit entry, and the subtasks of the arrays given with their edges. With p_rest null these
-- are all of them. Otherwise they are the head, and p_rest is the JSON object {keys, classes,
-- names, descriptions, nodeTypes, timeouts, prohibit, kind, parallel, ups, upStarts, upCounts,
-- downs, downStarts, downCounts, statuses, operations, runTimes} of these arrays for all
-- subtasks, kept in task_rest for materialize.
CREATE FUNCTION ${S}.save_task(p_task jsonb, p_template json, p_context json,
  p_first int8, p_count int4, p_counts int4[], p_k_keys text[], p_k_classes text[],
  p_k_names text[], p_k_descriptions text[], p_k_node_types text[], p_k_timeouts float8[],
  p_k_prohibit bool[], p_kind int4[], p_parallel int4[], p_ups int8[], p_up_starts int4[],
  p_up_counts int4[], p_downs int8[], p_down_starts int4[], p_down_counts int4[],
  p_statuses text[], p_operations text[], p_run_times int4[], p_rest json, p_actor text,
  p_now int8)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  v_task int8 := (p_task ->> 'id')::int8;
BEGIN
  IF (p_rest IS NULL) <> (cardinality(p_kind) = p_count) THEN
    RAISE EXCEPTION 'save_task: % of % subtasks given, % rest', cardinality(p_kind), p_count,
      CASE WHEN p_rest IS NULL THEN 'without a' ELSE 'with a' END;
  END IF;
  INSERT INTO ${S}.tasks (id, name, template, creator, executor, host_id, type,
    task_definition_id, context, status, operation, start_time, concurrency, prohibit_rollback,
    first_subtask_id, subtask_count, n_pending, n_ready, n_running, n_canceling, n_failed,
    n_successful)
  VALUES (v_task, p_task ->> 'name', p_template, p_task ->> 'creator',
    p_task ->> 'executor', (p_task ->> 'hostId')::int8, p_task ->> 'type',
    (p_task ->> 'taskDefinitionId')::int8, p_context, p_task ->> 'status',
    p_task ->> 'operation', (p_task ->> 'startTime')::int8, (p_task ->> 'concurrency')::int,
    (p_task ->> 'prohibitRollback')::bool, p_first, p_count, p_counts[1], p_counts[2],
    p_counts[3], p_counts[4], p_counts[5], p_counts[6]);
  PERFORM ${S}.insert_subtasks(v_task, p_first, 1, cardinality(p_kind), p_k_keys, p_k_classes,
    p_k_names, p_k_descriptions, p_k_node_types, p_k_timeouts, p_k_prohibit, p_kind,
    p_parallel, p_ups, p_up_starts, p_up_counts, p_downs, p_down_starts, p_down_counts,
    p_statuses, p_operations, p_run_times);
  IF p_rest IS NOT NULL THEN
    INSERT INTO ${S}.task_rest (task_id, head, rest) VALUES (v_task, cardinality(p_kind), p_rest);
  END IF;
  INSERT INTO ${S}.audit (task_id, operation, actor, at) VALUES (v_task, 'EXECUTE', p_actor, p_now);
  PERFORM ${S}.notify('w');
END $$;

-- The elements of a JSON array, in order.
CREATE FUNCTION ${S}.json_texts(p_array jsonb) RETURNS text[] LANGUAGE sql IMMUTABLE AS $$
  SELECT coalesce(array_agg(e ORDER BY o), '{}')
  FROM jsonb_array_elements_text(p_array) WITH ORDINALITY AS a(e, o)
$$;

-- Writes the rest of a task saved head first and deletes its task_rest row; returns whether
-- it did. Waits for a materialize already under way (p_wait) or leaves the task to it.
CREATE FUNCTION ${S}.materialize(p_task int8, p_wait bool) RETURNS bool
LANGUAGE plpgsql SET enable_seqscan = off AS $$
DECLARE
  v_head int4;
  v_rest jsonb;
  v_first int8;
  v_count int4;
BEGIN
  IF p_wait THEN
    SELECT head, rest::jsonb INTO v_head, v_rest FROM ${S}.task_rest
    WHERE task_id = p_task FOR UPDATE;
  ELSE
    SELECT head, rest::jsonb INTO v_head, v_rest FROM ${S}.task_rest
    WHERE task_id = p_task FOR UPDATE SKIP LOCKED;
  END IF;
  IF NOT FOUND THEN RETURN false; END IF;
  SELECT first_subtask_id, subtask_count INTO v_first, v_count FROM ${S}.tasks
  WHERE id = p_task;
  PERFORM ${S}.insert_subtasks(p_task, v_first, v_head + 1, v_count,
    ${S}.json_texts(v_rest -> 'keys'), ${S}.json_texts(v_rest -> 'classes'),
    ${S}.json_texts(v_rest -> 'names'), ${S}.json_texts(v_rest -> 'descriptions'),
    ${S}.json_texts(v_rest -> 'nodeTypes'), ${S}.json_texts(v_rest -> 'timeouts')::float8[],
    ${S}.json_texts(v_rest -> 'prohibit')::bool[], ${S}.json_texts(v_rest -> 'kind')::int4[],
    ${S}.json_texts(v_rest -> 'parallel')::int4[], ${S}.json_texts(v_rest -> 'ups')::int8[],
    ${S}.json_texts(v_rest -> 'upStarts')::int4[], ${S}.json_texts(v_rest -> 'upCounts')::int4[],
    ${S}.json_texts(v_rest -> 'downs')::int8[], ${S}.json_texts(v_rest -> 'downStarts')::int4[],
    ${S}.json_texts(v_rest -> 'downCounts')::int4[], ${S}.json_texts(v_rest -> 'statuses'),
    ${S}.json_texts(v_rest -> 'operations'), ${S}.json_texts(v_rest -> 'runTimes')::int4[]);
  -- Finishes take the task's lock: from here no head subtask succeeds unseen.
  PERFORM 1 FROM ${S}.tasks WHERE id = p_task FOR UPDATE;
  UPDATE ${S}.subtasks x SET waiting = x.waiting - r.n,
    eligible_seq = CASE WHEN x.waiting - r.n = 0 THEN nextval('${S}.eligible_seq')
                        ELSE x.eligible_seq END
  FROM (
    SELECT d AS id, count(*)::int AS n
    FROM ${S}.subtasks s, unnest(s.downstreams) AS d
    WHERE s.id BETWEEN v_first AND v_first + v_head - 1 AND s.status = 'SUCCESSFUL'
      AND d >= v_first + v_head
    GROUP BY d
  ) r
  WHERE x.id = r.id;
  DELETE FROM ${S}.task_rest WHERE task_id = p_task;
  PERFORM ${S}.settle(p_task, (extract(epoch FROM clock_timestamp()) * 1000)::int8);
  RETURN true;
END $$;

-- Writes the rests no store is writing (their submitter died between its two transactions);
-- returns how many.
CREATE FUNCTION ${S}.materialize_left() RETURNS int LANGUAGE plpgsql AS $$
DECLARE
  v_task int8;
  v_written int := 0;
BEGIN
  FOR v_task IN SELECT task_id FROM ${S}.task_rest ORDER BY task_id LOOP
    IF ${S}.materialize(v_task, false) THEN v_written := v_written + 1; END IF;
  END LOOP;
  RETURN v_written;
END $$;

-- Every operation sees the whole task: a task saved head first is completed first.
CREATE OR REPLACE FUNCTION ${S}.lock_task(p_task int8) RETURNS ${S}.tasks LANGUAGE plpgsql AS $$
DECLARE
  t ${S}.tasks;
BEGIN
  PERFORM ${S}.materialize(p_task, true);
  SELECT * INTO t FROM ${S}.tasks WHERE id = p_task FOR UPDATE;
  IF NOT FOUND THEN
    PERFORM ${S}.refuse(20000, format('task %s does not exist', p_task), p_task::text);
  END IF;
  RETURN t;
END $$;
`,
};
