import { DOCTOR_MODES, type DoctorMode } from './doctor/doctor-finding.js';
import { DeletionConfigurationError } from './errors/deletion-configuration.error.js';
import type { DeletionHealthOptions, DeletionModuleOptions, ResolvedDeletionOptions } from './interfaces/deletion-module-options.interface.js';

export const DEFAULT_BATCH_SIZE = 1000;

/** Applies defaults and rejects invalid module options, naming the option and the fix. */
export function resolveOptions(options: DeletionModuleOptions): ResolvedDeletionOptions {
  const worker = options.worker === false ? false : options.worker ?? {};
  const resolved: ResolvedDeletionOptions = {
    policies: options.policies ?? [],
    batchSize: positive('batchSize', options.batchSize, DEFAULT_BATCH_SIZE),
    queue: {
      backend: queueBackend(options.queue?.backend),
      postgres: options.queue?.postgres,
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
            drainDelayMs: positive('worker.drainDelayMs', worker.drainDelayMs, 5_000),
          },
    relay: {
      intervalMs: nonNegative('relay.intervalMs', options.relay?.intervalMs, 10_000),
      graceMs: nonNegative('relay.graceMs', options.relay?.graceMs, 5_000),
    },
    sweeper: {
      intervalMs: nonNegative('sweeper.intervalMs', options.sweeper?.intervalMs, 300_000),
      batchSize: positive('sweeper.batchSize', options.sweeper?.batchSize, 1000),
    },
    retention: {
      completedMs: nonNegative('retention.completedMs', options.retention?.completedMs, 7 * 24 * 3_600_000),
      intervalMs: nonNegative('retention.intervalMs', options.retention?.intervalMs, 3_600_000),
    },
    validation: {
      maxInstances: nonNegative('validation.maxInstances', options.validation?.maxInstances, 10_000),
      maxBlockers: positive('validation.maxBlockers', options.validation?.maxBlockers, 20),
    },
    health: resolveHealthOptions(options.health),
    doctor: doctorMode(options.doctor),
  };
  return Object.freeze(resolved);
}

/** The health indicator's thresholds; also applied to the overrides of one `isHealthy()` call. */
export function resolveHealthOptions(health: DeletionHealthOptions | undefined): Readonly<Required<DeletionHealthOptions>> {
  return Object.freeze({
    maxFailed: nonNegative('health.maxFailed', health?.maxFailed, 0),
    maxLagMs: positive('health.maxLagMs', health?.maxLagMs, 60_000),
    timeoutMs: positive('health.timeoutMs', health?.timeoutMs, 2_000),
  });
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

/** The `doctor` option, checked against the same array as its type. */
function doctorMode(value: DoctorMode | undefined): DoctorMode {
  if (value === undefined || DOCTOR_MODES.includes(value)) {
    return value ?? 'error';
  }
  throw DeletionConfigurationError.create(
    'DELETION_CONFIG_INVALID_OPTION',
    { option: 'doctor' },
    `doctor ${JSON.stringify(value)} is not a doctor mode.`,
    `pass one of ${DOCTOR_MODES.map((mode) => `'${mode}'`).join(', ')} (default 'error').`,
  );
}

const QUEUE_BACKENDS = ['redis', 'postgres'] as const;

function queueBackend(value: string | undefined): (typeof QUEUE_BACKENDS)[number] {
  if (value === undefined || (QUEUE_BACKENDS as readonly string[]).includes(value)) {
    return (value ?? 'redis') as (typeof QUEUE_BACKENDS)[number];
  }
  throw DeletionConfigurationError.create(
    'DELETION_CONFIG_INVALID_OPTION',
    { option: 'queue.backend' },
    `queue.backend ${JSON.stringify(value)} is not a queue backend.`,
    `pass 'redis' (default, the BullModule.forRoot() connection) or 'postgres'.`,
  );
}
