import type { Migration } from '../migration.js';

/**
 * The rest of a task saved head first is kept as runs. Migration 005 kept it as plain JSON
 * arrays, 1.8 MB for a 10,000-host batch stop: building, sending and checking that value was
 * most of the first transaction (~35 ms of ~60). An expanded DAG is regular (consecutive
 * subtasks of one node, ids counting up, the same upstream repeated), so each integer array is
 * now saved as arithmetic runs (start, step, length) and each text array as its distinct values
 * and the runs of their indexes: a few hundred bytes for the same task (see subtask-runs.ts).
 *
 * `materialize` reads both forms: a rest saved by an engine of the previous version (plain
 * arrays) is still written out after this migration. It also checks that the rest held every
 * subtask the task counts (a malformed rest is an error, not a task missing rows), and
 * `materialize_left` goes on past a rest it cannot write, so that one bad rest does not stop
 * every reaper pass (the reaper also fails expired attempts).
 */
export const migration006: Migration = {
  version: 6,
  name: 'rest as runs',
  sql: (S) => `
-- The integers of the runs {s: starts, d: steps, n: lengths}: s + d * 0 .. s + d * (n - 1) for
-- each run, in order.
CREATE FUNCTION ${S}.from_runs(p_runs jsonb) RETURNS int8[] LANGUAGE sql IMMUTABLE AS $$
  SELECT coalesce(array_agg(r.s + r.d * g.i ORDER BY r.o, g.i), '{}')
  FROM unnest(${S}.json_texts(p_runs -> 's')::int8[], ${S}.json_texts(p_runs -> 'd')::int8[],
    ${S}.json_texts(p_runs -> 'n')::int4[]) WITH ORDINALITY AS r(s, d, n, o),
    generate_series(0, r.n - 1) AS g(i)
$$;

-- Array p_name of a rest: runs (a rest with "runs") or a plain JSON array (migration 005).
CREATE FUNCTION ${S}.rest_ints(p_rest jsonb, p_name text) RETURNS int8[] LANGUAGE sql
IMMUTABLE AS $$
  SELECT CASE WHEN p_rest ? 'runs' THEN ${S}.from_runs(p_rest -> p_name)
              ELSE ${S}.json_texts(p_rest -> p_name)::int8[] END
$$;

-- Text array p_name of a rest: {values, at: runs of indexes into values, from 1}, or plain.
-- PL/pgSQL so that the values are read once, not once per element.
CREATE FUNCTION ${S}.rest_texts(p_rest jsonb, p_name text) RETURNS text[] LANGUAGE plpgsql
IMMUTABLE AS $$
DECLARE
  v_values text[];
BEGIN
  IF NOT p_rest ? 'runs' THEN RETURN ${S}.json_texts(p_rest -> p_name); END IF;
  v_values := ${S}.json_texts(p_rest -> p_name -> 'values');
  RETURN ARRAY(SELECT v_values[c.i] FROM unnest(${S}.from_runs(p_rest -> p_name -> 'at'))
    WITH ORDINALITY AS c(i, o) ORDER BY c.o);
END $$;

-- As in migration 005, reading the rest's arrays in either form.
CREATE OR REPLACE FUNCTION ${S}.materialize(p_task int8, p_wait bool) RETURNS bool
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
    ${S}.json_texts(v_rest -> 'prohibit')::bool[], ${S}.rest_ints(v_rest, 'kind')::int4[],
    ${S}.rest_ints(v_rest, 'parallel')::int4[], ${S}.rest_ints(v_rest, 'ups'),
    ${S}.rest_ints(v_rest, 'upStarts')::int4[], ${S}.rest_ints(v_rest, 'upCounts')::int4[],
    ${S}.rest_ints(v_rest, 'downs'), ${S}.rest_ints(v_rest, 'downStarts')::int4[],
    ${S}.rest_ints(v_rest, 'downCounts')::int4[], ${S}.rest_texts(v_rest, 'statuses'),
    ${S}.rest_texts(v_rest, 'operations'), ${S}.rest_ints(v_rest, 'runTimes')::int4[]);
  -- By the id range (the primary key): subtasks has no index on task_id.
  IF (SELECT count(*) FROM ${S}.subtasks WHERE id BETWEEN v_first AND v_first + v_count - 1)
     <> v_count THEN
    RAISE EXCEPTION 'materialize: the rest of task % does not hold its % subtasks', p_task,
      v_count;
  END IF;
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

-- As in migration 005; a rest that cannot be written is left (with a warning in the server's
-- log) for the others, and for whoever repairs it.
CREATE OR REPLACE FUNCTION ${S}.materialize_left() RETURNS int LANGUAGE plpgsql AS $$
DECLARE
  v_task int8;
  v_written int := 0;
BEGIN
  FOR v_task IN SELECT task_id FROM ${S}.task_rest ORDER BY task_id LOOP
    BEGIN
      IF ${S}.materialize(v_task, false) THEN v_written := v_written + 1; END IF;
    EXCEPTION WHEN OTHERS THEN
      RAISE WARNING 'dagops: the rest of task % is not written: %', v_task, SQLERRM;
    END;
  END LOOP;
  RETURN v_written;
END $$;
`,
};
