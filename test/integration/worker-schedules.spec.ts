import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { Job, Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { setTimeout as sleep } from 'node:timers/promises';
import { definePolicy } from '../../lib/index.js';
import { RELAY_SCHEDULER_ID, SWEEP_SCHEDULER_ID } from '../../lib/queue/deletion-queue.constants.js';
import { ASYNC_ENTITIES, Owner } from '../fixtures/async.entities.js';
import { seedOwner } from '../fixtures/async.seed.js';
import { createDeletionTestApp, type DeletionTestApp } from '../support/deletion-test-app.js';
import { scalar } from '../support/fault-checks.js';
import { DisposableRedis } from '../support/redis-server.js';
import { REDIS_URL } from '../support/services.js';
import { waitForState, waitUntil } from '../support/wait.js';
import { cascadeWorker } from '../support/worker-control.js';

/*
 * The relay and the sweeper are BullMQ job schedulers that each worker process keeps in place: it
 * checks them whenever the queue's connection is ready again and every min(interval, 1 min), at
 * least 1 s apart, and recreates one that is gone. The relay runs every 500 ms here, so the checks
 * run every second.
 */

/** The job a scheduler will run next, if it still has one. */
async function nextJob(queue: Queue, schedulerId: string): Promise<Job | undefined> {
  const scheduler = await queue.getJobScheduler(schedulerId);
  return scheduler?.next ? queue.getJob(`repeat:${schedulerId}:${scheduler.next}`) : undefined;
}

async function nextJobState(queue: Queue, schedulerId: string): Promise<string> {
  const job = await nextJob(queue, schedulerId);
  return job ? job.getState() : 'none';
}

/**
 * Deletes a delayed job straight from the queue's store, as a partial loss of its data would
 * (BullMQ refuses to remove a scheduler's job through its API).
 */
async function loseDelayedJob(app: DeletionTestApp, backend: 'redis' | 'postgres', prefix: string, jobId: string): Promise<void> {
  if (backend === 'postgres') {
    await app.em().getConnection().execute(`delete from bullmq.job where queue = ? and id = ?`, [app.queue.name, jobId]);
    return;
  }
  const redis = new Redis(REDIS_URL);
  try {
    await redis.multi().zrem(`${prefix}:${app.queue.name}:delayed`, jobId).del(`${prefix}:${app.queue.name}:${jobId}`).exec();
  } finally {
    await redis.quit();
  }
}

describe.each(['redis', 'postgres'] as const)('job schedulers and worker settings, %s queue backend', (backend) => {
  const database = `deletion_worker_schedules_${backend}`;
  let app: DeletionTestApp;

  beforeAll(async () => {
    app = await createDeletionTestApp({
      database,
      entities: ASYNC_ENTITIES,
      deletion: {
        queue: { backend },
        worker: { drainDelayMs: 250 },
        relay: { intervalMs: 500, graceMs: 0 },
        // Long enough that the sweeper's next job stays delayed while the test looks at it.
        sweeper: { intervalMs: 600_000 },
        policies: [definePolicy(Owner, { items: 'destroyAsync' })],
      },
    });
  }, 30_000);
  afterAll(async () => {
    await app?.close();
  });

  it("the worker waits for jobs with the configured drain delay, in BullMQ's seconds", () => {
    expect(cascadeWorker(app).opts.drainDelay).toBe(0.25);
  });

  it('a healthy scheduler is only read: its next job is neither re-added nor moved', async () => {
    await waitUntil(async () => (await nextJobState(app.queue, SWEEP_SCHEDULER_ID)) === 'delayed', 10_000, "the sweeper's next run delayed");
    const scheduler = await app.queue.getJobScheduler(SWEEP_SCHEDULER_ID);
    const before = (await nextJob(app.queue, SWEEP_SCHEDULER_ID))!;

    await sleep(2_500); // two checks or more

    expect(await app.queue.getJobScheduler(SWEEP_SCHEDULER_ID)).toEqual(scheduler);
    const after = await nextJob(app.queue, SWEEP_SCHEDULER_ID);
    expect(after?.id).toBe(before.id);
    expect(after?.timestamp).toBe(before.timestamp);
    expect(await after?.getState()).toBe('delayed');
  });

  it("a scheduler whose next job was lost from the store is scheduled again, with one next job", async () => {
    const lost = (await nextJob(app.queue, SWEEP_SCHEDULER_ID))!;
    await loseDelayedJob(app, backend, database, lost.id!);
    expect(await app.queue.getJobState(lost.id!)).toBe('unknown');

    await waitUntil(async () => (await nextJobState(app.queue, SWEEP_SCHEDULER_ID)) === 'delayed', 5_000, "the sweeper's next run scheduled again");
    const sweeps = (await app.queue.getJobs(['delayed', 'waiting', 'active', 'prioritized'])).filter((job) => job.repeatJobKey === SWEEP_SCHEDULER_ID);
    expect(sweeps).toHaveLength(1);
    expect(await app.queue.getJobScheduler(SWEEP_SCHEDULER_ID)).toMatchObject({ every: 600_000 });
    expect(await app.queue.getJobScheduler(RELAY_SCHEDULER_ID)).toMatchObject({ every: 500 });
  });
});

describe('Redis flushed while the application runs', () => {
  let redis: DisposableRedis;
  let app: DeletionTestApp;

  beforeAll(async () => {
    redis = await DisposableRedis.start();
    app = await createDeletionTestApp({
      database: 'deletion_worker_schedules_flush',
      entities: ASYNC_ENTITIES,
      redisUrl: redis.url,
      deletion: {
        relay: { intervalMs: 500, graceMs: 0 },
        sweeper: { intervalMs: 0 },
        policies: [definePolicy(Owner, { items: 'destroyAsync' })],
      },
    });
  }, 30_000);
  afterAll(async () => {
    await app?.close();
    await redis?.stop();
  });

  it('the relay is scheduled again, and re-enqueues a request whose job FLUSHALL deleted; the sweeper (interval 0) stays off', async () => {
    await waitUntil(async () => (await app.queue.getJobScheduler(RELAY_SCHEDULER_ID)) !== undefined, 10_000, 'relay scheduled at boot');
    const worker = cascadeWorker(app);
    const owner = await seedOwner(app.em(), { items: 30 }, 'deleted before the flush');

    await worker.pause();
    const { requestId } = await app.deletions.destroy(Owner, owner);
    await waitUntil(async () => (await app.queue.getJobState(requestId!)) === 'waiting', 5_000, 'cascade job waiting');
    const flusher = new Redis(redis.url);
    await flusher.flushall();
    await flusher.quit();
    expect(await app.queue.getJobState(requestId!)).toBe('unknown');

    // Restored by this process's check while no job can run.
    await waitUntil(async () => (await app.queue.getJobScheduler(RELAY_SCHEDULER_ID)) !== undefined, 5_000, 'relay scheduled again');
    worker.resume();

    expect((await waitForState(app.deletions, requestId!, ['completed', 'failed'], 10_000)).state).toBe('completed');
    expect(await scalar(app, 'select count(*) from item where owner_id = ?', [owner])).toBe(0);
    expect(await app.queue.getJobScheduler(SWEEP_SCHEDULER_ID)).toBeUndefined();
    expect((await app.queue.getJobSchedulers()).map((scheduler) => scheduler.key)).toEqual([RELAY_SCHEDULER_ID]);
  });
});
