import type { Migration } from '../migration.js';

/** How often a store says it is still there, and after how long without it it is not counted. */
export const STORE_SEEN_EVERY_MS = 10_000;
export const STORE_FORGOTTEN_AFTER_MS = 6 * STORE_SEEN_EVERY_MS;

/**
 * Notifications only when someone else listens. A transaction that NOTIFYs holds a lock on the
 * database's notification queue until its commit is flushed, so every notifying commit in the
 * database waits for the one before it: a single engine submitting and finishing tasks spent
 * most of its time there (245 submissions/s with NOTIFY, 800/s without, on this machine's
 * disk). Each open store records itself (`stores`), and `notify` says nothing when no other
 * store is open: the writer's own engine learns of its changes from their results. Every `pg_notify` of the schema's functions becomes a call of `notify`.
 */
export const migration003: Migration = {
  version: 3,
  name: 'quiet when alone',
  sql: (S) => `
CREATE TABLE ${S}.stores (
  id text PRIMARY KEY,
  seen_at timestamptz NOT NULL DEFAULT now()
);

-- Notifies when a store other than the writer is open. The writing store names itself in the
-- transaction-local setting dagops.store (empty when several engines listen through it, so
-- that they hear of each other); a writer that does not name itself notifies every store.
-- Its query scans a table of a few rows: with the hot path's enable_seqscan = off, the scan's
-- penalty cost would set off JIT compilation (milliseconds per call), hence its own settings.
CREATE FUNCTION ${S}.notify(p_payload text) RETURNS void LANGUAGE plpgsql
SET enable_seqscan = on SET jit = off AS $$
BEGIN
  IF EXISTS (SELECT 1 FROM ${S}.stores
             WHERE id IS DISTINCT FROM current_setting('dagops.store', true)
               AND seen_at > now() - ${STORE_FORGOTTEN_AFTER_MS} * interval '1 millisecond') THEN
    PERFORM pg_notify('${S}', p_payload);
  END IF;
END $$;

DO $$
DECLARE
  f oid;
BEGIN
  FOR f IN
    SELECT p.oid FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
    WHERE n.nspname = '${S}' AND p.proname <> 'notify' AND p.prosrc LIKE '%pg_notify(%'
  LOOP
    EXECUTE replace(pg_get_functiondef(f), 'pg_notify(''${S}'', ', '${S}.notify(');
  END LOOP;
  IF EXISTS (SELECT 1 FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
             WHERE n.nspname = '${S}' AND p.proname <> 'notify' AND p.prosrc LIKE '%pg_notify(%') THEN
    RAISE EXCEPTION 'a function of ${S} still calls pg_notify directly';
  END IF;
END $$;
`,
};
