import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { setTimeout as sleep } from 'node:timers/promises';
import { definePolicy, type DeletionReceipt } from '../../lib/index.js';
import { ASYNC_ENTITIES, Owner } from '../fixtures/async.entities.js';
import { seedOwner } from '../fixtures/async.seed.js';
import { CREATE_ITEM_AUDIT, ItemAuditSubscriber } from '../fixtures/audit.subscriber.js';
import { createDeletionTestApp, type DeletionTestApp } from '../support/deletion-test-app.js';
import { itemAudit, requestStates, scalar } from '../support/fault-checks.js';
import { DisposableRedis, workerReconnected } from '../support/redis-server.js';
import { waitForState, waitUntil } from '../support/wait.js';
import { cascadeWorker } from '../support/worker-control.js';

/*
 * Redis is this file's own redis-server (never the shared one on 6379), killed with SIGKILL in the
 * middle of the cascades and started again, empty, on the same port: every job, job lock and job
 * scheduler is lost. Only the deletion_request rows in PostgreSQL say what is left to do.
 */
let redis: DisposableRedis;
let app: DeletionTestApp;

const ITEMS = 400;
const LOGS = 50;
let bystander: number;
/** Requests whose cascade was running in the worker when Redis died. */
let runningAtKill: { owner: number; requestId: string }[];
/** Requests whose job was waiting in Redis when it died. */
let waitingAtKill: { owner: number; requestId: string }[];
/**
 * A deletion committed while Redis was down: its enqueue times out after 300 ms and the request
 * row stays (the abandoned add stays in ioredis's offline queue, though, and reaches the new Redis).
 */
let duringOutage: { owner: number; receipt: DeletionReceipt };
/** A deletion requested once Redis was back. */
let afterRestart: { owner: number; receipt: DeletionReceipt };
const workerErrors: Error[] = [];

beforeAll(async () => {
  redis = await DisposableRedis.start();
  app = await createDeletionTestApp({
    database: 'deletion_fault_redis',
    entities: ASYNC_ENTITIES,
    redisUrl: redis.url,
    deletion: {
      batchSize: 50,
      queue: { attempts: 10, backoffMs: 50, enqueueTimeoutMs: 300 },
      worker: { concurrency: 2, pauseBetweenBatchesMs: 20, lockDurationMs: 2_000, stalledIntervalMs: 500 },
      relay: { intervalMs: 200, graceMs: 0 },
      policies: [definePolicy(Owner, { items: 'destroyAsync', logs: 'deleteAllAsync' })],
    },
  });
  await app.em().getConnection().execute(CREATE_ITEM_AUDIT);
  app.orm.em.getEventManager().registerSubscriber(new ItemAuditSubscriber());
  // The module does not listen to its worker's 'error' events, so BullMQ prints each one
  // ("Unhandled error", ECONNREFUSED while Redis is down) with console.error; keep them out of the log.
  cascadeWorker(app).on('error', (error) => workerErrors.push(error));

  bystander = await seedOwner(app.em(), { items: 6, logs: 4 }, 'bystander');
  const doomed: { owner: number; requestId: string }[] = [];
  for (let i = 0; i < 4; i++) {
    const owner = await seedOwner(app.em(), { items: ITEMS, logs: LOGS }, `doomed ${i}`);
    doomed.push({ owner, requestId: (await app.deletions.destroy(Owner, owner)).requestId! });
  }
  // Four requests, two worker slots: two cascades run, two jobs wait in Redis.
  await waitUntil(async () => (await itemAudit(app)).rows >= 150, 20_000, 'cascades under way');
  const states = new Map<string, string>();
  for (const { requestId } of doomed) {
    states.set(requestId, (await app.deletions.status(requestId)).state);
  }
  await redis.kill();
  runningAtKill = doomed.filter((d) => states.get(d.requestId) === 'running');
  waitingAtKill = doomed.filter((d) => states.get(d.requestId) === 'pending');

  const during = await seedOwner(app.em(), { items: 120, logs: 10 }, 'deleted while Redis is down');
  duringOutage = { owner: during, receipt: await app.deletions.destroy(Owner, during) };
  await sleep(500);
  await redis.start();
  await app.queue.getJobCounts(); // answers once the queue's connection is back

  const after = await seedOwner(app.em(), { items: 60 }, 'deleted after the restart');
  afterRestart = { owner: after, receipt: await app.deletions.destroy(Owner, after) };
}, 40_000);
afterAll(async () => {
  if (app) {
    if (!redis.running) {
      await redis.start();
    }
    await workerReconnected(cascadeWorker(app));
    await app.close();
  }
  await redis?.stop();
});

const itemsOf = (owner: number) => scalar(app, 'select count(*) from item where owner_id = ?', [owner]);
const logsOf = (owner: number) => scalar(app, 'select count(*) from log where owner_id = ?', [owner]);

describe('Redis restarted in the middle of a cascade', () => {
  it('the scenario really lost work: cascades were running, jobs were waiting, a deletion was committed during the outage', () => {
    expect(runningAtKill.length).toBeGreaterThanOrEqual(1);
    expect(waitingAtKill.length).toBeGreaterThanOrEqual(1);
    expect(runningAtKill.length + waitingAtKill.length).toBe(4);
    expect(duringOutage.receipt.status).toBe('pending');
  });

  it('cascades that were running when Redis died finish: their children deleted exactly once, bystanders untouched', async () => {
    for (const { owner, requestId } of runningAtKill) {
      expect((await waitForState(app.deletions, requestId, ['completed', 'failed'], 20_000)).state).toBe('completed');
      expect(await itemsOf(owner)).toBe(0);
      expect(await logsOf(owner)).toBe(0);
    }
    const audit = await itemAudit(app);
    expect(audit.rows).toBe(audit.distinct);
    expect(await itemsOf(bystander)).toBe(6);
    expect(await logsOf(bystander)).toBe(4);
  });

  it('the worker reconnects: a deletion requested after the restart completes', async () => {
    expect((await waitForState(app.deletions, afterRestart.receipt.requestId!, ['completed', 'failed'], 20_000)).state).toBe('completed');
    expect(await itemsOf(afterRestart.owner)).toBe(0);
  });

  /*
   * The relay and the sweeper are BullMQ job schedulers, and Redis lost them with everything else.
   * Each worker process checks them again when the queue's connection is ready again (and
   * periodically) and recreates the ones that are gone, so the relay runs again and enqueues the
   * requests whose jobs were lost: those waiting in Redis at the crash, and the one committed during
   * the outage (which may also have been enqueued by the add left in ioredis's offline queue).
   */
  it('the relay re-enqueues the requests whose jobs were lost: every request completes, none left pending or running', async () => {
    const lost = [...waitingAtKill, { owner: duringOutage.owner, requestId: duringOutage.receipt.requestId! }];
    await waitUntil(
      async () => {
        const states = await requestStates(app);
        return !states.pending && !states.running;
      },
      8_000,
      'no open request',
    ).catch(() => undefined);

    expect(await requestStates(app)).toEqual({ completed: 6 });
    for (const { owner } of lost) {
      expect(await itemsOf(owner)).toBe(0);
      expect(await logsOf(owner)).toBe(0);
    }
    expect(await itemAudit(app)).toEqual({ rows: 4 * ITEMS + 120 + 60, distinct: 4 * ITEMS + 120 + 60 });
    expect(await itemsOf(bystander)).toBe(6);
  });
});
