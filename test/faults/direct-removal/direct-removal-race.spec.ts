import { afterAll, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import { EntitySchema, type EntityClass, type EntityManager, type EventArgs } from '@mikro-orm/core';
import { DeletionTargetNotFoundError, definePolicy } from '../../lib/index.js';
import { createDeletionTestApp, type DeletionTestApp } from '../support/deletion-test-app.js';
import { PgAdmin } from '../support/pg-admin.js';
import { waitForState, waitUntil } from '../support/wait.js';

/**
 * Issue 12, "one delete, one set of hooks" (DESIGN 7): a child with no policy and no validator of
 * its own, removed directly (`em.remove` + `flush`) while a cascade holds its row, is deleted once
 * and its hooks run once. The direct flush waits for the cascade, finds the row gone and fails with
 * `DeletionTargetNotFoundError` before any of its hooks, instead of deleting nothing and running
 * the row's hooks a second time.
 */
const DATABASE = 'deletion_fault_double_delete';

interface Kid {
  id: number;
  parent?: unknown;
}

const named = (name: string) => ({ [name]: class {} })[name] as EntityClass<object>;
const QueuedParent = named('DQueuedParent');
const SyncParent = named('DSyncParent');
const QueuedKid = named('DQueuedKid') as EntityClass<Kid>;
const SyncKid = named('DSyncKid') as EntityClass<Kid>;

/** Hook calls per `Class#id:hook`. */
const calls = new Map<string, number>();
const count = (kid: EntityClass<Kid>, id: number, hook: string) => calls.get(`${kid.name}#${id}:${hook}`) ?? 0;

/**
 * The cascade stops in the `beforeDelete` hook of row `trigger.id` (its page is locked by then)
 * until the test releases it. The test acts from its own async context, not from the hook's: a
 * removal started inside the hook would run as part of the cascade.
 */
let trigger: { id: number; reached: () => void; release: Promise<void> } | undefined;

function kidSchema(kid: EntityClass<Kid>, parent: EntityClass<object>, table: string): EntitySchema<Kid> {
  const schema = new EntitySchema<Kid>({
    class: kid as never,
    tableName: table,
    properties: {
      id: { type: 'integer', primary: true, autoincrement: false },
      parent: { kind: 'm:1', entity: () => parent, nullable: true, createForeignKeyConstraint: false, index: true },
    } as never,
  });
  const record = (hook: string) => async (args: EventArgs<Kid>) => {
    const key = `${kid.name}#${args.entity.id}:${hook}`;
    calls.set(key, (calls.get(key) ?? 0) + 1);
    if (hook === 'beforeDelete' && trigger?.id === args.entity.id) {
      const { reached, release } = trigger;
      trigger = undefined;
      reached();
      await release;
    }
  };
  schema.addHook('beforeDelete', record('beforeDelete'));
  schema.addHook('afterDelete', record('afterDelete'));
  return schema;
}

const parentSchema = (parent: EntityClass<object>, kid: EntityClass<Kid>, table: string) =>
  new EntitySchema<object>({
    class: parent as never,
    tableName: table,
    properties: { id: { type: 'integer', primary: true, autoincrement: false }, kids: { kind: '1:m', entity: () => kid, mappedBy: 'parent' } } as never,
  });

let app: DeletionTestApp;
let admin: PgAdmin;
const sql = (q: string, p: unknown[] = []) => app.em().getConnection().execute<Record<string, unknown>[]>(q, p);

beforeAll(async () => {
  app = await createDeletionTestApp({
    database: DATABASE,
    entities: [
      parentSchema(QueuedParent, QueuedKid, 'dq_parent'),
      kidSchema(QueuedKid, QueuedParent, 'dq_kid'),
      parentSchema(SyncParent, SyncKid, 'ds_parent'),
      kidSchema(SyncKid, SyncParent, 'ds_kid'),
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
  calls.clear();
  trigger = undefined;
  for (const table of ['dq_kid', 'dq_parent', 'ds_kid', 'ds_parent']) {
    await sql(`delete from ${table}`);
  }
  for (const prefix of ['dq', 'ds']) {
    await sql(`insert into ${prefix}_parent (id) values (1), (2)`);
    await sql(`insert into ${prefix}_kid (id, parent_id) values (1, 1), (2, 1), (3, 1), (4, 2)`);
  }
});

/** The three ways an application removes one row through the ORM. */
const DIRECT: [string, (em: EntityManager, kid: EntityClass<Kid>, id: number) => Promise<void>][] = [
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

/**
 * Runs `cascade` and, once it holds kid #1's page (kid #2 with it), removes kid #2 directly and
 * lets the cascade go on when that removal waits on its lock. Returns the removal's outcome.
 */
async function removeWhileHeld(kid: EntityClass<Kid>, remove: (typeof DIRECT)[number][1], cascade: () => Promise<unknown>): Promise<unknown> {
  let reached!: () => void;
  let release!: () => void;
  const held = new Promise<void>((resolve) => (reached = resolve));
  trigger = { id: 1, reached, release: new Promise<void>((resolve) => (release = resolve)) };
  const running = cascade();
  await held;
  const waitersBefore = (await admin.lockWaiters()).length;
  const outcome = remove(app.em(), kid, 2).then(
    () => 'deleted',
    (error: unknown) => error,
  );
  try {
    await waitUntil(async () => (await admin.lockWaiters()).length > waitersBefore, 10_000, 'the direct removal to wait on the cascade');
  } finally {
    release();
  }
  await running;
  return outcome;
}

describe.each(DIRECT)('a child removed directly through %s while a cascade holds it', (_how, remove) => {
  it('under a queued destroyAsync: deleted once by the batch, one set of hooks, the direct removal is "not found"', async () => {
    const receipt = await app.deletions.destroy(QueuedParent, 1 as never);
    const outcome = await removeWhileHeld(QueuedKid, remove, () => waitForState(app.deletions, receipt.requestId!));
    expect((await app.deletions.status(receipt.requestId!)).state).toBe('completed');

    expect(outcome).toBeInstanceOf(DeletionTargetNotFoundError);
    for (const id of [1, 2, 3]) {
      expect([count(QueuedKid, id, 'beforeDelete'), count(QueuedKid, id, 'afterDelete')]).toEqual([1, 1]);
    }
    expect(await sql('select id from dq_kid order by id')).toEqual([{ id: 4 }]);
    expect(await sql('select id from dq_parent order by id')).toEqual([{ id: 2 }]);
  });

  it('under a synchronous destroy: deleted once by the request, one set of hooks, the direct removal is "not found"', async () => {
    const outcome = await removeWhileHeld(SyncKid, remove, () => app.deletions.destroy(SyncParent, 1 as never));

    expect(outcome).toBeInstanceOf(DeletionTargetNotFoundError);
    for (const id of [1, 2, 3]) {
      expect([count(SyncKid, id, 'beforeDelete'), count(SyncKid, id, 'afterDelete')]).toEqual([1, 1]);
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
    expect([count(QueuedKid, 4, 'beforeDelete'), count(QueuedKid, 4, 'afterDelete')]).toEqual([0, 0]);

    const other = app.em();
    other.remove(await other.findOneOrFail(QueuedKid, { id: 3 }));
    await other.flush();
    expect([count(QueuedKid, 3, 'beforeDelete'), count(QueuedKid, 3, 'afterDelete')]).toEqual([1, 1]);
    expect(await sql('select id from dq_kid order by id')).toEqual([{ id: 1 }, { id: 2 }]);
    // The failed flush left no transaction open behind it.
    expect(await admin.query(`select count(*)::int as n from pg_stat_activity where datname = $1 and state = 'idle in transaction'`, [DATABASE])).toEqual([{ n: 0 }]);
  });
});
