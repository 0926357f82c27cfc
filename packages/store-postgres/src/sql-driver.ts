/** Rows of a query. */
export interface SqlResult<R> {
  readonly rows: R[];
}

/** What runs SQL: a driver, or a transaction of one. */
export interface SqlQueryable {
  /** Runs one parameterised statement ($1, $2…). `int8` values come back as numbers. */
  query<R = Record<string, unknown>>(
    text: string,
    params?: readonly unknown[],
  ): Promise<SqlResult<R>>;
  /** Runs a script of several statements without parameters (migrations). */
  exec(text: string): Promise<void>;
}

/**
 * The one thing the store needs from a database: PostgreSQL's dialect through a server (`pg`)
 * or embedded (PGlite). Both speak the same SQL; only connections differ.
 */
export interface SqlDriver extends SqlQueryable {
  /** Runs `fn` in one transaction: committed when it resolves, rolled back when it throws. */
  transaction<T>(fn: (tx: SqlQueryable) => Promise<T>): Promise<T>;
  /**
   * Calls `onNotify` with the payload of every NOTIFY on `channel`; resolves once listening.
   * Returns a function that stops listening.
   */
  listen(channel: string, onNotify: (payload: string) => void): Promise<() => Promise<void>>;
  /** Closes the connections this driver opened (not a pool or database it was handed). */
  close(): Promise<void>;
}
