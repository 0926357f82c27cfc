import { randomUUID } from 'node:crypto';
import { STORE_FORGOTTEN_AFTER_MS, STORE_SEEN_EVERY_MS } from '../migrations/003-quiet-alone.js';
import type { SqlDriver } from '../sql-driver.js';

/**
 * A store's row in the schema's `stores` table, written when it opens (before it returns, so
 * that every later write of other stores notifies it), refreshed every
 * {@link STORE_SEEN_EVERY_MS} and removed when it closes. The SQL `notify` function says
 * nothing when no other store is open (migration 3). A failed refresh is tried again at the
 * next one; a store not seen for {@link STORE_FORGOTTEN_AFTER_MS} is not notified.
 */
export class Presence {
  /** This store's id: the writer whose own engine needs no notification. */
  readonly id = randomUUID();
  private timer: ReturnType<typeof setInterval> | undefined;
  private writes: Promise<void> = Promise.resolve();
  private stopped = false;

  constructor(
    private readonly driver: SqlDriver,
    private readonly schema: string,
  ) {}

  /** Records this store (and forgets stores not seen for {@link STORE_FORGOTTEN_AFTER_MS}). */
  async start(): Promise<void> {
    await this.driver.query(
      `DELETE FROM ${this.schema}.stores
       WHERE seen_at < now() - $1 * interval '1 millisecond'`,
      [STORE_FORGOTTEN_AFTER_MS],
    );
    await this.save();
    this.timer = setInterval(() => this.write(), STORE_SEEN_EVERY_MS);
    this.timer.unref();
  }

  /** Waits for pending writes and removes this store's row. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer !== undefined) clearInterval(this.timer);
    await this.writes;
    await this.driver.query(`DELETE FROM ${this.schema}.stores WHERE id = $1`, [this.id]);
  }

  private write(): void {
    this.writes = this.writes.then(() => (this.stopped ? undefined : this.save().catch(() => {})));
  }

  private async save(): Promise<void> {
    await this.driver.query(
      `INSERT INTO ${this.schema}.stores (id) VALUES ($1)
       ON CONFLICT (id) DO UPDATE SET seen_at = now()`,
      [this.id],
    );
  }
}
