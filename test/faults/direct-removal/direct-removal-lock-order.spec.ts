import { afterAll, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import { EntitySchema, type EntityClass, type EntityManager } from '@mikro-orm/core';
import { DeletionTargetNotFoundError, definePolicy } from '../../../lib/index.js';
import { createDeletionTestApp, type DeletionTestApp } from '../../support/deletion-test-app.js';
import { PgAdmin, RowLock } from '../../support/pg-admin.js';
import { waitUntil } from '../../support/wait.js';
import { HookCalls, fk, intId, named, settle, type Row } from './direct-removal-support.js';

/**
 * The lock a flush takes on the `destroy` children it removes directly goes table by table in name
 * order, keys in key order, whatever the order of the `em.remove` calls: two direct flushes removing
 * the same rows of two entities in opposite orders, or a direct flush racing a synchronous destroy
 * of their parent, cannot deadlock. One of them deletes the rows with one set of hooks, the other
 * is "not found" (issue 12, "one delete, one set of hooks"; DESIGN 7).
 */
const DATABASE = 'deletion_direct_lock_order';

const Parent = named('DoParent');
const KidA = named('DoKidA'); // destroy child of Parent, table do_kid_a
const KidB = named('DoKidB'); // destroy child of Parent, table do_kid_b

const hooks = new HookCalls();

let app: DeletionTestApp;
let admin: PgAdmin;
const sql = (q: string, p: unknown[] = []) => app.em().getConnection().execute<Record<string, unknown>[]>(q, p);

beforeAll(async () => {
  app = await createDeletionTestApp({
    database: DATABASE,
    entities: [
      new EntitySchema<Row>({
        class: Parent as never,
        tableName: 'do_parent',
        properties: { id: intId, as: { kind: '1:m', entity: () => KidA, mappedBy: 'parent' }, bs: { kind: '1:m', entity: () => KidB, mappedBy: 'parent' } } as never,
      }),
      hooks.record(new EntitySchema<Row>({ class: KidA as never, tableName: 'do_kid_a', properties: { id: intId, parent: fk(() => Parent) } as never }), 'KidA'),
      hooks.record(new EntitySchema<Row>({ class: KidB as never, tableName: 'do_kid_b', properties: { id: intId, parent: fk(() => Parent) } as never }), 'KidB'),
    ],
    deletion: { doctor: 'warn', policies: [definePolicy(Parent, { as: 'destroy', bs: 'destroy' } as never)] },
  });
  admin = await PgAdmin.connect(DATABASE);
});

afterAll(async () => {
  await admin?.close();
  await app?.close();
});

beforeEach(async () => {
  hooks.reset();
  for (const table of ['do_kid_a', 'do_kid_b', 'do_parent']) {
    await sql(`delete from ${table}`);
  }
  await sql(`insert into do_parent (id) values (1)`);
  await sql(`insert into do_kid_a (id, parent_id) values (1, 1)`);
  await sql(`insert into do_kid_b (id, parent_id) values (1, 1)`);
});

/** Loads `first`#1 and `second`#1, removes them in that order and flushes. */
async function removeBoth(em: EntityManager, first: EntityClass<Row>, second: EntityClass<Row>): Promise<void> {
  const x = await em.findOneOrFail(first, 1);
  const y = await em.findOneOrFail(second, 1);
  em.remove(x);
  em.remove(y);
  await em.flush();
}

/** `'deleted'`, or `ErrorClass: message`, so that a failure shows which error came. */
const describeOutcome = (outcome: unknown) => (outcome === 'deleted' ? outcome : `${(outcome as Error).constructor.name}: ${(outcome as Error).message}`);

describe('two direct flushes removing the same two rows of two entities in opposite orders', () => {
  it('one deletes both rows, the other is "not found"; no deadlock, hooks once', async () => {
    // A third transaction holds kid A #1: both flushes line up on it (each locks do_kid_a first).
    const hold = await RowLock.hold(DATABASE, 'do_kid_a', 1);
    const flushes: Promise<unknown>[] = [];
    try {
      flushes.push(settle(removeBoth(app.em(), KidA, KidB)));
      await waitUntil(async () => (await admin.lockWaiters()).length >= 1, 10_000, 'flush 1 to wait on A#1');
      flushes.push(settle(removeBoth(app.em(), KidB, KidA)));
      await waitUntil(async () => (await admin.lockWaiters()).length >= 2, 10_000, 'flush 2 to wait on A#1');
    } finally {
      await hold.release();
    }
    const outcomes = await Promise.all(flushes);
    const described = outcomes.map(describeOutcome);
    expect(described.filter((o) => o === 'deleted')).toHaveLength(1);
    expect(described.filter((o) => o !== 'deleted')).toEqual([expect.stringMatching(/^DeletionTargetNotFoundError/)]);
    expect(outcomes.filter((o) => o instanceof DeletionTargetNotFoundError)).toHaveLength(1);
    expect(await sql('select id from do_kid_a')).toEqual([]);
    expect(await sql('select id from do_kid_b')).toEqual([]);
    expect([hooks.both('KidA', 1), hooks.both('KidB', 1)]).toEqual([
      [1, 1],
      [1, 1],
    ]);
  });
});

describe('a direct flush removing rows of two entities while a synchronous destroy of their parent holds one', () => {
  it('the destroy deletes both, the direct flush is "not found"; no deadlock, hooks once', async () => {
    let destroying: Promise<unknown> | undefined;
    // The cascade handles `as` first (locks A#1, stops in its hook), then `bs`; the direct flush
    // removes B then A, and must not take B#1 before waiting on A#1.
    const direct = await hooks.removeWhileHeld(
      admin,
      'KidA#1',
      () => removeBoth(app.em(), KidB, KidA),
      () => (destroying = settle(app.deletions.destroy(Parent, 1 as never))),
    );
    expect([describeOutcome(await destroying), describeOutcome(direct)]).toEqual(['deleted', expect.stringMatching(/^DeletionTargetNotFoundError/)]);
    expect(await sql('select id from do_kid_a')).toEqual([]);
    expect(await sql('select id from do_kid_b')).toEqual([]);
    expect(await sql('select id from do_parent')).toEqual([]);
    expect([hooks.both('KidA', 1), hooks.both('KidB', 1)]).toEqual([
      [1, 1],
      [1, 1],
    ]);
  });
});
