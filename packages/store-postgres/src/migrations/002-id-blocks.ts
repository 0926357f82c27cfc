import type { Migration } from '../migration.js';

/**
 * Id blocks: a store reserves task ids and subtask ids a block at a time and hands them out from
 * memory, so that a submission costs no round trip for its ids (as a sequence's CACHE does).
 */
export const migration002: Migration = {
  version: 2,
  name: 'id blocks',
  sql: (S) => `
-- Reserves p_tasks consecutive task ids and p_subtasks consecutive subtask ids.
CREATE FUNCTION ${S}.reserve_blocks(p_tasks int, p_subtasks int) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
  v_task int8;
  v_first int8;
BEGIN
  IF p_tasks < 1 OR p_subtasks < 0 THEN
    PERFORM ${S}.refuse(20011, format('cannot reserve %s task ids and %s subtask ids',
      p_tasks, p_subtasks), NULL);
  END IF;
  PERFORM pg_advisory_xact_lock(7290101, hashtext('${S}'));
  v_task := nextval('${S}.task_id_seq');
  IF p_tasks > 1 THEN
    PERFORM setval('${S}.task_id_seq', v_task + p_tasks - 1);
  END IF;
  v_first := nextval('${S}.subtask_id_seq');
  IF p_subtasks > 1 THEN
    PERFORM setval('${S}.subtask_id_seq', v_first + p_subtasks - 1);
  END IF;
  RETURN jsonb_build_object('firstTaskId', v_task, 'firstSubtaskId', v_first);
END $$;
`,
};
