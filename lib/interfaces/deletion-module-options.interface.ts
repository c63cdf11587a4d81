import type { PostgresPoolConfig } from 'bullmq';
import type { DoctorMode } from '../doctor/doctor-finding.js';
import type { PolicyDefinition } from '../policies/define-policy.js';

/** Where the module's BullMQ queue keeps its jobs. */
export type DeletionQueueBackend = 'redis' | 'postgres';

/** How cascade jobs are added to the queue. */
export interface DeletionQueueOptions {
  /**
   * `redis` (default): the application's `BullModule.forRoot()` connection. `postgres`: BullMQ's
   * PostgreSQL backend, one server fewer; its tables live in their own schema (`bullmq`), created
   * at boot, by default on MikroORM's database.
   */
  backend?: DeletionQueueBackend;
  /**
   * `postgres` backend: a connection string, or a node-postgres pool config (`ssl`, a `password`
   * function, `max`, …). Default: MikroORM's own connection settings, read as MikroORM reads them
   * for its pool (`clientUrl`, `host`, `port`, `user`, `password`, `dbName`, then `driverOptions`).
   */
  postgres?: { connection?: string | PostgresPoolConfig; schema?: string };
  /** Attempts per request before it is marked `failed` (transient errors only). Default 5. */
  attempts?: number;
  /** First retry delay, doubled at each attempt. Default 1,000 ms. */
  backoffMs?: number;
  /**
   * How long the request path waits for the queue after commit before giving up (the outbox relay
   * enqueues it later). Default 2,000 ms.
   */
  enqueueTimeoutMs?: number;
}

/** The worker that runs cascades in this process. */
export interface DeletionWorkerOptions {
  /** Requests processed at once by this process. Default 1. */
  concurrency?: number;
  /** At most `max` jobs started per `duration` ms across all workers. */
  limiter?: { max: number; duration: number };
  /** Pause between two batches of one request, to spare replicas. Default 0. */
  pauseBetweenBatchesMs?: number;
  /** Lock on a running job; a worker that dies is detected once it expires. Default 30,000 ms. */
  lockDurationMs?: number;
  /** How often stalled jobs are looked for. Default 30,000 ms. */
  stalledIntervalMs?: number;
  /** Times a job may stall (its worker died) before it fails. Default 5. */
  maxStalledCount?: number;
  /**
   * How long an idle worker waits for a job before it asks the queue again (BullMQ's `drainDelay`,
   * given here in milliseconds). A new job normally wakes the worker at once; this bounds the wait
   * where it cannot (a PostgreSQL without LISTEN/NOTIFY between connections, such as PGlite).
   * Lower values mean more polling while idle. Sub-second values need Redis 6 or later (Redis 5
   * rounds them up to whole seconds) or the PostgreSQL backend. Default 5,000 ms.
   */
  drainDelayMs?: number;
}

/** The relay that enqueues requests whose job is missing (queue down at commit, crash). */
export interface DeletionRelayOptions {
  /** How often it runs, as a BullMQ job scheduler. 0 turns it off. Default 10,000 ms. */
  intervalMs?: number;
  /** Requests younger than this are left to the normal after-commit enqueue. Default 5,000 ms. */
  graceMs?: number;
}

/** Thresholds of `DeletionHealthIndicator` (`@nestjs/terminus`); each call may override them. */
export interface DeletionHealthOptions {
  /** Failed deletion requests tolerated before the indicator is `down`. Default 0. */
  maxFailed?: number;
  /** Age of the oldest pending or running request past which the indicator is `down`. Default 60,000 ms. */
  maxLagMs?: number;
  /** Time each probe (queue, database) may take before it counts as unreachable. Default 2,000 ms. */
  timeoutMs?: number;
}

/** The orphan sweeper: children left behind by parents deleted outside the module, or in the orphan window. */
export interface DeletionSweeperOptions {
  /** How often it runs, as a BullMQ job scheduler. 0 turns it off. Default 300,000 ms (5 minutes). */
  intervalMs?: number;
  /** Missing parents handled per relation and run. Default 1,000. */
  batchSize?: number;
}

/** How long finished deletion requests are kept, for `status()`. */
export interface DeletionRetentionOptions {
  /**
   * Completed deletions (a root request and its whole subtree) older than this are pruned, with
   * their `deletion_orphan` rows. Failed and open requests are kept. `0` keeps them all. Default 7 days.
   */
  completedMs?: number;
  /** How often the pruning runs, as a BullMQ job scheduler. 0 turns it off. Default 3,600,000 ms (1 hour). */
  intervalMs?: number;
}

/** `@ValidateBeforeDestroy()` limits. */
export interface DeletionValidationOptions {
  /** Rows instance validators may load for one deletion; past it the deletion is refused. Default 10,000. */
  maxInstances?: number;
  /** Blockers reported (per deletion and per path); the total is always counted. Default 20. */
  maxBlockers?: number;
}

/** Options of `DeletionModule.forRoot()` / `forRootAsync()`. */
export interface DeletionModuleOptions {
  /** Policies declared with `definePolicy()`; merged with `@Dependent()` declarations. */
  policies?: readonly PolicyDefinition[];
  /** Rows per keyset batch when children are walked. Default 1,000. */
  batchSize?: number;
  queue?: DeletionQueueOptions;
  /** `false`: this process only enqueues (a web-only instance); cascades run elsewhere. */
  worker?: DeletionWorkerOptions | false;
  relay?: DeletionRelayOptions;
  validation?: DeletionValidationOptions;
  sweeper?: DeletionSweeperOptions;
  retention?: DeletionRetentionOptions;
  health?: DeletionHealthOptions;
  /**
   * What the schema doctor does at bootstrap: `'error'` (default) stops the boot on error findings
   * and logs warnings, `'warn'` logs every finding, `'off'` skips it. See `DeletionService.doctor()`.
   */
  doctor?: DoctorMode;
}

/** Options after defaults are applied: what the module's services read. */
export interface ResolvedDeletionOptions {
  readonly policies: readonly PolicyDefinition[];
  readonly batchSize: number;
  readonly queue: Readonly<Required<Omit<DeletionQueueOptions, 'postgres'>> & Pick<DeletionQueueOptions, 'postgres'>>;
  readonly worker: Readonly<Required<Omit<DeletionWorkerOptions, 'limiter'>> & Pick<DeletionWorkerOptions, 'limiter'>> | false;
  readonly relay: Readonly<Required<DeletionRelayOptions>>;
  readonly validation: Readonly<Required<DeletionValidationOptions>>;
  readonly sweeper: Readonly<Required<DeletionSweeperOptions>>;
  readonly retention: Readonly<Required<DeletionRetentionOptions>>;
  readonly health: Readonly<Required<DeletionHealthOptions>>;
  readonly doctor: DoctorMode;
}
