/**
 * Settles with `work`, or rejects once `ms` have passed. A health probe must answer even when a
 * backend does not: ioredis queues commands while it reconnects, so an unreachable Redis would
 * otherwise hang the probe, and the health endpoint with it.
 */
export async function withinTime<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not answer within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([work, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** The probe's error as the health details show it. */
export function describeFailure(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
