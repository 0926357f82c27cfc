import type { Migration } from '../migration.js';

/**
 * The rest of a task saved head first is written a chunk at a time. `materialize` wrote all of
 * it in one transaction: ~400 ms for a 10,000-host batch stop, while its 512-subtask head ran
 * out in ~70 ms and the engines waited for the rest's rows. Now the submitting store writes it
 * in chunks (`write_rest`), each chunk's subtasks claimable once its transaction commits. The
 * store encodes each chunk from what it saved, as plain arrays of that chunk alone, so the
 * database never decodes the whole rest more than once, as `materialize` still does for a
 * submitter that died (its reapers) and for an operation that needs the whole task.
 *
 * `task_rest.head` is now the number of subtasks written so far (the head, then each chunk);
 * `materialize` already writes from there on. The chunk's subtasks whose upstreams succeeded
 * before the chunk's rows existed are counted, under the task's lock, from their own upstream
 * lists: each edge is looked at once over the whole rest, not once per chunk.
 */
export const migration009: Migration = {
  version: 9,
  name: 'rest in chunks',
  sql: (S) => `
-- Inserts subtasks and their outgoing edges from arrays whose ordinal 1 is the subtask of
-- ordinal p_offset + 1 of the task (insert_subtasks is this with p_offset 0): ordinals
-- p_from .. p_to of the arrays.
CREATE FUNCTION ${S}.insert_subtasks_at(p_task int8, p_first int8, p_offset int4,
  p_from int4, p_to int4, p_k_keys text[], p_k_classes text[], p_k_names text[],
  p_k_descriptions text[], p_k_node_types text[], p_k_timeouts float8[], p_k_prohibit bool[],
  p_kind int4[], p_parallel int4[], p_ups int8[], p_up_starts int4[], p_up_counts int4[],
  p_downs int8[], p_down_starts int4[], p_down_counts int4[], p_statuses text[],
  p_operations text[], p_run_times int4[])
RETURNS void LANGUAGE sql AS $$
  WITH inserted AS (
    INSERT INTO ${S}.subtasks (id, task_id, node_key, series_id, parallel_idx, class_name, name,
      description, node_type, timeout, prohibit_rollback, upstreams, downstreams, status,
      operation, run_time, waiting)
    SELECT p_first + p_offset + u.ord - 1, p_task, p_k_keys[u.kind], p_offset + u.ord - 1,
      u.parallel, p_k_classes[u.kind], p_k_names[u.kind], p_k_descriptions[u.kind],
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

CREATE OR REPLACE FUNCTION ${S}.insert_subtasks(p_task int8, p_first int8, p_from int4,
  p_to int4, p_k_keys text[], p_k_classes text[], p_k_names text[], p_k_descriptions text[],
  p_k_node_types text[], p_k_timeouts float8[], p_k_prohibit bool[],
  p_kind int4[], p_parallel int4[], p_ups int8[], p_up_starts int4[], p_up_counts int4[],
  p_downs int8[], p_down_starts int4[], p_down_counts int4[], p_statuses text[],
  p_operations text[], p_run_times int4[])
RETURNS void LANGUAGE sql AS $$
  SELECT ${S}.insert_subtasks_at(p_task, p_first, 0, p_from, p_to, p_k_keys, p_k_classes,
    p_k_names, p_k_descriptions, p_k_node_types, p_k_timeouts, p_k_prohibit, p_kind,
    p_parallel, p_ups, p_up_starts, p_up_counts, p_downs, p_down_starts, p_down_counts,
    p_statuses, p_operations, p_run_times)
$$;

-- Writes subtasks p_from .. p_to (task ordinals, from 1) of the rest of task p_task, from the
-- arrays of those subtasks alone (insert_subtasks' arrays, ordinal 1 the subtask p_from), when
-- the rest is written up to p_from - 1 and no one else is writing it; deletes task_rest with
-- the last chunk. Returns whether it wrote them: false when the task has no rest left, or
-- another transaction writes it (a reaper, an operation), or has written past p_from - 1.
CREATE FUNCTION ${S}.write_rest(p_task int8, p_from int4, p_to int4, p_k_keys text[],
  p_k_classes text[], p_k_names text[], p_k_descriptions text[], p_k_node_types text[],
  p_k_timeouts float8[], p_k_prohibit bool[], p_kind int4[], p_parallel int4[], p_ups int8[],
  p_up_starts int4[], p_up_counts int4[], p_downs int8[], p_down_starts int4[],
  p_down_counts int4[], p_statuses text[], p_operations text[], p_run_times int4[])
RETURNS bool LANGUAGE plpgsql SET enable_seqscan = off AS $$
DECLARE
  v_head int4;
  v_first int8;
  v_count int4;
  v_lo int8;
  v_hi int8;
BEGIN
  SELECT head INTO v_head FROM ${S}.task_rest WHERE task_id = p_task FOR UPDATE SKIP LOCKED;
  IF NOT FOUND OR v_head <> p_from - 1 THEN RETURN false; END IF;
  SELECT first_subtask_id, subtask_count INTO v_first, v_count FROM ${S}.tasks
  WHERE id = p_task;
  IF p_to < p_from OR p_to > v_count OR cardinality(p_kind) <> p_to - p_from + 1 THEN
    RAISE EXCEPTION 'write_rest: subtasks % .. % of task % (of %) with % given', p_from, p_to,
      p_task, v_count, cardinality(p_kind);
  END IF;
  v_lo := v_first + p_from - 1;
  v_hi := v_first + p_to - 1;
  PERFORM ${S}.insert_subtasks_at(p_task, v_first, p_from - 1, 1, p_to - p_from + 1, p_k_keys,
    p_k_classes, p_k_names, p_k_descriptions, p_k_node_types, p_k_timeouts, p_k_prohibit,
    p_kind, p_parallel, p_ups, p_up_starts, p_up_counts, p_downs, p_down_starts,
    p_down_counts, p_statuses, p_operations, p_run_times);
  IF (SELECT count(*) FROM ${S}.subtasks WHERE id BETWEEN v_lo AND v_hi) <> p_to - p_from + 1
  THEN
    RAISE EXCEPTION 'write_rest: the arrays of task % do not hold its subtasks % .. %', p_task,
      p_from, p_to;
  END IF;
  -- Finishes take the task's lock: from here no upstream succeeds unseen. Upstreams always come
  -- earlier in the series, so they are written already.
  PERFORM 1 FROM ${S}.tasks WHERE id = p_task FOR UPDATE;
  UPDATE ${S}.subtasks x SET waiting = x.waiting - r.n,
    eligible_seq = CASE WHEN x.waiting - r.n = 0 THEN nextval('${S}.eligible_seq')
                        ELSE x.eligible_seq END
  FROM (
    SELECT c.id, count(*)::int AS n
    FROM ${S}.subtasks c, unnest(c.upstreams) AS u(id), ${S}.subtasks s
    WHERE c.id BETWEEN v_lo AND v_hi AND s.id = u.id AND s.status = 'SUCCESSFUL'
    GROUP BY c.id
  ) r
  WHERE x.id = r.id;
  IF p_to = v_count THEN
    DELETE FROM ${S}.task_rest WHERE task_id = p_task;
  ELSE
    UPDATE ${S}.task_rest SET head = p_to WHERE task_id = p_task;
  END IF;
  PERFORM ${S}.settle(p_task, (extract(epoch FROM clock_timestamp()) * 1000)::int8);
  RETURN true;
END $$;
`,
};
