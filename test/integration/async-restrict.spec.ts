import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { DeletionRestrictedError, definePolicy } from '../../lib/index.js';
import { ASYNC_ENTITIES, Item, Owner } from '../fixtures/async.entities.js';
import { countRows, seedOwner } from '../fixtures/async.seed.js';
import { createDeletionTestApp, type DeletionTestApp } from '../support/deletion-test-app.js';
import { waitForState } from '../support/wait.js';

let app: DeletionTestApp;

beforeAll(async () => {
  app = await createDeletionTestApp({
    database: 'deletion_async_restrict',
    entities: ASYNC_ENTITIES,
    deletion: { policies: [definePolicy(Owner, { items: 'destroyAsync' }), definePolicy(Item, { parts: 'restrict' })] },
  });
});
afterAll(() => app?.close());

it('a restrict below a queued policy refuses in the request, as its synchronous counterpart would, and changes nothing', async () => {
  const id = await seedOwner(app.em(), { items: 4 });
  await app.em().getConnection().execute(`insert into part (item_id) select id from item where owner_id = ? order by id limit 1`, [id]);
  const before = await countRows(app.em());
  const jobs = await app.queue.getJobCountByTypes('waiting', 'active', 'delayed', 'completed', 'failed');

  const error = (await app.deletions.destroy(Owner, id).catch((e: unknown) => e)) as DeletionRestrictedError;

  expect(error).toBeInstanceOf(DeletionRestrictedError);
  expect(error).toMatchObject({ code: 'DELETION_RESTRICTED', entity: 'Item', relation: 'parts', childEntity: 'Part', count: 1 });
  expect(error.getStatus()).toBe(409);
  expect(await countRows(app.em())).toEqual(before);
  expect(await app.queue.getJobCountByTypes('waiting', 'active', 'delayed', 'completed', 'failed')).toBe(jobs);
  expect((await app.deletions.plan(Owner, id)).allowed).toBe(false);

  // Without the restricted child, the same deletion is accepted and completes.
  await app.em().getConnection().execute('delete from part');
  const receipt = await app.deletions.destroy(Owner, id);
  expect((await waitForState(app.deletions, receipt.requestId!)).state).toBe('completed');
});
