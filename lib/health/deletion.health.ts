import { MikroORM } from '@mikro-orm/core';
import { InjectQueue } from '@nestjs/bullmq';
import { Inject, Injectable, Logger, type OnModuleInit } from '@nestjs/common';
import { ModuleRef } from '@nestjs/core';
import { HealthIndicatorService, type HealthIndicatorResult } from '@nestjs/terminus';
import type { Queue } from 'bullmq';
import { RESOLVED_DELETION_OPTIONS } from '../deletion.constants.js';
import { resolveHealthOptions } from '../deletion.options.js';
import type { DeletionHealthOptions, ResolvedDeletionOptions } from '../interfaces/deletion-module-options.interface.js';
import { DeletionRequest } from '../outbox/deletion-request.entity.js';
import { DELETION_QUEUE } from '../queue/deletion-queue.constants.js';
import { evaluateDeletionHealth, type DeletionQueueCounts, type DeletionRequestCounts } from './deletion-health.evaluate.js';

/**
 * `@nestjs/terminus` indicator of the deletion pipeline: the queue answers, how many jobs wait,
 * run, are delayed or failed, how many deletion requests failed and how old the oldest open one
 * is. `down`, with a `reason`, when the queue or the requests cannot be read within `timeoutMs`,
 * when failed requests exceed `maxFailed`, or when the oldest open request is older than
 * `maxLagMs`. Thresholds come from the call, then from `DeletionModule`'s `health` option.
 *
 * A long cascade keeps its request open for as long as it runs: prefer this indicator for
 * readiness or alerting, and size `maxLagMs` to your largest cascade before using it for liveness.
 *
 * @example
 * // imports: [TerminusModule, DeletionHealthModule]
 * @Get('health')
 * @HealthCheck()
 * check() {
 *   return this.health.check([() => this.deletion.isHealthy()]);
 * }
 */
@Injectable()
export class DeletionHealthIndicator implements OnModuleInit {
  private readonly logger = new Logger(DeletionHealthIndicator.name);
  private defaults = resolveHealthOptions(undefined);

  constructor(
    @Inject(HealthIndicatorService) private readonly indicators: HealthIndicatorService,
    @InjectQueue(DELETION_QUEUE) private readonly queue: Queue,
    @Inject(MikroORM) private readonly orm: MikroORM,
    @Inject(ModuleRef) private readonly moduleRef: ModuleRef,
  ) {}

  /** Takes the thresholds of `DeletionModule.forRoot({ health })` when that module is loaded. */
  onModuleInit(): void {
    // This queue instance only probes. Its connection errors reach the health result as "queue
    // unreachable"; without a listener BullMQ would also print every failed reconnect to stderr.
    this.queue.on('error', (error) => this.logger.debug(`Deletion queue connection error: ${error.message}`));
    const options = this.moduleOptions();
    if (options) {
      this.defaults = options.health;
    }
  }

  /** Probes the queue and the deletion requests, both within `timeoutMs`, and judges them. */
  async isHealthy(key = 'deletion', options?: DeletionHealthOptions): Promise<HealthIndicatorResult> {
    const { maxFailed, maxLagMs, timeoutMs } = resolveHealthOptions({
      maxFailed: options?.maxFailed ?? this.defaults.maxFailed,
      maxLagMs: options?.maxLagMs ?? this.defaults.maxLagMs,
      timeoutMs: options?.timeoutMs ?? this.defaults.timeoutMs,
    });
    const [queue, requests] = await Promise.all([
      this.measure(`${key}.queue`, 'the deletion queue', timeoutMs, () => this.countJobs()),
      this.measure(`${key}.requests`, 'the database', timeoutMs, (signal) => this.countRequests(signal)),
    ]);
    const verdict = evaluateDeletionHealth({ queue, requests }, { maxFailed, maxLagMs });
    const session = this.indicators.check(key);
    return verdict.status === 'up' ? session.up({ ...verdict.details }) : session.down({ reason: verdict.reason, ...verdict.details });
  }

  /**
   * One probe through Terminus' `HealthIndicatorService`: time-limited by its `withTimeout()`, whose
   * `AbortSignal` cancels the probe's query when it runs late.
   */
  private async measure<T>(key: string, what: string, timeoutMs: number, probe: (signal: AbortSignal) => Promise<T>): Promise<T | { error: string }> {
    let measured: T | undefined;
    let timedOut = false;
    const result = await this.indicators
      .check(key)
      .attempt(async ({ signal }) => {
        signal.addEventListener('abort', () => (timedOut = true), { once: true });
        measured = await probe(signal);
      })
      .withTimeout(timeoutMs);
    const outcome = result[key] as { status: string; message?: string };
    if (outcome.status === 'up') {
      return measured as T;
    }
    return { error: timedOut && measured === undefined ? `${what} did not answer within ${timeoutMs} ms` : String(outcome.message ?? 'unknown error') };
  }

  private async countJobs(): Promise<DeletionQueueCounts> {
    const counts = await this.queue.getJobCounts('waiting', 'active', 'delayed', 'failed');
    return { waiting: counts.waiting ?? 0, active: counts.active ?? 0, delayed: counts.delayed ?? 0, failed: counts.failed ?? 0 };
  }

  private async countRequests(signal: AbortSignal): Promise<DeletionRequestCounts> {
    // A probe past its time limit cancels its queries on the server, rather than leaving them running.
    const em = () => this.orm.em.fork({ signal, inflightQueryAbortStrategy: 'cancel query' });
    const [failedRequests, sweeperRequests, oldest] = await Promise.all([
      em().count(DeletionRequest, { state: 'failed' }),
      em().count(DeletionRequest, { origin: 'sweeper', state: { $in: ['pending', 'running'] } }),
      em()
        .findOne(DeletionRequest, { state: { $in: ['pending', 'running'] } }, { orderBy: { createdAt: 'asc' }, fields: ['createdAt'] }),
    ]);
    // Clamped: the request's clock (the writing process) may run ahead of this one.
    const oldestPendingMs = oldest ? Math.max(0, Date.now() - oldest.createdAt.getTime()) : null;
    return { failedRequests, oldestPendingMs, sweeperRequests };
  }

  /**
   * `DeletionModule` keeps its resolved options to itself; they are looked up across modules, as
   * this indicator lives in `DeletionHealthModule`, which an application may load on its own.
   */
  private moduleOptions(): ResolvedDeletionOptions | undefined {
    try {
      return this.moduleRef.get<ResolvedDeletionOptions>(RESOLVED_DELETION_OPTIONS, { strict: false });
    } catch {
      // Only "unknown element" can happen here: DeletionModule is not loaded, the defaults apply.
      return undefined;
    }
  }
}
