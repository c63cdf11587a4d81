/** Where the sample app finds its database and Redis, and how it names its queues. */
export interface SampleAppConfig {
  /** PostgreSQL URL; the database is created at boot when it does not exist. */
  databaseUrl: string;
  /** Redis URL of the BullMQ queues (`redis://[user:password@]host:port[/db]`). */
  redisUrl: string;
  /** BullMQ key prefix, so several apps (or test files) can share one Redis. */
  queuePrefix: string;
}

/** The configuration from the environment: `DATABASE_URL`, `REDIS_URL`, `QUEUE_PREFIX`. */
export function configFromEnv(env: NodeJS.ProcessEnv = process.env): SampleAppConfig {
  return {
    databaseUrl: env.DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/deletion_sample',
    redisUrl: env.REDIS_URL ?? 'redis://127.0.0.1:6379',
    queuePrefix: env.QUEUE_PREFIX ?? 'deletion_sample',
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
