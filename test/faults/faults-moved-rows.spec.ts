import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import pg from 'pg';
import { definePolicy } from '../../lib/index.js';
import { ASYNC_ENTITIES, Owner } from '../fixtures/async.entities.js';
import { seedOwner } from '../fixtures/async.seed.js';
import { createDeletionTestApp, type DeletionTestApp } from '../support/deletion-test-app.js';
import { scalar } from '../support/fault-checks.js';
import { PgAdmin } from '../support/pg-admin.js';
import { databaseUrl } from '../support/services.js';
import { waitForState, waitUntil } from '../support/wait.js';
import { whilePaused } from '../support/worker-control.js';

const database = 'deletion_fault_moved_rows';
let app: DeletionTestApp;
let admin: PgAdmin;

beforeAll(async () => {
  app = await createDeletionTestApp({
    database,
    entities: ASYNC_ENTITIES,
    deletion: { batchSize: 100, policies: [definePolicy(Owner, { items: 'destroyAsync', logs: 'deleteAllAsync' })] },
  });
  admin = await PgAdmin.connect(database);
});
afterAll(async () => {
  await admin?.close();
  await app?.close();
});

/** A transaction of the test's own that moves one child to another parent and commits only when told. */
async function moveUncommitted(table: 'item' | 'log', id: number, to: number): Promise<{ commit(): Promise<void> }> {
  const client = new pg.Client({ connectionString: databaseUrl(database) });
  client.on('error', () => undefined);
  await client.connect();
  await client.query('begin');
  await client.query(`update ${table} set owner_id = $1 where id = $2`, [to, id]);
  return {
    commit: async () => {
      await client.query('commit');
      await client.end();
    },
  };
}

/**
 * DESIGN 7, "a cascade never deletes a row that no longer belongs to the deleted parent": a child
 * moved to a surviving parent while the queue's batch is about to delete it is kept. The move is
 * held uncommitted until the batch waits on it, then committed: the batch must see the move.
 */
describe.each([
  ['destroyAsync', 'item'],
  ['deleteAllAsync', 'log'],
] as const)('%s: a child moved to a surviving parent while its batch runs', (_policy, table) => {
  it('stays, under its new parent; the other children are deleted', async () => {
    const victim = await seedOwner(app.em(), table === 'item' ? { items: 5 } : { logs: 5 }, 'victim');
    const survivor = await seedOwner(app.em(), {}, 'survivor');
    const moved = await scalar(app, `select min(id) from ${table} where owner_id = ?`, [victim]);

    let move: { commit(): Promise<void> } | undefined;
    const receipt = await whilePaused(app, async () => {
      const pending = await app.deletions.destroy(Owner, victim);
      move = await moveUncommitted(table, moved, survivor);
      return pending;
    });
    // The batch reaches the moved row and waits for the move's lock; then the move commits.
    await waitUntil(async () => (await admin.lockWaiters()).length > 0, 10_000, 'the batch waiting on the moved row');
    await move!.commit();

    expect((await waitForState(app.deletions, receipt.requestId!)).state).toBe('completed');
    expect(await scalar(app, `select count(*) from ${table} where owner_id = ?`, [victim])).toBe(0);
    expect(await scalar(app, `select count(*) from ${table} where id = ? and owner_id = ?`, [moved, survivor])).toBe(1);
  });
});
