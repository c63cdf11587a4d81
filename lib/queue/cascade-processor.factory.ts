import type { MikroORM } from '@mikro-orm/core';
import { Processor } from '@nestjs/bullmq';
import type { Queue } from 'bullmq';
import type { DeletionEvents } from '../events/deletion-events.js';
import type { ResolvedDeletionOptions } from '../interfaces/deletion-module-options.interface.js';
import type { OutboxRelay } from '../outbox/outbox-relay.js';
import type { OrphanSweeper } from '../sweeper/orphan-sweeper.js';
import type { RequestRetention } from '../outbox/request-retention.js';
import { CascadeProcessor } from './cascade.processor.js';
import { DELETION_QUEUE } from './deletion-queue.constants.js';
import { createPostgresWorker } from './deletion-queue.factory.js';
import type { RequestRunner } from './request-runner.js';

/**
 * `@Processor()` options are static in `@nestjs/bullmq`; the worker's options come from this
 * module's (possibly async) options. So each application gets its own subclass, decorated here
 * before `@nestjs/bullmq` looks for processors. With `worker: false` it stays undecorated, and no
 * worker starts in this process. On the PostgreSQL backend it stays undecorated too (`@nestjs/bullmq`
 * would start a Redis worker) and drives a PostgreSQL worker of its own.
 */
export function createCascadeProcessor(
  queue: Queue,
  runner: RequestRunner,
  relay: OutboxRelay,
  sweeper: OrphanSweeper,
  retention: RequestRetention,
  events: DeletionEvents,
  options: ResolvedDeletionOptions,
  orm: MikroORM,
): CascadeProcessor {
  if (options.worker === false) {
    return new CascadeProcessor(queue, runner, relay, sweeper, retention, events, options);
  }
  const settings = {
    concurrency: options.worker.concurrency,
    limiter: options.worker.limiter,
    lockDuration: options.worker.lockDurationMs,
    stalledInterval: options.worker.stalledIntervalMs,
    maxStalledCount: options.worker.maxStalledCount,
    // BullMQ counts this one in seconds.
    drainDelay: options.worker.drainDelayMs / 1000,
  };
  if (options.queue.backend === 'postgres') {
    const processor = new CascadeProcessor(queue, runner, relay, sweeper, retention, events, options);
    processor.adoptWorker(() => createPostgresWorker(options, orm, (job, token) => processor.process(job, token), settings));
    return processor;
  }
  class ApplicationCascadeProcessor extends CascadeProcessor {}
  Processor(DELETION_QUEUE, settings)(ApplicationCascadeProcessor);
  return new ApplicationCascadeProcessor(queue, runner, relay, sweeper, retention, events, options);
}
