import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { afterAll, afterEach, describe, expect, it } from '@jest/globals';
import { MikroORM } from '@mikro-orm/core';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { DELETION_QUEUE, definePolicy } from '../../lib/index.js';
import { ASYNC_ENTITIES, Owner } from '../fixtures/async.entities.js';
import { seedOwner } from '../fixtures/async.seed.js';
import { CREATE_ITEM_AUDIT, ItemAuditSubscriber } from '../fixtures/audit.subscriber.js';
import { createDeletionTestApp, type DeletionTestApp } from '../support/deletion-test-app.js';
import { unusedPort } from '../support/ports.js';
import { REDIS_URL } from '../support/services.js';
import { waitForState, waitUntil } from '../support/wait.js';
import { CRASH_BATCH_SIZE, CRASH_POLICIES, CRASH_WORKER } from '../fixtures/crash.config.js';

const apps: DeletionTestApp[] = [];
const children: ChildProcess[] = [];
afterEach(async () => {
  for (const child of children.splice(0)) {
    child.kill('SIGKILL');
  }
  for (const app of apps.splice(0).reverse()) {
    await app.close();
  }
});
afterAll(async () => {
  for (const app of apps.splice(0)) {
    await app.close();
  }
});

const scalar = async (app: DeletionTestApp, sql: string, params: unknown[] = []) =>
  Number(Object.values((await app.em().getConnection().execute<Record<string, unknown>[]>(sql, params))[0]!)[0]);

describe('the outbox', () => {
  it('commits the delete while the queue is unreachable; the request stays pending until the relay enqueues it', async () => {
    const database = 'deletion_durability_relay';
    const policies = [definePolicy(Owner, { items: 'destroyAsync', logs: 'deleteAllAsync' })];
    const web = await createDeletionTestApp({
      database,
      entities: ASYNC_ENTITIES,
      redisUrl: `redis://127.0.0.1:${await unusedPort()}`,
      deletion: { worker: false, queue: { enqueueTimeoutMs: 300 }, policies },
    });
    apps.push(web);
    const id = await seedOwner(web.em(), { items: 30, logs: 12 });

    const receipt = await web.deletions.destroy(Owner, id);
    expect(receipt.status).toBe('pending');
    expect(await scalar(web, 'select count(*) from owner where id = ?', [id])).toBe(0);
    expect((await web.deletions.status(receipt.requestId!)).state).toBe('pending');

    // Nothing reached the real Redis: the request has no job there until a relay enqueues it.
    const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: null });
    const realQueue = new Queue(DELETION_QUEUE, { connection: redis, prefix: database });
    try {
      expect(await realQueue.getJob(receipt.requestId!)).toBeUndefined();
    } finally {
      await realQueue.close();
      redis.disconnect();
    }

    // The queue comes back: a worker on the real Redis, whose relay finds the request without a job.
    const worker = await createDeletionTestApp({
      database,
      keepSchema: true,
      entities: ASYNC_ENTITIES,
      deletion: { policies, relay: { intervalMs: 200, graceMs: 0 } },
    });
    apps.push(worker);
    const status = await waitForState(worker.deletions, receipt.requestId!, ['completed', 'failed'], 20_000);
    expect(status.state).toBe('completed');
    expect(await scalar(worker, 'select count(*) from item where owner_id = ?', [id])).toBe(0);
    expect(await scalar(worker, 'select count(*) from log where owner_id = ?', [id])).toBe(0);
  });
});

describe('a worker killed in the middle of a cascade', () => {
  it('is resumed by another worker from the stored cursor: no child missed, none deleted twice', async () => {
    const database = 'deletion_durability_crash';
    const items = 3000;
    const web = await createDeletionTestApp({ database, entities: ASYNC_ENTITIES, deletion: { worker: false, policies: CRASH_POLICIES, batchSize: CRASH_BATCH_SIZE } });
    apps.push(web);
    await web.em().getConnection().execute(CREATE_ITEM_AUDIT);
    const bystander = await seedOwner(web.em(), { items: 5 }, 'bystander');
    const id = await seedOwner(web.em(), { items });

    const child = spawn(process.execPath, ['--import', '@swc-node/register/esm-register', 'test/support/worker-process.ts', database], {
      cwd: process.cwd(),
      env: { ...process.env, NODE_OPTIONS: '' },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    children.push(child);
    await waitUntil(async () => child.stdout!.read()?.toString().includes('worker ready') ?? false, 30_000, 'worker process ready');

    const receipt = await web.deletions.destroy(Owner, id);
    // Let it get well into the cascade, then kill it without warning.
    await waitUntil(async () => (await scalar(web, 'select count(*) from item_audit')) >= 600, 30_000, 'cascade under way');
    child.kill('SIGKILL');
    await once(child, 'exit');
    const auditedAtKill = await scalar(web, 'select count(*) from item_audit');
    expect(auditedAtKill).toBeLessThan(items);
    expect((await web.deletions.status(receipt.requestId!)).state).toBe('running');

    const resumer = await createDeletionTestApp({
      database,
      keepSchema: true,
      entities: ASYNC_ENTITIES,
      deletion: { batchSize: CRASH_BATCH_SIZE, worker: CRASH_WORKER, policies: CRASH_POLICIES },
    });
    apps.push(resumer);
    resumer.module.get(MikroORM).em.getEventManager().registerSubscriber(new ItemAuditSubscriber());
    const status = await waitForState(resumer.deletions, receipt.requestId!, ['completed', 'failed'], 30_000);

    expect(status.state).toBe('completed');
    expect(status.progress).toEqual([{ path: 'Owner.items', entity: 'Item', policy: 'destroyAsync', processed: items, done: true }]);
    expect(await scalar(web, 'select count(*) from item where owner_id = ?', [id])).toBe(0);
    expect(await scalar(web, 'select count(*) from item where owner_id = ?', [bystander])).toBe(5);
    expect(await scalar(web, 'select count(*) from item_audit')).toBe(items);
    expect(await scalar(web, 'select count(distinct item_id) from item_audit')).toBe(items);
  });
});
