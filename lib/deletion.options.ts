import { DeletionConfigurationError } from './errors/deletion-configuration.error.js';
import type { DeletionModuleOptions, ResolvedDeletionOptions } from './interfaces/deletion-module-options.interface.js';

export const DEFAULT_BATCH_SIZE = 1000;

/** Applies defaults and rejects invalid module options, naming the option and the fix. */
export function resolveOptions(options: DeletionModuleOptions): ResolvedDeletionOptions {
  const worker = options.worker === false ? false : options.worker ?? {};
  const resolved: ResolvedDeletionOptions = {
    policies: options.policies ?? [],
    batchSize: positive('batchSize', options.batchSize, DEFAULT_BATCH_SIZE),
    queue: {
      attempts: positive('queue.attempts', options.queue?.attempts, 5),
      backoffMs: nonNegative('queue.backoffMs', options.queue?.backoffMs, 1000),
      enqueueTimeoutMs: positive('queue.enqueueTimeoutMs', options.queue?.enqueueTimeoutMs, 2000),
    },
    worker:
      worker === false
        ? false
        : {
            concurrency: positive('worker.concurrency', worker.concurrency, 1),
            limiter: worker.limiter && {
              max: positive('worker.limiter.max', worker.limiter.max, 1),
              duration: positive('worker.limiter.duration', worker.limiter.duration, 1000),
            },
            pauseBetweenBatchesMs: nonNegative('worker.pauseBetweenBatchesMs', worker.pauseBetweenBatchesMs, 0),
            lockDurationMs: positive('worker.lockDurationMs', worker.lockDurationMs, 30_000),
            stalledIntervalMs: positive('worker.stalledIntervalMs', worker.stalledIntervalMs, 30_000),
            maxStalledCount: nonNegative('worker.maxStalledCount', worker.maxStalledCount, 5),
          },
    relay: {
      intervalMs: nonNegative('relay.intervalMs', options.relay?.intervalMs, 10_000),
      graceMs: nonNegative('relay.graceMs', options.relay?.graceMs, 5_000),
    },
  };
  return Object.freeze(resolved);
}

function positive(option: string, value: number | undefined, fallback: number): number {
  return integer(option, value, fallback, 1);
}

function nonNegative(option: string, value: number | undefined, fallback: number): number {
  return integer(option, value, fallback, 0);
}

function integer(option: string, value: number | undefined, fallback: number, min: number): number {
  const n = value ?? fallback;
  if (!Number.isInteger(n) || n < min) {
    throw DeletionConfigurationError.create(
      'DELETION_CONFIG_INVALID_OPTION',
      { option },
      `${option} ${String(value)} is not an integer of at least ${min}.`,
      `pass an integer of ${min} or more (default ${fallback}).`,
    );
  }
  return n;
}
