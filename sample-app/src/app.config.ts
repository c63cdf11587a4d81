import { fileURLToPath } from 'node:url';

/** Where the sample app finds its database and queue, and how it names its queues. */
export interface SampleAppConfig {
  /**
   * PostgreSQL URL; the database is created at boot when it does not exist. Absent: an embedded
   * PostgreSQL (PGlite) is started in the process, see `embedded`.
   */
  databaseUrl?: string;
  /**
   * Redis URL of the BullMQ queues (`redis://[user:password@]host:port[/db]`). Absent: the
   * deletion queue lives in PostgreSQL (BullMQ's PostgreSQL backend, schema `bullmq` of the
   * database above), and no Redis is needed.
   */
  redisUrl?: string;
  /** BullMQ key prefix, so several apps (or test files) can share one Redis (Redis only). */
  queuePrefix: string;
  /** The embedded PostgreSQL, used when `databaseUrl` is absent. */
  embedded?: {
    /** A directory for its data (kept across restarts), or `'memory'`. Default `.sample-data/pglite` in the repository. */
    dataDir?: string;
  };
}

/** The schema of BullMQ's PostgreSQL backend (the library's default). */
export const QUEUE_SCHEMA = 'bullmq';

/** `.sample-data/pglite` at the repository's root (git-ignored), wherever the app is started from. */
export const DEFAULT_EMBEDDED_DATA_DIR = fileURLToPath(new URL('../../.sample-data/pglite', import.meta.url));

/**
 * The configuration from the environment: `DATABASE_URL`, `REDIS_URL`, `QUEUE_PREFIX`,
 * `PGLITE_DATA_DIR`. An unset (or empty) `DATABASE_URL` means the embedded PostgreSQL, an unset
 * `REDIS_URL` the queue on PostgreSQL.
 */
export function configFromEnv(env: NodeJS.ProcessEnv = process.env): SampleAppConfig {
  return {
    databaseUrl: env.DATABASE_URL || undefined,
    redisUrl: env.REDIS_URL || undefined,
    queuePrefix: env.QUEUE_PREFIX || 'deletion_sample',
    embedded: { dataDir: env.PGLITE_DATA_DIR || DEFAULT_EMBEDDED_DATA_DIR },
  };
}

/** BullMQ (ioredis) connection options from a Redis URL. */
export function redisConnection(redisUrl: string): { host: string; port: number; username?: string; password?: string; db?: number } {
  const url = new URL(redisUrl);
  const db = url.pathname.replace(/^\//, '');
  return {
    host: url.hostname,
    port: Number(url.port || 6379),
    ...(url.username ? { username: decodeURIComponent(url.username) } : {}),
    ...(url.password ? { password: decodeURIComponent(url.password) } : {}),
    ...(db ? { db: Number(db) } : {}),
  };
}
