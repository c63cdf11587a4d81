import type { PolicyDefinition } from '../policies/define-policy.js';

/** How cascade jobs are added to the queue. */
export interface DeletionQueueOptions {
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
}

/** The relay that enqueues requests whose job is missing (queue down at commit, crash). */
export interface DeletionRelayOptions {
  /** How often it runs, as a BullMQ job scheduler. 0 turns it off. Default 10,000 ms. */
  intervalMs?: number;
  /** Requests younger than this are left to the normal after-commit enqueue. Default 5,000 ms. */
  graceMs?: number;
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
}

/** Options after defaults are applied: what the module's services read. */
export interface ResolvedDeletionOptions {
  readonly policies: readonly PolicyDefinition[];
  readonly batchSize: number;
  readonly queue: Readonly<Required<DeletionQueueOptions>>;
  readonly worker: Readonly<Required<Omit<DeletionWorkerOptions, 'limiter'>> & Pick<DeletionWorkerOptions, 'limiter'>> | false;
  readonly relay: Readonly<Required<DeletionRelayOptions>>;
}
