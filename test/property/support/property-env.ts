import { setTimeout as sleep } from 'node:timers/promises';

/**
 * The environment of the property specs, read as deletion-invariants.spec.ts reads it:
 * PROPERTY_RUNS, PROPERTY_SEED, PROPERTY_PATH, PROPERTY_DATABASE.
 */
export function intFromEnv(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') {
    return fallback;
  }
  const value = Number(raw);
  if (!Number.isSafeInteger(value)) {
    throw new Error(`${name} must be an integer, got "${raw}"`);
  }
  return value;
}

export interface PropertyEnv {
  readonly runs: number;
  readonly seed: number;
  readonly path: string | undefined;
  /** The spec's database (and queue prefix): `<PROPERTY_DATABASE>_<suffix>`, else `deletion_prop_<suffix>`. */
  readonly database: string;
}

export function propertyEnv(suffix: string): PropertyEnv {
  const database = process.env.PROPERTY_DATABASE ? `${process.env.PROPERTY_DATABASE}_${suffix}` : `deletion_prop_${suffix}`;
  if (!database.startsWith('deletion_prop_')) {
    throw new Error(`PROPERTY_DATABASE must start with deletion_prop_, got "${process.env.PROPERTY_DATABASE}"`);
  }
  return {
    runs: intFromEnv('PROPERTY_RUNS', 200),
    seed: process.env.PROPERTY_SEED ? intFromEnv('PROPERTY_SEED', 0) : Math.floor(Math.random() * 0x7fffffff),
    path: process.env.PROPERTY_PATH || undefined,
    database,
  };
}

/**
 * Polls `probe` until it returns a value; fails after `timeoutMs`. Tight (a case's queued work
 * takes milliseconds), unlike test/support/wait.ts's.
 */
export async function poll<T>(probe: () => Promise<T | undefined>, what: string, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) {
      return value;
    }
    if (Date.now() > deadline) {
      throw new Error(`${what} not reached within ${timeoutMs} ms`);
    }
    await sleep(3);
  }
}
