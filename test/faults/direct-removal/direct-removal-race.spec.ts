import { afterAll, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import { EntitySchema, type EntityClass, type EntityManager } from '@mikro-orm/core';
import { DeletionTargetNotFoundError, definePolicy } from '../../../lib/index.js';
import { createDeletionTestApp, type DeletionTestApp } from '../../support/deletion-test-app.js';
import { PgAdmin } from '../../support/pg-admin.js';
import { waitForState } from '../../support/wait.js';
import { HookCalls, fk, idleInTransaction, intId, named, type Row } from './direct-removal-support.js';

/**
 * Issue 12, "one delete, one set of hooks" (DESIGN 7): a child with no policy and no validator of
 * its own, removed directly (`em.remove` + `flush`) while a cascade holds its row, is deleted once
 * and its hooks run once. The direct flush waits for the cascade, finds the row gone and fails with
 * `DeletionTargetNotFoundError` before any of its hooks, instead of deleting nothing and running
 * the row's hooks a second time.
 */
const DATABASE = 'deletion_fault_double_delete';

const QueuedParent = named('DQueuedParent');
const SyncParent = named('DSyncParent');
const QueuedKid = named('DQueuedKid');
const SyncKid = named('DSyncKid');

const hooks = new HookCalls();

const kidSchema = (kid: EntityClass<Row>, parent: EntityClass<Row>, table: string, name: string) =>
  hooks.record(new EntitySchema<Row>({ class: kid as never, tableName: table, properties: { id: intId, parent: fk(() => parent) } as never }), name);

const parentSchema = (parent: EntityClass<Row>, kid: EntityClass<Row>, table: string) =>
  new EntitySchema<Row>({ class: parent as never, tableName: table, properties: { id: intId, kids: { kind: '1:m', entity: () => kid, mappedBy: 'parent' } } as never });

let app: DeletionTestApp;
let admin: PgAdmin;
const sql = (q: string, p: unknown[] = []) => app.em().getConnection().execute<Record<string, unknown>[]>(q, p);

beforeAll(async () => {
  app = await createDeletionTestApp({
    database: DATABASE,
    entities: [
      parentSchema(QueuedParent, QueuedKid, 'dq_parent'),
      kidSchema(QueuedKid, QueuedParent, 'dq_kid', 'QueuedKid'),
      parentSchema(SyncParent, SyncKid, 'ds_parent'),
      kidSchema(SyncKid, SyncParent, 'ds_kid', 'SyncKid'),
    ],
    deletion: {
      doctor: 'warn',
      policies: [definePolicy(QueuedParent, { kids: { policy: 'destroyAsync', batchSize: 10 } } as never), definePolicy(SyncParent, { kids: 'destroy' } as never)],
    },
  });
  admin = await PgAdmin.connect(DATABASE);
});

afterAll(async () => {
  await admin?.close();
  await app?.close();
});

beforeEach(async () => {
  hooks.reset();
  for (const table of ['dq_kid', 'dq_parent', 'ds_kid', 'ds_parent']) {
    await sql(`delete from ${table}`);
  }
  for (const prefix of ['dq', 'ds']) {
    await sql(`insert into ${prefix}_parent (id) values (1), (2)`);
    await sql(`insert into ${prefix}_kid (id, parent_id) values (1, 1), (2, 1), (3, 1), (4, 2)`);
  }
});

/** The three ways an application removes one row through the ORM. */
const DIRECT: [string, (em: EntityManager, kid: EntityClass<Row>, id: number) => Promise<void>][] = [
  [
    'em.remove + flush (the flush begins its own transaction)',
    async (em, kid, id) => {
      em.remove(await em.findOneOrFail(kid, { id }));
      await em.flush();
    },
  ],
  [
    'em.remove + flush inside em.transactional()',
    (em, kid, id) =>
      em.transactional(async (tx) => {
        tx.remove(await tx.findOneOrFail(kid, { id }));
      }),
  ],
  ['DeletionService.destroy()', (_em, kid, id) => app.deletions.destroy(kid, id).then(() => undefined)],
];

/** Removes kid #2 directly once `cascade` holds kid #1's page (kid #2 with it); the removal's outcome. */
const removeWhileHeld = (name: string, kid: EntityClass<Row>, remove: (typeof DIRECT)[number][1], cascade: () => Promise<unknown>) =>
  hooks.removeWhileHeld(admin, `${name}#1`, () => remove(app.em(), kid, 2), cascade);

describe.each(DIRECT)('a child removed directly through %s while a cascade holds it', (_how, remove) => {
  it('under a queued destroyAsync: deleted once by the batch, one set of hooks, the direct removal is "not found"', async () => {
    const receipt = await app.deletions.destroy(QueuedParent, 1 as never);
    const outcome = await removeWhileHeld('QueuedKid', QueuedKid, remove, () => waitForState(app.deletions, receipt.requestId!));
    expect((await app.deletions.status(receipt.requestId!)).state).toBe('completed');

    expect(outcome).toBeInstanceOf(DeletionTargetNotFoundError);
    for (const id of [1, 2, 3]) {
      expect(hooks.both('QueuedKid', id)).toEqual([1, 1]);
    }
    expect(await sql('select id from dq_kid order by id')).toEqual([{ id: 4 }]);
    expect(await sql('select id from dq_parent order by id')).toEqual([{ id: 2 }]);
  });

  it('under a synchronous destroy: deleted once by the request, one set of hooks, the direct removal is "not found"', async () => {
    const outcome = await removeWhileHeld('SyncKid', SyncKid, remove, () => app.deletions.destroy(SyncParent, 1 as never));

    expect(outcome).toBeInstanceOf(DeletionTargetNotFoundError);
    for (const id of [1, 2, 3]) {
      expect(hooks.both('SyncKid', id)).toEqual([1, 1]);
    }
    expect(await sql('select id from ds_kid order by id')).toEqual([{ id: 4 }]);
    expect(await sql('select id from ds_parent order by id')).toEqual([{ id: 2 }]);
  });
});

describe('a direct removal that meets no cascade', () => {
  it('deletes its row and runs its hooks once; a row already gone is "not found" and runs none', async () => {
    const em = app.em();
    const kid = await em.findOneOrFail(QueuedKid, { id: 4 });
    await sql('delete from dq_kid where id = 4');
    em.remove(kid);
    await expect(em.flush()).rejects.toBeInstanceOf(DeletionTargetNotFoundError);
    expect(hooks.both('QueuedKid', 4)).toEqual([0, 0]);

    const other = app.em();
    other.remove(await other.findOneOrFail(QueuedKid, { id: 3 }));
    await other.flush();
    expect(hooks.both('QueuedKid', 3)).toEqual([1, 1]);
    expect(await sql('select id from dq_kid order by id')).toEqual([{ id: 1 }, { id: 2 }]);
    // The failed flush left no transaction open behind it.
    expect(await idleInTransaction(admin, DATABASE)).toBe(0);
  });
});
