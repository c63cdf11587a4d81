import { InjectQueue, OnWorkerEvent, WorkerHost } from '@nestjs/bullmq';
import { Inject, Injectable, Logger, type OnApplicationBootstrap, type OnApplicationShutdown, type OnModuleDestroy } from '@nestjs/common';
import { UnrecoverableError, type Job, type Queue, type Worker } from 'bullmq';
import { DeletionBlockedError } from '../errors/deletion-blocked.error.js';
import { DeletionValidationBudgetError } from '../errors/deletion-validation-budget.error.js';
import { DeletionError } from '../errors/deletion.error.js';
import { DeletionEvents } from '../events/deletion-events.js';
import type { DeletionRequest, RequestError } from '../outbox/deletion-request.entity.js';
import { OutboxRelay } from '../outbox/outbox-relay.js';
import { isRequestId } from '../outbox/request-id.js';
import { OrphanSweeper } from '../sweeper/orphan-sweeper.js';
import { RESOLVED_DELETION_OPTIONS } from '../deletion.constants.js';
import type { ResolvedDeletionOptions } from '../interfaces/deletion-module-options.interface.js';
import { CASCADE_JOB, DELETION_QUEUE, RELAY_JOB, RELAY_SCHEDULER_ID, SWEEP_JOB, SWEEP_SCHEDULER_ID, type CascadeJobData } from './deletion-queue.constants.js';
import { RequestRunner } from './request-runner.js';

/** A BullMQ job scheduler this process keeps in place: the relay, or the sweeper. */
interface Schedule {
  readonly id: string;
  readonly name: string;
  readonly every: number;
}

/** Job states in which a scheduler's next job will still run. */
const LIVE_JOB_STATES: readonly string[] = ['waiting', 'delayed', 'prioritized', 'active', 'waiting-children'];

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
  private schedules: readonly Schedule[] = [];
  private scheduleCheck?: NodeJS.Timeout;
  private checkingSchedules = false;
  private stopped = false;
  private readonly onQueueReady = (): void => void this.keepSchedules();

  constructor(
    @InjectQueue(DELETION_QUEUE) private readonly queue: Queue,
    @Inject(RequestRunner) private readonly runner: RequestRunner,
    @Inject(OutboxRelay) private readonly relay: OutboxRelay,
    @Inject(OrphanSweeper) private readonly sweeper: OrphanSweeper,
    @Inject(DeletionEvents) private readonly events: DeletionEvents,
    @Inject(RESOLVED_DELETION_OPTIONS) private readonly options: ResolvedDeletionOptions,
  ) {
    super();
  }

  /**
   * A process that runs a worker schedules the relay and the sweeper (BullMQ job schedulers, so one
   * run at a time across processes; the first run is immediate). Boot does not wait for an
   * unreachable queue. The schedulers live in the queue's store, and Redis may lose them (a restart
   * without persistence, FLUSHALL, failover to an empty replica) while this process keeps running:
   * so each worker process checks them again whenever the queue's connection is ready again, and
   * periodically, and recreates any that is missing or whose next job is gone.
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
    this.schedules = schedules.filter((schedule) => schedule.every > 0);
    if (this.schedules.length === 0) {
      return;
    }
    void this.keepSchedules({ upsert: true });
    this.queue.getBackend().on('ready', this.onQueueReady);
    this.scheduleCheck = setInterval(this.onQueueReady, scheduleCheckInterval(this.schedules));
    this.scheduleCheck.unref();
  }

  /** Stops checking the schedulers before the queue's connection closes. */
  onModuleDestroy(): void {
    this.stopped = true;
    clearInterval(this.scheduleCheck);
    this.queue.getBackend().off('ready', this.onQueueReady);
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
    worker.on('error', (error) => this.warnThrottled('worker', `Deletion worker error: ${error.message}`));
  }

  /**
   * Upserts the schedulers (at boot, to apply this process's options), or only those that are
   * missing or whose next job no longer waits to run: upserting a healthy scheduler would put its
   * waiting job back at the end of the queue. One pass at a time (a pass waits while the queue is
   * unreachable); errors are logged, and the next pass tries again.
   */
  private async keepSchedules({ upsert = false } = {}): Promise<void> {
    if (this.checkingSchedules || this.stopped) {
      return;
    }
    this.checkingSchedules = true;
    try {
      for (const { id, name, every } of this.schedules) {
        try {
          if ((upsert || !(await this.isScheduled(id))) && !this.stopped) {
            await this.queue.upsertJobScheduler(id, { every }, { name, opts: { removeOnComplete: true, removeOnFail: 100 } });
            if (!upsert) {
              this.warnThrottled(`restored ${id}`, `Job scheduler ${id} had no job left in the queue (its data lost?); scheduled it again.`);
            }
          }
        } catch (error) {
          if (!this.stopped) {
            this.warnThrottled(`schedule ${id}`, `Could not schedule ${id}: ${(error as Error).message}`);
          }
        }
      }
    } finally {
      this.checkingSchedules = false;
    }
  }

  private async isScheduled(id: string): Promise<boolean> {
    const scheduler = await this.queue.getJobScheduler(id);
    if (!scheduler?.next) {
      return false;
    }
    // BullMQ names a scheduler's next job `repeat:<scheduler id>:<its time>`.
    return LIVE_JOB_STATES.includes(await this.queue.getJobState(`repeat:${id}:${scheduler.next}`));
  }

  private warnThrottled(topic: string, message: string): void {
    const now = Date.now();
    if (now - (this.lastWarning.get(topic) ?? 0) > WARNING_INTERVAL_MS) {
      this.lastWarning.set(topic, now);
      this.logger.warn(message);
    }
  }

  async process(job: Job): Promise<unknown> {
    if (job.name === RELAY_JOB) {
      return { enqueued: await this.relay.run() };
    }
    if (job.name === SWEEP_JOB) {
      return this.sweeper.sweep();
    }
    const requestId = parsePayload(job);
    try {
      const outcome = await this.runner.run(requestId);
      if (outcome.kind === 'completed') {
        this.announceCompleted(outcome.completed);
      } else if (outcome.kind === 'missing') {
        this.logger.warn(`Deletion request ${requestId} does not exist; job ${job.id} ignored.`);
      }
      return { outcome: outcome.kind };
    } catch (error) {
      // A validator's refusal is not transient: retrying blindly would only fail again.
      const refused = error instanceof DeletionBlockedError || error instanceof DeletionValidationBudgetError;
      const final = refused || error instanceof UnrecoverableError || job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
      await this.recordFailure(requestId, error, final);
      if (!final) {
        this.logger.warn(`Deletion request ${requestId} attempt ${job.attemptsMade + 1} failed, will retry: ${(error as Error).message}`);
      }
      throw refused ? new UnrecoverableError((error as Error).message) : error;
    }
  }

  /** A job that stalled too often, or failed outside `process`, still marks its request failed. */
  @OnWorkerEvent('failed')
  async onFailed(job: Job | undefined, error: Error): Promise<void> {
    if (!job || job.name !== CASCADE_JOB) {
      return;
    }
    const requestId = (job.data as Partial<CascadeJobData> | undefined)?.requestId;
    if (!isRequestId(requestId)) {
      this.logger.error(`Job ${job.id} failed: ${error.message}`);
      return;
    }
    if (job.attemptsMade >= (job.opts.attempts ?? 1) || error instanceof UnrecoverableError) {
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

/** The shortest schedule's interval, kept between 1 s and 1 min. */
function scheduleCheckInterval(schedules: readonly Schedule[]): number {
  return Math.min(60_000, Math.max(1_000, Math.min(...schedules.map((schedule) => schedule.every))));
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
