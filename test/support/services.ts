import pg from 'pg';

/** The PostgreSQL server the tests use: `DATABASE_URL`, or the local one on this machine. */
export const DATABASE_URL = process.env.DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/test';
/** The Redis server the tests use: `REDIS_URL`, or the local one. */
export const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

/** A connection URL for database `name` on the test server. */
export function databaseUrl(name: string): string {
  const url = new URL(DATABASE_URL);
  url.pathname = `/${name}`;
  return url.toString();
}

/**
 * Creates an empty database of its own for one test file, so files run in parallel without
 * seeing each other's rows. Drops a leftover of the same name first.
 */
export async function createTestDatabase(name: string, options: { extensions?: readonly string[] } = {}): Promise<string> {
  const client = new pg.Client({ connectionString: DATABASE_URL });
  await client.connect();
  try {
    await client.query(`drop database if exists "${name}" with (force)`);
    await client.query(`create database "${name}"`);
  } finally {
    await client.end();
  }
  if (options.extensions?.length) {
    // Before MikroORM creates tables whose columns use them (citext, …).
    const database = new pg.Client({ connectionString: databaseUrl(name) });
    await database.connect();
    try {
      for (const extension of options.extensions) {
        await database.query(`create extension if not exists "${extension}"`);
      }
    } finally {
      await database.end();
    }
  }
  return name;
}
