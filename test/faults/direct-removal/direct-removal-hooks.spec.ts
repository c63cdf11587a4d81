import { afterAll, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import { EntitySchema, type EntityClass, type EventArgs } from '@mikro-orm/core';
import { definePolicy } from '../../../lib/index.js';
import { createDeletionTestApp, type DeletionTestApp } from '../../support/deletion-test-app.js';
import { PgAdmin } from '../../support/pg-admin.js';
import { waitUntil } from '../../support/wait.js';
import { fk, intId, named, type Row } from './direct-removal-support.js';

/**
 * Regression guard: a parent that is no relation's child is locked in its own `beforeDelete`, after
 * its children's statements (MikroORM deletes children first), not at the start of the flush. So a
 * child's `beforeDelete` hook may still touch the parent row through another connection (a counter
 * kept by another entity manager, an audit write) when child and parent are removed in one flush.
 * Were the parent locked first, the hook would wait on its own flush's lock while the flush waits
 * on the hook: a wait PostgreSQL cannot see as a deadlock (one side is in Node), so it would hang
 * forever holding two connections. Checked for a child locked by the flush (`destroy`: the lock at
 * the start of the transaction takes the child's row, not its parent's) and one that is not
 * (`deleteAll`).
 */
const DATABASE = 'deletion_direct_hooks';

const SetFolder = named('DhSetFolder');
const SetDoc = named('DhSetDoc'); // deleteAll child of SetFolder
const DestroyFolder = named('DhDestroyFolder');
const DestroyDoc = named('DhDestroyDoc'); // destroy child of DestroyFolder

let app: DeletionTestApp;
let admin: PgAdmin;
const sql = (q: string, p: unknown[] = []) => app.em().getConnection().execute<Record<string, unknown>[]>(q, p);
/** The folder table whose counter the docs' hooks update, or none. */
let touchParent: string | undefined;
/** Updates the hooks made to the parent. */
let touched = 0;

function folder(cls: EntityClass<Row>, doc: EntityClass<Row>, table: string) {
  return new EntitySchema<Row>({
    class: cls as never,
    tableName: table,
    properties: { id: intId, docs: { type: 'integer', default: 0 }, items: { kind: '1:m', entity: () => doc, mappedBy: 'folder' } } as never,
  });
}

function doc(cls: EntityClass<Row>, parent: EntityClass<Row>, table: string, folderTable: string) {
  const schema = new EntitySchema<Row>({ class: cls as never, tableName: table, properties: { id: intId, folder: fk(() => parent) } as never });
  schema.addHook('beforeDelete', async (args: EventArgs<Row>) => {
    // Only the row the test removes directly: the rows a `destroy` cascade removes run their hooks
    // while the cascade holds the parent's lock, as they always have.
    if (touchParent === folderTable && args.entity.id === 1) {
      // Bookkeeping on the parent row through the application's pool, outside the flush's transaction.
      await app.orm.em.fork().getConnection().execute(`update ${folderTable} set docs = docs - 1 where id = ?`, [1]);
      touched++;
    }
  });
  return schema;
}

beforeAll(async () => {
  app = await createDeletionTestApp({
    database: DATABASE,
    entities: [
      folder(SetFolder, SetDoc, 'dh_set_folder'),
      doc(SetDoc, SetFolder, 'dh_set_doc', 'dh_set_folder'),
      folder(DestroyFolder, DestroyDoc, 'dh_destroy_folder'),
      doc(DestroyDoc, DestroyFolder, 'dh_destroy_doc', 'dh_destroy_folder'),
    ],
    deletion: { doctor: 'warn', policies: [definePolicy(SetFolder, { items: 'deleteAll' } as never), definePolicy(DestroyFolder, { items: 'destroy' } as never)] },
  });
  admin = await PgAdmin.connect(DATABASE);
});

afterAll(async () => {
  await admin?.close();
  await app?.close();
});

beforeEach(async () => {
  touchParent = undefined;
  touched = 0;
  for (const prefix of ['dh_set', 'dh_destroy']) {
    await sql(`delete from ${prefix}_doc`);
    await sql(`delete from ${prefix}_folder`);
    await sql(`insert into ${prefix}_folder (id, docs) values (1, 2)`);
    await sql(`insert into ${prefix}_doc (id, folder_id) values (1, 1), (2, 1)`);
  }
});

describe.each([
  ['deleteAll', SetFolder, SetDoc, 'dh_set'],
  ['destroy', DestroyFolder, DestroyDoc, 'dh_destroy'],
] as const)("a child (%s) whose beforeDelete hook updates its parent through another connection, both removed in one flush", (_policy, Folder, Doc, prefix) => {
  it('completes: the hook is not made to wait on its own flush', async () => {
    const em = app.em();
    const child = await em.findOneOrFail(Doc, 1);
    const parent = await em.findOneOrFail(Folder, 1);
    touchParent = `${prefix}_folder`;
    em.remove(child);
    em.remove(parent);
    let settled = false;
    const flushing = em.flush().then(
      () => 'done',
      (error: unknown) => error,
    );
    void flushing.finally(() => (settled = true));
    // Nothing else touches these rows: any lock wait is the hook waiting on its own flush.
    await waitUntil(async () => settled || (await admin.lockWaiters()).length > 0, 30_000, 'the flush to finish or a lock wait');
    if (!settled) {
      // Hung: cancel the hook's statement so that the flush can end and the app can close.
      const waiters = await admin.lockWaiters();
      await admin.query('select pg_cancel_backend(pid) from pg_stat_activity where pid = any($1::int[])', [waiters]);
      await flushing;
      throw new Error("the child's hook waited on a lock its own flush held on the parent");
    }
    expect(await flushing).toBe('done');
    expect(touched).toBe(1);
    expect(await sql(`select id from ${prefix}_folder`)).toEqual([]);
    expect(await sql(`select id from ${prefix}_doc`)).toEqual([]);
  }, 60_000);
});
