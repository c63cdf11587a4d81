import type { EntityManager } from '@mikro-orm/core';
import { InjectQueue } from '@nestjs/bullmq';
import { Inject, Injectable, Logger, type BeforeApplicationShutdown } from '@nestjs/common';
import type { Queue } from 'bullmq';
import { withinTime } from '../common/time-limit.js';
import { RESOLVED_DELETION_OPTIONS } from '../deletion.constants.js';
import type { ResolvedDeletionOptions } from '../interfaces/deletion-module-options.interface.js';
import { CASCADE_JOB, DELETION_QUEUE, type CascadeJobData } from '../queue/deletion-queue.constants.js';

/**
 * The outbox's publishing side: request ids written in a transaction are enqueued only after that
 * transaction commits, and forgotten if it rolls back. An enqueue that fails or times out is only
 * logged: the request row is durable, and the relay enqueues it later.
 */
@Injectable()
export class OutboxPublisher implements BeforeApplicationShutdown {
  private readonly logger = new Logger(OutboxPublisher.name);
  /** Request ids waiting for their transaction (keyed by MikroORM's transaction context). */
  private readonly waiting = new WeakMap<object, string[]>();
  /** A savepoint's outer transaction. */
  private readonly outer = new WeakMap<object, object>();

  private lastConnectionWarning = 0;
  /** Request ids committed since the last enqueue was scheduled, sent together (see `enqueueSoon`). */
  private next?: string[];
  private readonly inFlight = new Set<Promise<boolean>>();

  constructor(
    @InjectQueue(DELETION_QUEUE) private readonly queue: Queue,
    @Inject(RESOLVED_DELETION_OPTIONS) private readonly options: ResolvedDeletionOptions,
  ) {
    // Without a listener BullMQ prints every failed reconnect; report them through the logger, at
    // most every 30 s. Requests stay durable meanwhile and the relay enqueues them later.
    this.queue.on('error', (error: Error) => {
      if (Date.now() - this.lastConnectionWarning > 30_000) {
        this.lastConnectionWarning = Date.now();
        this.logger.warn(`Deletion queue connection error: ${error.message}`);
      }
    });
  }

  /** Enqueues `requestId` once the transaction `em` is in commits. */
  afterCommit(em: EntityManager, requestId: string): void {
    const ctx = em.getTransactionContext() as object | undefined;
    if (!ctx) {
      void this.enqueue([requestId]);
      return;
    }
    const ids = this.waiting.get(ctx) ?? [];
    ids.push(requestId);
    this.waiting.set(ctx, ids);
  }

  /** `savepoint` is a nested transaction of `outer`: its requests are enqueued when `outer` commits. */
  nested(savepoint: object, outer: object): void {
    this.outer.set(savepoint, outer);
  }

  /**
   * Called when a transaction commits. A released savepoint is not a commit: its requests move to
   * its outer transaction, and are enqueued when that one commits (or forgotten if it rolls back).
   */
  committed(ctx: object | undefined): void {
    if (!ctx) {
      return;
    }
    const ids = this.waiting.get(ctx);
    this.waiting.delete(ctx);
    if ('savepointName' in ctx) {
      const outer = this.outer.get(ctx);
      if (outer && ids?.length) {
        this.waiting.set(outer, [...(this.waiting.get(outer) ?? []), ...ids]);
      }
      // Without a known outer transaction, the rows are durable and the relay enqueues them.
      return;
    }
    if (ids?.length) {
      this.enqueueSoon(ids);
    }
  }

  /**
   * Off the request's path: the rows are committed, so a slow or absent queue delays the cascade,
   * never the response. The ids of every transaction that commits before the next turn of the
   * event loop go in one `addBulk` (under a burst of deletions, one round trip to the queue for
   * many of them). setImmediate: the callers' responses go first; building the jobs is CPU work
   * too. Shutdown waits for these (see beforeApplicationShutdown).
   */
  private enqueueSoon(ids: readonly string[]): void {
    if (this.next) {
      this.next.push(...ids);
      return;
    }
    const batch = [...ids];
    this.next = batch;
    const sending = new Promise<void>((resolve) => setImmediate(resolve))
      .then(() => {
        this.next = undefined;
        return this.enqueue(batch);
      })
      .finally(() => this.inFlight.delete(sending));
    this.inFlight.add(sending);
  }

  /** Lets enqueues started after a commit finish before the queue connection closes. */
  async beforeApplicationShutdown(): Promise<void> {
    await Promise.allSettled([...this.inFlight]);
  }


  rolledBack(ctx: object | undefined): void {
    if (ctx) {
      this.waiting.delete(ctx);
    }
  }

  /** Removes these requests' finished jobs (kept when they failed), then enqueues them anew. */
  async replace(requestIds: readonly string[]): Promise<boolean> {
    for (const id of requestIds) {
      const job = await this.queue.getJob(id);
      if (job && !(await job.isActive())) {
        await job.remove();
      }
    }
    return this.enqueue(requestIds);
  }

  /** Adds one cascade job per request id (job id = request id). Never throws. */
  async enqueue(requestIds: readonly string[]): Promise<boolean> {
    const { attempts, backoffMs, enqueueTimeoutMs } = this.options.queue;
    const jobs = requestIds.map((requestId) => ({
      name: CASCADE_JOB,
      data: { requestId } satisfies CascadeJobData,
      opts: { jobId: requestId, attempts, backoff: { type: 'exponential', delay: backoffMs }, removeOnComplete: true, removeOnFail: false },
    }));
    try {
      await withinTime(this.queue.addBulk(jobs), enqueueTimeoutMs, 'the queue');
      return true;
    } catch (error) {
      this.logger.warn(`Could not enqueue deletion request(s) ${requestIds.join(', ')}: ${(error as Error).message}. They are stored and the relay will enqueue them.`);
      return false;
    }
  }
}
