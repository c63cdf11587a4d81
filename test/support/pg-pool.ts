import type { DeletionTestApp } from './deletion-test-app.js';

/** The parts of pg-pool's `Pool` the tests look at (some of them internal). */
interface PgPool {
  totalCount: number;
  idleCount: number;
  _clients: PgPoolClient[];
  _idle: { client: PgPoolClient }[];
}
interface PgPoolClient {
  release?: (error?: Error | boolean) => void;
}

async function poolOf(app: DeletionTestApp): Promise<PgPool> {
  return (await app.orm.em.getConnection().getNativeClient()) as unknown as PgPool;
}

/** The application's pg pool: connections open, idle, and checked out. */
export async function pooledConnections(app: DeletionTestApp): Promise<{ total: number; idle: number; checkedOut: number }> {
  const pool = await poolOf(app);
  return { total: pool.totalCount, idle: pool.idleCount, checkedOut: pool.totalCount - pool.idleCount };
}

/**
 * Hands every checked-out connection back to the pool as broken (the pool discards it). Call it
 * only when nothing uses the database: it is the cleanup for connections that a transaction whose
 * connection was dropped never released, without which `pool.end()`, and so `app.close()`, waits
 * for them forever. Returns how many it released.
 */
export async function releaseLeakedConnections(app: DeletionTestApp): Promise<number> {
  const pool = await poolOf(app);
  const idle = new Set(pool._idle.map((item) => item.client));
  const leaked = pool._clients.filter((client) => !idle.has(client));
  for (const client of leaked) {
    client.release?.(new Error('released by the test: leaked after its connection was dropped'));
  }
  return leaked.length;
}
