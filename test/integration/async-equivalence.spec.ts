import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { definePolicy, type PolicyDefinition } from '../../lib/index.js';
import { ASYNC_ENTITIES, Item, Owner } from '../fixtures/async.entities.js';
import { dumpRows, seedOwner } from '../fixtures/async.seed.js';
import { createDeletionTestApp, type DeletionTestApp } from '../support/deletion-test-app.js';
import { waitForState } from '../support/wait.js';

/**
 * DESIGN 2: the same deletion ends in the same rows whether its cascade runs in the request or in
 * the queue. Two databases get the same seed; one deletes through queued policies, the other
 * through their synchronous counterparts; the remaining rows must be identical.
 */
const queued: PolicyDefinition[] = [
  definePolicy(Owner, { items: 'destroyAsync', logs: 'deleteAllAsync', notes: 'nullifyThenPurge', badge: 'destroy' }),
  definePolicy(Item, { parts: 'deleteAllAsync' }),
];
const synchronous: PolicyDefinition[] = [
  definePolicy(Owner, { items: 'destroy', logs: 'deleteAll', notes: 'destroy', badge: 'destroy' }),
  definePolicy(Item, { parts: 'deleteAll' }),
];

let asyncApp: DeletionTestApp;
let syncApp: DeletionTestApp;

beforeAll(async () => {
  [asyncApp, syncApp] = await Promise.all([
    createDeletionTestApp({ database: 'deletion_equivalence_async', entities: ASYNC_ENTITIES, deletion: { batchSize: 16, policies: queued } }),
    createDeletionTestApp({ database: 'deletion_equivalence_sync', entities: ASYNC_ENTITIES, deletion: { batchSize: 16, policies: synchronous } }),
  ]);
});
afterAll(async () => {
  await asyncApp?.close();
  await syncApp?.close();
});

async function seed(app: DeletionTestApp): Promise<number[]> {
  const em = app.em();
  const ids = [
    await seedOwner(em, { items: 40, partsPerItem: 3, logs: 35, notes: 20, badge: true }, 'first'),
    await seedOwner(em, { items: 7, partsPerItem: 2, logs: 1, notes: 3, badge: true }, 'kept'),
    await seedOwner(em, { items: 25, partsPerItem: 1, logs: 0, notes: 9 }, 'second'),
  ];
  await em.getConnection().execute(`insert into note (text, owner_id) values ('already free', null)`);
  return ids;
}

it('a three-level tree mixing queued and synchronous policies ends in the rows of its all-synchronous version', async () => {
  const [first, , second] = await seed(asyncApp);
  await seed(syncApp);

  for (const id of [first!, second!]) {
    const receipt = await asyncApp.deletions.destroy(Owner, id);
    expect(receipt.status).toBe('pending');
    expect((await waitForState(asyncApp.deletions, receipt.requestId!)).state).toBe('completed');
    expect(await syncApp.deletions.destroy(Owner, id)).toEqual({ entity: 'Owner', id, status: 'completed' });
  }

  const [afterAsync, afterSync] = await Promise.all([dumpRows(asyncApp.em()), dumpRows(syncApp.em())]);
  expect(afterAsync).toEqual(afterSync);
  // And what remains is exactly the kept owner's subtree plus the note that was already free.
  expect(afterSync.owner).toHaveLength(1);
  expect(afterSync.item).toHaveLength(7);
  expect(afterSync.part).toHaveLength(14);
  expect(afterSync.log).toHaveLength(1);
  expect(afterSync.note).toHaveLength(4);
  expect(afterSync.badge).toHaveLength(1);
});
