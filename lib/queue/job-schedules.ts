import type { Queue } from 'bullmq';

/** A BullMQ job scheduler a worker process keeps in place: the relay, or the sweeper. */
export interface Schedule {
  readonly id: string;
  readonly name: string;
  readonly every: number;
}

/** Job states in which a scheduler's next job will still run. */
const LIVE_JOB_STATES: readonly string[] = ['waiting', 'delayed', 'prioritized', 'active', 'waiting-children'];

/**
 * Keeps the module's job schedulers in the queue's store. They live there, and Redis may lose them
 * (a restart without persistence, FLUSHALL, failover to an empty replica) while this process keeps
 * running: so they are checked again whenever the queue's connection is ready again, and
 * periodically, and any that is missing or whose next job is gone is upserted again.
 */
export class JobSchedules {
  private timer?: NodeJS.Timeout;
  private checking = false;
  private stopped = false;
  private readonly onReady = (): void => void this.keep();

  /** `warn(topic, message)`: the caller's throttled warning. */
  constructor(
    private readonly queue: Queue,
    private readonly schedules: readonly Schedule[],
    private readonly warn: (topic: string, message: string) => void,
  ) {}

  /** Upserts every schedule (applying this process's options), then watches them. */
  start(): void {
    if (this.schedules.length === 0) {
      return;
    }
    void this.keep({ upsert: true });
    this.queue.getBackend().on('ready', this.onReady);
    this.timer = setInterval(this.onReady, checkInterval(this.schedules));
    this.timer.unref();
  }

  /** Stops watching, before the queue's connection closes. */
  stop(): void {
    this.stopped = true;
    clearInterval(this.timer);
    this.queue.getBackend().off('ready', this.onReady);
  }

  /**
   * Upserts the schedulers (`upsert`), or only those that are missing or whose next job no longer
   * waits to run: upserting a healthy scheduler would put its waiting job back at the end of the
   * queue. One pass at a time (a pass waits while the queue is unreachable); errors are logged, and
   * the next pass tries again.
   */
  private async keep({ upsert = false } = {}): Promise<void> {
    if (this.checking || this.stopped) {
      return;
    }
    this.checking = true;
    try {
      for (const { id, name, every } of this.schedules) {
        try {
          if ((upsert || !(await this.isScheduled(id))) && !this.stopped) {
            await this.queue.upsertJobScheduler(id, { every }, { name, opts: { removeOnComplete: true, removeOnFail: 100 } });
            if (!upsert) {
              this.warn(`restored ${id}`, `Job scheduler ${id} had no job left in the queue (its data lost?); scheduled it again.`);
            }
          }
        } catch (error) {
          if (!this.stopped) {
            this.warn(`schedule ${id}`, `Could not schedule ${id}: ${(error as Error).message}`);
          }
        }
      }
    } finally {
      this.checking = false;
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
}

/** The shortest schedule's interval, kept between 1 s and 1 min. */
function checkInterval(schedules: readonly Schedule[]): number {
  return Math.min(60_000, Math.max(1_000, Math.min(...schedules.map((schedule) => schedule.every))));
}
