import { Processor } from '@nestjs/bullmq';
import type { Queue } from 'bullmq';
import type { DeletionEvents } from '../events/deletion-events.js';
import type { ResolvedDeletionOptions } from '../interfaces/deletion-module-options.interface.js';
import type { OutboxRelay } from '../outbox/outbox-relay.js';
import type { OrphanSweeper } from '../sweeper/orphan-sweeper.js';
import { CascadeProcessor } from './cascade.processor.js';
import { DELETION_QUEUE } from './deletion-queue.constants.js';
import type { RequestRunner } from './request-runner.js';

/**
 * `@Processor()` options are static in `@nestjs/bullmq`; the worker's options come from this
 * module's (possibly async) options. So each application gets its own subclass, decorated here
 * before `@nestjs/bullmq` looks for processors. With `worker: false` it stays undecorated, and no
 * worker starts in this process.
 */
export function createCascadeProcessor(
  queue: Queue,
  runner: RequestRunner,
  relay: OutboxRelay,
  sweeper: OrphanSweeper,
  events: DeletionEvents,
  options: ResolvedDeletionOptions,
): CascadeProcessor {
  if (options.worker === false) {
    return new CascadeProcessor(queue, runner, relay, sweeper, events, options);
  }
  const worker = options.worker;
  class ApplicationCascadeProcessor extends CascadeProcessor {}
  Processor(DELETION_QUEUE, {
    concurrency: worker.concurrency,
    limiter: worker.limiter,
    lockDuration: worker.lockDurationMs,
    stalledInterval: worker.stalledIntervalMs,
    maxStalledCount: worker.maxStalledCount,
  })(ApplicationCascadeProcessor);
  return new ApplicationCascadeProcessor(queue, runner, relay, sweeper, events, options);
}
