import { afterAll, beforeAll, expect, it, jest } from '@jest/globals';
import { Logger } from '@nestjs/common';
import { DeletionEvents, DeletionRequestNotFoundError, definePolicy, type DeletionFailedEvent } from '../../lib/index.js';
import { ASYNC_ENTITIES, Owner } from '../fixtures/async.entities.js';
import { seedOwner } from '../fixtures/async.seed.js';
import { createDeletionTestApp, type DeletionTestApp } from '../support/deletion-test-app.js';
import { waitForState } from '../support/wait.js';
import { cascadeWorker, whilePaused } from '../support/worker-control.js';
import { CascadeProcessor } from '../../lib/queue/cascade.processor.js';

let app: DeletionTestApp;

beforeAll(async () => {
  app = await createDeletionTestApp({
    database: 'deletion_async_failures',
    entities: ASYNC_ENTITIES,
    deletion: {
      batchSize: 10,
      queue: { attempts: 2, backoffMs: 20 },
      worker: { concurrency: 3, limiter: { max: 500, duration: 1000 }, pauseBetweenBatchesMs: 100 },
      policies: [definePolicy(Owner, { items: 'destroyAsync' })],
    },
  });
});
afterAll(() => app?.close());

const count = async (where: string) =>
  Number((await app.em().getConnection().execute<{ n: string }[]>(`select count(*) as n from item where ${where}`))[0]!.n);

it('a child that refuses deletion fails the request visibly (status, event, error log), rolls its batch back, and retry() resumes it', async () => {
  const id = await seedOwner(app.em(), { items: 35 });
  // The 25th item refuses: batches 1 and 2 (items 1-20) commit, batch 3 fails whole.
  await app.em().getConnection().execute(`update item set label = 'refuse' where id = (select id from item where owner_id = ? order by id offset 24 limit 1)`, [id]);
  const failures: DeletionFailedEvent[] = [];
  const events = app.module.get(DeletionEvents);
  const listener = (event: DeletionFailedEvent) => failures.push(event);
  events.on('failed', listener);
  const errorLog = jest.spyOn(Logger.prototype, 'error');
  try {
    const receipt = await app.deletions.destroy(Owner, id);
    const failed = await waitForState(app.deletions, receipt.requestId!);
    expect(failed.state).toBe('failed');
    expect(failed.errors).toEqual([
      { requestId: receipt.requestId, path: 'Owner', state: 'failed', error: { code: 'DELETION_CASCADE_ERROR', message: expect.stringContaining('refuses to be deleted') } },
    ]);
    expect(failed.progress).toEqual([{ path: 'Owner.items', entity: 'Item', policy: 'destroyAsync', processed: 20, done: false }]);
    expect(await count(`owner_id = ${id}`)).toBe(15);
    expect(failures).toEqual([
      { requestId: receipt.requestId, rootId: receipt.requestId, entity: 'Owner', path: 'Owner', error: expect.objectContaining({ code: 'DELETION_CASCADE_ERROR' }) },
    ]);
    expect(errorLog.mock.calls.some(([message]) => String(message).includes(receipt.requestId!) && String(message).includes('failed'))).toBe(true);

    await app.em().getConnection().execute(`update item set label = 'fixed' where owner_id = ? and label = 'refuse'`, [id]);
    const retried = await app.deletions.retry(receipt.requestId!);
    expect(['pending', 'running', 'completed']).toContain(retried.state);
    const done = await waitForState(app.deletions, receipt.requestId!);
    expect(done.state).toBe('completed');
    expect(done.errors).toEqual([]);
    expect(done.progress[0]).toMatchObject({ processed: 35, done: true });
    expect(await count(`owner_id = ${id}`)).toBe(0);
  } finally {
    events.off('failed', listener);
    errorLog.mockRestore();
  }
});

it('a failure reported late for the attempt that retry() replaced does not undo the retry', async () => {
  const id = await seedOwner(app.em(), { items: 5 });
  await app.em().getConnection().execute(`update item set label = 'refuse' where id = (select min(id) from item where owner_id = ?)`, [id]);
  const receipt = await app.deletions.destroy(Owner, id);
  expect((await waitForState(app.deletions, receipt.requestId!)).state).toBe('failed');
  const failedJob = (await app.queue.getJob(receipt.requestId!))!;
  expect(await failedJob.getState()).toBe('failed');

  await app.em().getConnection().execute(`update item set label = 'fixed' where owner_id = ?`, [id]);
  // The worker waits, so the retried request is still pending when the replaced attempt's 'failed'
  // event arrives, as it may on a loaded machine.
  await whilePaused(app, async () => {
    await app.deletions.retry(receipt.requestId!);
    await app.module.get(CascadeProcessor).onFailed(failedJob, new Error('late failure of the replaced attempt'));
    expect((await app.deletions.status(receipt.requestId!)).state).toBe('pending');
  });

  const done = await waitForState(app.deletions, receipt.requestId!);
  expect(done.state).toBe('completed');
  expect(done.errors).toEqual([]);
  expect(await count(`owner_id = ${id}`)).toBe(0);
});

it('applies the throttling options to the worker: concurrency, rate limiter, and a pause between batches', async () => {
  const worker = cascadeWorker(app);
  expect(worker.concurrency).toBe(3);
  expect(worker.opts.limiter).toEqual({ max: 500, duration: 1000 });
  const id = await seedOwner(app.em(), { items: 50 });
  const started = Date.now();
  const receipt = await app.deletions.destroy(Owner, id);
  await waitForState(app.deletions, receipt.requestId!);
  // Six batches (10, 10, 10, 10, 10, then an empty one) with a 100 ms pause after each of the first five.
  expect(Date.now() - started).toBeGreaterThanOrEqual(500);
});

it('status() and retry() reject an unknown request id with DeletionRequestNotFoundError', async () => {
  await expect(app.deletions.status('7b0e6f1c-0000-4000-8000-000000000000')).rejects.toBeInstanceOf(DeletionRequestNotFoundError);
  await expect(app.deletions.retry('not-a-uuid')).rejects.toMatchObject({ code: 'DELETION_REQUEST_NOT_FOUND', requestId: 'not-a-uuid' });
});
