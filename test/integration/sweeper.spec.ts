import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { OrphanSweeper, definePolicy } from '../../lib/index.js';
import { ASYNC_ENTITIES, Owner, Vault } from '../fixtures/async.entities.js';
import { seedOwner } from '../fixtures/async.seed.js';
import { createDeletionTestApp, type DeletionTestApp } from '../support/deletion-test-app.js';
import { waitForState } from '../support/wait.js';
import { whilePaused } from '../support/worker-control.js';

let app: DeletionTestApp;

beforeAll(async () => {
  app = await createDeletionTestApp({
    database: 'deletion_sweeper',
    entities: ASYNC_ENTITIES,
    deletion: {
      batchSize: 50,
      sweeper: { intervalMs: 0 }, // the test runs the sweep itself
      policies: [
        definePolicy(Owner, { items: 'destroyAsync', logs: 'deleteAllAsync', notes: 'nullifyThenPurge' }),
        definePolicy(Vault, { items: 'destroyAsync' }, { tombstone: 'deletedAt' }),
      ],
    },
  });
});
afterAll(() => app?.close());

const sql = (query: string, params: unknown[] = []) => app.em().getConnection().execute<Record<string, unknown>[]>(query, params);
const count = async (table: string, where: string) => Number((await sql(`select count(*) as n from ${table} where ${where}`))[0]!.n);

it('watches the relations under queued policies without tombstone mode', () => {
  expect(app.module.get(OrphanSweeper).relations().map((r) => `${r.entity}.${r.relation}`)).toEqual(['Owner.items', 'Owner.logs']);
});

it('removes children inserted for an already-deleted parent, through the relation’s policy, and never touches children of live parents', async () => {
  const live = await seedOwner(app.em(), { items: 4, logs: 3 }, 'live');
  const gone = await seedOwner(app.em(), { items: 2 }, 'gone');
  const receipt = await app.deletions.destroy(Owner, gone);
  await waitForState(app.deletions, receipt.requestId!);
  // The orphan window: rows written for the deleted parent after its cascade ran (no FK stops them).
  await sql(`insert into item (label, owner_id) select 'late ' || g, ? from generate_series(1, 120) g`, [gone]);
  await sql(`insert into log (owner_id) select ? from generate_series(1, 7) g`, [gone]);
  // And a parent deleted behind the module's back, with nativeDelete (which bypasses policies).
  const bypassed = await seedOwner(app.em(), { items: 5 }, 'bypassed');
  await app.em().nativeDelete(Owner, { id: bypassed });

  const report = await app.module.get(OrphanSweeper).sweep();
  expect(report.relations).toEqual([
    { relation: 'Owner.items', missingParents: 2, requestId: expect.any(String) },
    { relation: 'Owner.logs', missingParents: 1, requestId: expect.any(String) },
  ]);
  for (const { requestId } of report.relations) {
    const status = await waitForState(app.deletions, requestId!);
    expect(status).toMatchObject({ state: 'completed', origin: 'sweeper', entity: 'Owner' });
  }
  expect(await count('item', `owner_id in (${gone}, ${bypassed})`)).toBe(0);
  expect(await count('log', `owner_id = ${gone}`)).toBe(0);
  expect(await count('item', `owner_id = ${live}`)).toBe(4);
  expect(await count('log', `owner_id = ${live}`)).toBe(3);

  // Nothing left to find: a second sweep files nothing.
  expect((await app.module.get(OrphanSweeper).sweep()).relations.every((r) => r.missingParents === 0)).toBe(true);
});

it('does not file a second request for parents whose deletion is still pending', async () => {
  const id = await seedOwner(app.em(), { items: 3, logs: 2 });
  await whilePaused(app, async () => {
    const receipt = await app.deletions.destroy(Owner, id);
    const report = await app.module.get(OrphanSweeper).sweep();
    expect(report.relations.map((r) => r.missingParents)).toEqual([0, 0]);
    expect(await count('deletion_request', `origin = 'sweeper' and state in ('pending', 'running')`)).toBe(0);
    return receipt;
  });
});
