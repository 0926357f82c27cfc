import type { Migration } from '../migration.js';
import { STORE_FORGOTTEN_AFTER_MS } from './003-quiet-alone.js';

/**
 * Work notices paced by the writer. With several engines open every step notified `w`, and
 * a notifying commit holds the database's notification-queue lock until it is flushed: the
 * steps of all engines went one at a time through that lock. The writing store now keeps most
 * steps quiet (transaction-local setting `dagops.quiet` = 'w') and sends one notice per window
 * instead (see work-notices.ts). Other payloads (a task finished, a retry due, a cancel) are
 * sent as before.
 */
export const migration007: Migration = {
  version: 7,
  name: 'paced work notices',
  sql: (S) => `
-- As in migration 003, saying nothing of new work in a transaction its writer keeps quiet.
CREATE OR REPLACE FUNCTION ${S}.notify(p_payload text) RETURNS void LANGUAGE plpgsql
SET enable_seqscan = on SET jit = off AS $$
BEGIN
  IF p_payload = 'w' AND current_setting('dagops.quiet', true) = 'w' THEN RETURN; END IF;
  IF EXISTS (SELECT 1 FROM ${S}.stores
             WHERE id IS DISTINCT FROM current_setting('dagops.store', true)
               AND seen_at > now() - ${STORE_FORGOTTEN_AFTER_MS} * interval '1 millisecond') THEN
    PERFORM pg_notify('${S}', p_payload);
  END IF;
END $$;
`,
};
