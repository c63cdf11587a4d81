import { InjectQueue, OnWorkerEvent, WorkerHost } from '@nestjs/bullmq';
import { Inject, Injectable, Logger, type OnApplicationBootstrap, type OnApplicationShutdown, type OnModuleDestroy } from '@nestjs/common';
import { DelayedError, UnrecoverableError, type Job, type Queue, type Worker } from 'bullmq';
import { DeletionBlockedError } from '../errors/deletion-blocked.error.js';
import { DeletionRestrictedError } from '../errors/deletion-restricted.error.js';
import { DeletionValidationDepthError } from '../errors/deletion-validation-depth.error.js';
import { DeletionStalledError } from '../errors/deletion-stalled.error.js';
import { DeletionValidationBudgetError } from '../errors/deletion-validation-budget.error.js';
import { DeletionError } from '../errors/deletion.error.js';
import { DeletionEvents } from '../events/deletion-events.js';
import type { DeletionRequest, RequestError } from '../outbox/deletion-request.entity.js';
import { OutboxRelay } from '../outbox/outbox-relay.js';
import { isRequestId } from '../outbox/request-id.js';
import { OrphanSweeper } from '../sweeper/orphan-sweeper.js';
import { RequestRetention } from '../outbox/request-retention.js';
import { RESOLVED_DELETION_OPTIONS } from '../deletion.constants.js';
import type { ResolvedDeletionOptions } from '../interfaces/deletion-module-options.interface.js';
import { CASCADE_JOB, DELETION_QUEUE, PRUNE_JOB, PRUNE_SCHEDULER_ID, RELAY_JOB, RELAY_SCHEDULER_ID, SWEEP_JOB, SWEEP_SCHEDULER_ID, type CascadeJobData } from './deletion-queue.constants.js';
import { JobSchedules, type Schedule } from './job-schedules.js';
import { RequestRunner } from './request-runner.js';

/** At most one warning per topic in this time: an unreachable backend fails every retry. */
const WARNING_INTERVAL_MS = 30_000;

/**
 * The BullMQ worker that runs queued cascades. Its `@Processor` metadata (and so its worker
 * options) is applied per application by `createCascadeProcessor`, from the module's options.
 */
@Injectable()
export class CascadeProcessor extends WorkerHost implements OnApplicationBootstrap, OnModuleDestroy, OnApplicationShutdown {
  private readonly logger = new Logger(CascadeProcessor.name);
  /** A worker this processor drives itself (the PostgreSQL backend), rather than `@nestjs/bullmq`. */
  private ownWorker?: Worker;
  private buildOwnWorker?: () => Worker;
  private readonly lastWarning = new Map<string, number>();
  /**
   * Jobs whose last failure `process()` already recorded. BullMQ's `failed` event for them comes
   * later, possibly after `retry()` reset the request: recording it again would undo the retry.
   */
  private readonly recorded = new Set<string>();
  private schedules?: JobSchedules;

  constructor(
    @InjectQueue(DELETION_QUEUE) private readonly queue: Queue,
    @Inject(RequestRunner) private readonly runner: RequestRunner,
    @Inject(OutboxRelay) private readonly relay: OutboxRelay,
    @Inject(OrphanSweeper) private readonly sweeper: OrphanSweeper,
    @Inject(RequestRetention) private readonly retention: RequestRetention,
    @Inject(DeletionEvents) private readonly events: DeletionEvents,
    @Inject(RESOLVED_DELETION_OPTIONS) private readonly options: ResolvedDeletionOptions,
  ) {
    super();
  }

  /**
   * A process that runs a worker schedules the relay and the sweeper (BullMQ job schedulers, so one
   * run at a time across processes; the first run is immediate). Boot does not wait for an
   * unreachable queue; each worker process keeps the schedulers in place (see `JobSchedules`).
   */
  onApplicationBootstrap(): void {
    if (this.options.worker === false) {
      return;
    }
    if (this.buildOwnWorker) {
      this.adopt(this.buildOwnWorker());
      this.ownWorker!.run().catch((error: Error) => this.logger.error(`Deletion worker stopped: ${error.message}`));
    }
    const schedules: Schedule[] = [{ id: RELAY_SCHEDULER_ID, name: RELAY_JOB, every: this.options.relay.intervalMs }];
    if (this.sweeper.relations().length > 0) {
      schedules.push({ id: SWEEP_SCHEDULER_ID, name: SWEEP_JOB, every: this.options.sweeper.intervalMs });
    }
    if (this.options.retention.completedMs > 0) {
      schedules.push({ id: PRUNE_SCHEDULER_ID, name: PRUNE_JOB, every: this.options.retention.intervalMs });
    }
    this.schedules = new JobSchedules(
      this.queue,
      schedules.filter((schedule) => schedule.every > 0),
      (topic, message) => this.warnThrottled(topic, message),
    );
    this.schedules.start();
  }

  /** Stops checking the schedulers before the queue's connection closes. */
  onModuleDestroy(): void {
    this.schedules?.stop();
  }

  async onApplicationShutdown(): Promise<void> {
    await this.ownWorker?.close();
  }

  /**
   * Drives a worker of its own with this processor, as `@nestjs/bullmq` does for the workers it
   * creates. The worker is built at bootstrap, once the application's database is known to answer.
   */
  adoptWorker(build: () => Worker): void {
    this.buildOwnWorker = build;
  }

  private adopt(worker: Worker): void {
    this.ownWorker = worker;
    // WorkerHost exposes the worker through `_worker`, which @nestjs/bullmq's explorer sets.
    Object.assign(this, { _worker: worker });
    worker.on('failed', (job, error) => void this.onFailed(job, error));
    worker.on('closing', () => this.onWorkerClosing());
    worker.on('error', (error) => this.warnThrottled('worker', `Deletion worker error: ${error.message}`));
  }

  /** Shutdown: the requests under way stop after their current batch (see `RequestRunner.stop`). */
  @OnWorkerEvent('closing')
  onWorkerClosing(): void {
    this.runner.stop();
  }

  /** The worker `@nestjs/bullmq` runs on Redis: its connection errors, through the logger (never `console`). */
  @OnWorkerEvent('error')
  onWorkerError(error: Error): void {
    this.warnThrottled('worker', `Deletion worker error: ${error.message}`);
  }

  private warnThrottled(topic: string, message: string): void {
    const now = Date.now();
    if (now - (this.lastWarning.get(topic) ?? 0) > WARNING_INTERVAL_MS) {
      this.lastWarning.set(topic, now);
      this.logger.warn(message);
    }
  }

  async process(job: Job, token?: string): Promise<unknown> {
    if (job.name === RELAY_JOB) {
      return { enqueued: await this.relay.run() };
    }
    if (job.name === SWEEP_JOB) {
      return this.sweeper.sweep();
    }
    if (job.name === PRUNE_JOB) {
      return this.retention.prune();
    }
    const requestId = parsePayload(job);
    try {
      const outcome = await this.runner.run(requestId);
      if (outcome.kind === 'interrupted') {
        // Back to the queue, due now: another worker (or this one, restarted) resumes from the cursor.
        await job.moveToDelayed(Date.now(), token);
        throw new DelayedError();
      }
      if (outcome.kind === 'completed') {
        this.announceCompleted(outcome.completed);
      } else if (outcome.kind === 'missing') {
        this.logger.warn(`Deletion request ${requestId} does not exist; job ${job.id} ignored.`);
      }
      return { outcome: outcome.kind };
    } catch (error) {
      if (error instanceof DelayedError) {
        throw error;
      }
      // A validator's or a `restrict`'s refusal is not transient: retrying blindly would only fail again.
      const refused = error instanceof DeletionBlockedError || error instanceof DeletionValidationBudgetError || error instanceof DeletionValidationDepthError || error instanceof DeletionRestrictedError || error instanceof DeletionStalledError;
      const final = refused || error instanceof UnrecoverableError || job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
      await this.recordFailure(requestId, error, final);
      if (final) {
        this.recorded.add(attemptOf(job));
      }
      if (!final) {
        this.logger.warn(`Deletion request ${requestId} attempt ${job.attemptsMade + 1} failed, will retry: ${(error as Error).message}`);
      }
      throw refused ? new UnrecoverableError((error as Error).message) : error;
    }
  }

  /** A job that stalled too often, or failed outside `process`, still marks its request failed. */
  @OnWorkerEvent('failed')
  async onFailed(job: Job | undefined, error: Error): Promise<void> {
    if (!job) {
      return;
    }
    if (job.name !== CASCADE_JOB) {
      this.logger.error(`Deletion ${job.name} job ${job.id} failed: ${error.message}`);
      return;
    }
    if (this.recorded.delete(attemptOf(job))) {
      return;
    }
    const requestId = (job.data as Partial<CascadeJobData> | undefined)?.requestId;
    if (!isRequestId(requestId)) {
      this.logger.error(`Job ${job.id} failed: ${error.message}`);
      return;
    }
    if (job.attemptsMade >= (job.opts.attempts ?? 1) || error instanceof UnrecoverableError) {
      // A job that `retry()` replaced meanwhile is not this request's current attempt any more.
      const current = await this.queue.getJob(job.id!);
      if (current && current.timestamp !== job.timestamp) {
        return;
      }
      await this.recordFailure(requestId, error, true);
    }
  }

  /** Stores the error on the request; announces it (log, event) when it has just become failed. */
  private async recordFailure(requestId: string, error: unknown, final: boolean): Promise<void> {
    try {
      const { request, newlyFailed } = await this.runner.recordFailure(requestId, describe(error), final);
      if (request && newlyFailed) {
        this.announceFailed(request);
      }
    } catch (recordError) {
      this.logger.error(`Could not record the failure of deletion request ${requestId}: ${(recordError as Error).message}`);
    }
  }

  private announceCompleted(completed: DeletionRequest[]): void {
    for (const request of completed) {
      const root = request.id === request.rootId;
      if (root) {
        this.logger.log(`Deletion ${request.id} of ${request.entity} ${JSON.stringify(request.parentIds)} completed.`);
      }
      this.events.emit('completed', { requestId: request.id, rootId: request.rootId, root, entity: request.entity, path: request.path });
    }
  }

  private announceFailed(request: DeletionRequest): void {
    const error = request.error ?? { message: 'unknown error' };
    this.logger.error(`Deletion request ${request.id} (${request.path}, root ${request.rootId}) failed: ${error.message}`);
    this.events.emit('failed', { requestId: request.id, rootId: request.rootId, entity: request.entity, path: request.path, error });
  }

}

/** One job as added: `retry()` replaces a job under the same id, with a new timestamp. */
function attemptOf(job: Job): string {
  return `${job.id}@${job.timestamp}`;
}

function parsePayload(job: Job): string {
  const requestId = (job.data as Partial<CascadeJobData> | undefined)?.requestId;
  if (!isRequestId(requestId)) {
    throw new UnrecoverableError(`Job ${job.id} (${job.name}) has a malformed payload ${JSON.stringify(job.data)}: expected { requestId: <uuid> }.`);
  }
  return requestId;
}

function describe(error: unknown): RequestError {
  if (error instanceof DeletionError) {
    const { statusCode: _status, error: _text, ...body } = error.getResponse();
    return body;
  }
  return { message: error instanceof Error ? error.message : String(error), code: 'DELETION_CASCADE_ERROR' };
}
