import pg from 'pg';
import { DATABASE_URL, databaseUrl } from './services.js';

/**
 * A PostgreSQL client of the test's own, outside the application's pool, for injecting database
 * faults: dropping the application's connections, or holding a row lock to line up racing
 * transactions. Close it in `afterAll`.
 */
export class PgAdmin {
  private constructor(
    private readonly client: pg.Client,
    readonly database: string,
  ) {}

  /** Connects to the server's maintenance database (not `database`, so its own backend is never a target). */
  static async connect(database: string): Promise<PgAdmin> {
    const client = new pg.Client({ connectionString: DATABASE_URL });
    client.on('error', () => undefined);
    await client.connect();
    return new PgAdmin(client, database);
  }

  async query<T extends Record<string, unknown>>(sql: string, params: unknown[] = []): Promise<T[]> {
    return (await this.client.query<T>(sql, params)).rows;
  }

  /**
   * Drops every connection to the database, but only at a moment when one of them is inside a
   * transaction that has written (or locked) something: the middle of a batch. Returns how many
   * connections were dropped, 0 when no transaction was under way.
   */
  async terminateAllMidTransaction(): Promise<number> {
    // pg_terminate_backend() stays in the select list, over a materialized target list: in a WHERE
    // clause nothing fixes the evaluation order, and it must never reach a backend of another database.
    const rows = await this.query<{ dropped: boolean }>(
      `with targets as materialized (
         select pid from pg_stat_activity
         where datname = $1 and pid <> pg_backend_pid()
           and exists (select 1 from pg_stat_activity busy
                       where busy.datname = $1 and busy.pid <> pg_backend_pid() and busy.backend_xid is not null and busy.state <> 'idle'))
       select pg_terminate_backend(pid) as dropped from targets`,
      [this.database],
    );
    return rows.filter((row) => row.dropped).length;
  }

  /** Backends of the database waiting for a lock (e.g. racing transactions lined up behind a `RowLock`). */
  async lockWaiters(): Promise<number[]> {
    const rows = await this.query<{ pid: number }>(
      `select pid from pg_stat_activity where datname = $1 and pid <> pg_backend_pid() and wait_event_type = 'Lock'`,
      [this.database],
    );
    return rows.map((row) => row.pid);
  }

  /** Terminates the given backends (only those connected to the database). */
  async terminate(pids: readonly number[]): Promise<void> {
    await this.query(
      `with targets as materialized (select pid from pg_stat_activity where datname = $1 and pid = any($2::int[]))
       select pg_terminate_backend(pid) from targets`,
      [this.database, pids],
    );
  }

  async close(): Promise<void> {
    await this.client.end().catch(() => undefined);
  }
}

/**
 * A transaction on the test database that holds `FOR SHARE` on a row: it blocks its updates,
 * deletion and `SELECT ... FOR UPDATE`, but not plain reads, so racing deletions can be lined up
 * at the same point and then let go together with `release()`.
 */
export class RowLock {
  private constructor(private readonly client: pg.Client) {}

  static async hold(database: string, table: string, id: number): Promise<RowLock> {
    const client = new pg.Client({ connectionString: databaseUrl(database) });
    client.on('error', () => undefined);
    await client.connect();
    await client.query('begin');
    const { rowCount } = await client.query(`select 1 from ${client.escapeIdentifier(table)} where id = $1 for share`, [id]);
    if (rowCount !== 1) {
      await client.end();
      throw new Error(`no ${table} row ${id} to lock`);
    }
    return new RowLock(client);
  }

  async release(): Promise<void> {
    await this.client.query('commit').catch(() => undefined);
    await this.client.end().catch(() => undefined);
  }
}
