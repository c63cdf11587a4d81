import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { definePolicy } from '../../lib/index.js';
import { ASYNC_ENTITIES, Vault } from '../fixtures/async.entities.js';
import { createDeletionTestApp, type DeletionTestApp } from '../support/deletion-test-app.js';
import { waitForState } from '../support/wait.js';
import { whilePaused } from '../support/worker-control.js';

let app: DeletionTestApp;

beforeAll(async () => {
  app = await createDeletionTestApp({
    database: 'deletion_async_tombstone',
    entities: ASYNC_ENTITIES,
    deletion: { batchSize: 25, policies: [definePolicy(Vault, { items: 'destroyAsync' }, { tombstone: 'deletedAt' })] },
  });
});
afterAll(() => app?.close());

const sql = (query: string, params: unknown[] = []) => app.em().getConnection().execute<Record<string, unknown>[]>(query, params);

async function seedVault(name: string, items: number): Promise<number> {
  const [{ id }] = (await sql(`insert into vault (name) values (?) returning id`, [name])) as { id: number }[];
  await sql(`insert into vault_item (vault_id) select ? from generate_series(1, ?)`, [id, items]);
  return id!;
}

it('keeps a NO ACTION foreign key in place: the schema really has one', async () => {
  const rows = await sql(
    `select confdeltype from pg_constraint where conrelid = 'vault_item'::regclass and confrelid = 'vault'::regclass and contype = 'f'`,
  );
  expect(rows).toEqual([{ confdeltype: 'a' }]);
});

it('marks the parent in the request, hides it at once, removes the children, then hard-deletes it', async () => {
  const kept = await seedVault('kept', 3);
  const id = await seedVault('doomed', 110);

  const receipt = await whilePaused(app, async () => {
    const receipt = await app.deletions.destroy(Vault, id);
    expect(receipt.status).toBe('pending');
    // Hidden from ordinary queries at once, but the row and its children are still there.
    expect(await app.em().findOne(Vault, id)).toBeNull();
    expect(await app.em().count(Vault, {})).toBe(1);
    expect(await sql(`select deleted_at is not null as marked from vault where id = ?`, [id])).toEqual([{ marked: true }]);
    expect(await sql(`select count(*)::int as n from vault_item where vault_id = ?`, [id])).toEqual([{ n: 110 }]);
    return receipt;
  });

  const status = await waitForState(app.deletions, receipt.requestId!);
  expect(status.state).toBe('completed');
  expect(await sql(`select id from vault where id = ?`, [id])).toEqual([]);
  expect(await sql(`select count(*)::int as n from vault_item where vault_id = ?`, [id])).toEqual([{ n: 0 }]);
  expect(await sql(`select count(*)::int as n from vault_item where vault_id = ?`, [kept])).toEqual([{ n: 3 }]);
  expect(await app.em().findOne(Vault, kept)).not.toBeNull();
});

it('a second delete of a tombstoned parent finds nothing (404), and children added meanwhile are removed too', async () => {
  const id = await seedVault('late', 10);
  const receipt = await whilePaused(app, async () => {
    const receipt = await app.deletions.destroy(Vault, id);
    await expect(app.deletions.destroy(Vault, id)).rejects.toMatchObject({ code: 'DELETION_TARGET_NOT_FOUND' });
    // A child inserted for the marked parent while its cascade has not finished.
    await sql(`insert into vault_item (vault_id) values (?)`, [id]);
    return receipt;
  });
  expect((await waitForState(app.deletions, receipt.requestId!)).state).toBe('completed');
  expect(await sql(`select count(*)::int as n from vault_item where vault_id = ?`, [id])).toEqual([{ n: 0 }]);
  expect(await sql(`select id from vault where id = ?`, [id])).toEqual([]);
});
