import { afterAll, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import { Cascade, EntitySchema, type Collection, type EntityManager } from '@mikro-orm/core';
import pg from 'pg';
import { DeletionTargetNotFoundError, definePolicy } from '../../../lib/index.js';
import { createDeletionTestApp, type DeletionTestApp } from '../../support/deletion-test-app.js';
import { PgAdmin, RowLock } from '../../support/pg-admin.js';
import { databaseUrl } from '../../support/services.js';
import { waitForState, waitUntil } from '../../support/wait.js';
import { whilePaused } from '../../support/worker-control.js';
import { HookCalls, fk, idleInTransaction, intId, named, settle, type Row } from './direct-removal-support.js';

/**
 * Issue 12, "one delete, one set of hooks" (DESIGN 7), around the lock a flush takes on the rows it
 * removes directly when they are children of a `destroy` / `destroyAsync` relation: racing flushes
 * of the same row delete it once (the other is "not found"), a flush whose row is gone rolls back
 * whole with no hook run (savepoints alone), a row moved out of a batch is still removable, and
 * MikroORM's own cascade remove and orphan removal keep working over a policy relation.
 */
const DATABASE = 'deletion_direct_interleave';

interface Box extends Row {
  toys: Collection<Row>;
}

const Owner = named('DiOwner');
const Item = named('DiItem'); // destroyAsync child of Owner
const Pair = named('DiPair');
const KidA = named('DiKidA'); // destroy child of Pair
const KidB = named('DiKidB'); // destroy child of Pair
const BoxClass = named<Box>('DiBox');
const Toy = named('DiToy'); // destroy child of Box; ORM cascade remove + orphan removal too

const hooks = new HookCalls();

let app: DeletionTestApp;
let admin: PgAdmin;
const sql = (q: string, p: unknown[] = []) => app.em().getConnection().execute<Record<string, unknown>[]>(q, p);

beforeAll(async () => {
  app = await createDeletionTestApp({
    database: DATABASE,
    entities: [
      new EntitySchema<Row>({ class: Owner as never, tableName: 'di_owner', properties: { id: intId, items: { kind: '1:m', entity: () => Item, mappedBy: 'owner' } } as never }),
      hooks.record(new EntitySchema<Row>({ class: Item as never, tableName: 'di_item', properties: { id: intId, owner: fk(() => Owner) } as never }), 'Item'),
      new EntitySchema<Row>({
        class: Pair as never,
        tableName: 'di_pair',
        properties: { id: intId, as: { kind: '1:m', entity: () => KidA, mappedBy: 'pair' }, bs: { kind: '1:m', entity: () => KidB, mappedBy: 'pair' } } as never,
      }),
      hooks.record(new EntitySchema<Row>({ class: KidA as never, tableName: 'di_kid_a', properties: { id: intId, pair: fk(() => Pair) } as never }), 'KidA'),
      hooks.record(new EntitySchema<Row>({ class: KidB as never, tableName: 'di_kid_b', properties: { id: intId, pair: fk(() => Pair) } as never }), 'KidB'),
      new EntitySchema<Box>({
        class: BoxClass as never,
        tableName: 'di_box',
        properties: { id: intId, toys: { kind: '1:m', entity: () => Toy, mappedBy: 'box', cascade: [Cascade.PERSIST, Cascade.REMOVE], orphanRemoval: true } } as never,
      }),
      hooks.record(new EntitySchema<Row>({ class: Toy as never, tableName: 'di_toy', properties: { id: intId, box: fk(() => BoxClass) } as never }), 'Toy'),
    ],
    deletion: {
      doctor: 'warn',
      policies: [
        definePolicy(Owner, { items: { policy: 'destroyAsync', batchSize: 10 } } as never),
        definePolicy(Pair, { as: 'destroy', bs: 'destroy' } as never),
        definePolicy(BoxClass, { toys: 'destroy' } as never),
      ],
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
  for (const table of ['di_item', 'di_owner', 'di_kid_a', 'di_kid_b', 'di_pair', 'di_toy', 'di_box']) {
    await sql(`delete from ${table}`);
  }
  await sql(`insert into di_owner (id) values (1), (2)`);
  await sql(`insert into di_item (id, owner_id) values (1, 1), (2, 1), (3, 1), (4, 2)`);
  await sql(`insert into di_pair (id) values (1)`);
  await sql(`insert into di_kid_a (id, pair_id) values (1, 1), (2, 1)`);
  await sql(`insert into di_kid_b (id, pair_id) values (1, 1), (2, 1)`);
  await sql(`insert into di_box (id) values (1)`);
  await sql(`insert into di_toy (id, box_id) values (1, 1), (2, 1), (3, 1)`);
});

describe('a row moved to another parent while the batch waits on it, then removed directly', () => {
  it('the batch leaves it (it no longer belongs to the parent), the direct removal deletes it, hooks once', async () => {
    const em = app.em();
    const item2 = await em.findOneOrFail(Item, 2);
    const mover = new pg.Client({ connectionString: databaseUrl(DATABASE) });
    await mover.connect();
    let direct: Promise<unknown> | undefined;
    try {
      const receipt = await whilePaused(app, async () => {
        const pending = await app.deletions.destroy(Owner, 1 as never);
        await mover.query('begin');
        await mover.query('update di_item set owner_id = 2 where id = 2');
        return pending;
      });
      await waitUntil(async () => (await admin.lockWaiters()).length >= 1, 10_000, 'the batch to wait on the moved row');
      em.remove(item2);
      direct = settle(em.flush());
      await waitUntil(async () => (await admin.lockWaiters()).length >= 2, 10_000, 'the direct removal to wait on the moved row');
      await mover.query('commit');
      expect((await waitForState(app.deletions, receipt.requestId!)).state).toBe('completed');
    } finally {
      await mover.end();
    }
    expect(await direct).toBe('deleted');
    expect(await sql('select id, owner_id from di_item order by id')).toEqual([{ id: 4, owner_id: 2 }]);
    for (const id of [1, 2, 3]) {
      expect(hooks.both('Item', id)).toEqual([1, 1]);
    }
  });
});

describe('two direct flushes of the same destroy child, no cascade', () => {
  it('one deletes it, the other is "not found"; hooks once', async () => {
    const hold = await RowLock.hold(DATABASE, 'di_kid_a', 1);
    const flushes: Promise<unknown>[] = [];
    try {
      for (const em of [app.em(), app.em()]) {
        em.remove(await em.findOneOrFail(KidA, 1));
        flushes.push(settle(em.flush()));
      }
      await waitUntil(async () => (await admin.lockWaiters()).length >= 2, 10_000, 'both flushes to wait');
    } finally {
      await hold.release();
    }
    const outcomes = await Promise.all(flushes);
    expect(outcomes.filter((o) => o === 'deleted')).toHaveLength(1);
    expect(outcomes.filter((o) => o instanceof DeletionTargetNotFoundError)).toHaveLength(1);
    expect(hooks.both('KidA', 1)).toEqual([1, 1]);
    expect(await sql('select id from di_kid_a order by id')).toEqual([{ id: 2 }]);
  });
});

type Work = (em: EntityManager) => void;

describe.each([
  ['flush', (em: EntityManager, work: Work) => (work(em), em.flush())],
  ['em.transactional', (em: EntityManager, work: Work) => em.transactional(async (tx) => work(tx))],
] as const)('a %s removing rows of two entities where one row is gone, plus an insert', (_how, run) => {
  it('rolls back entirely: "not found", no hooks, nothing deleted or inserted, nothing left open', async () => {
    const em = app.em();
    const a = await em.findOneOrFail(KidA, 1);
    const b = await em.findOneOrFail(KidB, 2);
    await sql('delete from di_kid_b where id = 2');
    const outcome = await settle(
      run(em, (e) => {
        e.remove(e.getReference(KidA, a.id));
        e.remove(e.getReference(KidB, b.id));
        e.create(Owner, { id: 99 });
      }),
    );
    expect(outcome).toBeInstanceOf(DeletionTargetNotFoundError);
    expect([hooks.count('KidA', 1, 'beforeDelete'), hooks.count('KidB', 2, 'beforeDelete')]).toEqual([0, 0]);
    expect(await sql('select id from di_kid_a order by id')).toEqual([{ id: 1 }, { id: 2 }]);
    expect(await sql('select id from di_owner where id = 99')).toEqual([]);
    expect(await idleInTransaction(admin, DATABASE)).toBe(0);
  });
});

describe('a savepoint (nested em.transactional) whose removal finds its row gone', () => {
  it('fails alone; the outer transaction commits its own work', async () => {
    const em = app.em();
    const gone = await em.findOneOrFail(KidA, 2);
    await sql('delete from di_kid_a where id = 2');
    let inner: unknown;
    await em.transactional(async (tx) => {
      tx.create(Owner, { id: 77 });
      await tx.flush();
      inner = await settle(
        tx.transactional(async (nested) => {
          nested.remove(nested.getReference(KidA, gone.id));
        }),
      );
      tx.remove(tx.getReference(KidB, 1));
    });
    expect(inner).toBeInstanceOf(DeletionTargetNotFoundError);
    expect(await sql('select id from di_owner where id = 77')).toEqual([{ id: 77 }]);
    expect(await sql('select id from di_kid_b order by id')).toEqual([{ id: 2 }]);
    expect(hooks.count('KidA', 2, 'beforeDelete')).toBe(0);
    expect(hooks.both('KidB', 1)).toEqual([1, 1]);
  });
});

describe('ORM cascade remove and orphan removal over a policy relation (must keep working)', () => {
  it('em.remove(box) with its toys loaded (Cascade.REMOVE): everything deleted, hooks once', async () => {
    const em = app.em();
    const box = await em.findOneOrFail(BoxClass, 1, { populate: ['toys'] as never });
    em.remove(box);
    await em.flush();
    expect(await sql('select id from di_toy')).toEqual([]);
    expect(await sql('select id from di_box')).toEqual([]);
    for (const id of [1, 2, 3]) {
      expect(hooks.both('Toy', id)).toEqual([1, 1]);
    }
  });

  it('box.toys.remove(toy) (orphanRemoval) deletes the toy once', async () => {
    const em = app.em();
    const box = await em.findOneOrFail(BoxClass, 1, { populate: ['toys'] as never });
    box.toys.remove(box.toys.getItems().find((toy) => toy.id === 2)!);
    await em.flush();
    expect(await sql('select id from di_toy order by id')).toEqual([{ id: 1 }, { id: 3 }]);
    expect(hooks.both('Toy', 2)).toEqual([1, 1]);
  });

  it('a toy removed directly while a synchronous destroy of its box runs in another transaction: each toy deleted once, hooks once', async () => {
    const hold = await RowLock.hold(DATABASE, 'di_box', 1);
    let destroying: Promise<unknown>;
    let direct: Promise<unknown>;
    try {
      destroying = settle(app.deletions.destroy(BoxClass, 1 as never));
      await waitUntil(async () => (await admin.lockWaiters()).length >= 1, 10_000, 'the destroy to wait on the box');
      const em = app.em();
      em.remove(await em.findOneOrFail(Toy, 3));
      let finished = false;
      direct = settle(em.flush()).finally(() => (finished = true));
      // The direct removal either finishes (nothing holds its row) or waits on a lock: either way it
      // has made its move before the destroy goes on.
      await waitUntil(async () => finished || (await admin.lockWaiters()).length >= 2, 10_000, 'the direct removal to finish or wait');
    } finally {
      await hold.release();
    }
    const outcomes = await Promise.all([destroying!, direct!]);
    expect(outcomes).toContain('deleted');
    for (const outcome of outcomes) {
      expect(outcome === 'deleted' || outcome instanceof DeletionTargetNotFoundError).toBe(true);
    }
    expect(await sql('select id from di_toy')).toEqual([]);
    expect(await sql('select id from di_box')).toEqual([]);
    for (const id of [1, 2, 3]) {
      expect(hooks.both('Toy', id)).toEqual([1, 1]);
    }
  });
});
