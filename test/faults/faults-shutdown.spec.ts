import { afterAll, expect, it } from '@jest/globals';
import { definePolicy, type DeletionModuleOptions } from '../../lib/index.js';
import { ASYNC_ENTITIES, Owner } from '../fixtures/async.entities.js';
import { seedOwner } from '../fixtures/async.seed.js';
import { createDeletionTestApp, type DeletionTestApp } from '../support/deletion-test-app.js';
import { scalar } from '../support/fault-checks.js';
import { waitForState, waitUntil } from '../support/wait.js';

/**
 * Issue 13, "graceful shutdown is bounded": app.close() during a long cascade stops the worker after
 * the batch under way and hands the rest back to the queue; another worker resumes from the cursor.
 */
const database = 'deletion_fault_shutdown';
const deletion: DeletionModuleOptions = {
  batchSize: 5,
  worker: { pauseBetweenBatchesMs: 100 },
  policies: [definePolicy(Owner, { items: 'destroyAsync' })],
};
let second: DeletionTestApp | undefined;
afterAll(() => second?.close());

it('app.close() returns within seconds in the middle of a cascade, and a new worker finishes it from its cursor', async () => {
  const first = await createDeletionTestApp({ database, entities: ASYNC_ENTITIES, deletion });
  const owner = await seedOwner(first.em(), { items: 400 });
  const bystander = await seedOwner(first.em(), { items: 3 }, 'bystander');
  const receipt = await first.deletions.destroy(Owner, owner);
  // 80 batches of 5 with a 100 ms pause: the cascade would take 8 s or more.
  await waitUntil(async () => ((await first.deletions.status(receipt.requestId!)).progress[0]?.processed ?? 0) >= 10, 10_000, 'the cascade under way');

  const started = Date.now();
  await first.close();
  expect(Date.now() - started).toBeLessThan(3_000);

  second = await createDeletionTestApp({ database, entities: ASYNC_ENTITIES, deletion, keepSchema: true });
  const left = await scalar(second, 'select count(*) from item where owner_id = ?', [owner]);
  expect(left).toBeGreaterThan(0);
  const status = await waitForState(second.deletions, receipt.requestId!, ['completed', 'failed'], 30_000);
  expect(status.state).toBe('completed');
  expect(status.progress[0]).toMatchObject({ processed: 400, done: true });
  expect(await scalar(second, 'select count(*) from item where owner_id = ?', [owner])).toBe(0);
  expect(await scalar(second, 'select count(*) from item where owner_id = ?', [bystander])).toBe(3);
}, 60_000);
