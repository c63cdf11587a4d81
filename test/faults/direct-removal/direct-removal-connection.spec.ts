import { afterAll, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import { EntitySchema } from '@mikro-orm/core';
import { definePolicy } from '../../../lib/index.js';
import { createDeletionTestApp, type DeletionTestApp } from '../../support/deletion-test-app.js';
import { PgAdmin, RowLock } from '../../support/pg-admin.js';
import { waitUntil } from '../../support/wait.js';
import { fk, idleInTransaction, intId, named, settle, type Row } from './direct-removal-support.js';

/**
 * The lock a flush takes at the start of its transaction on the `destroy` children it removes
 * directly may fail while it waits: its statement cancelled, or its connection terminated. The
 * flush must fail with the database's reason (not a secondary error of the rollback), delete
 * nothing, leave no transaction open, and give its connection back: more failures than the pool
 * has connections, then a normal flush that succeeds.
 */
const DATABASE = 'deletion_direct_connection';
const POOL_SIZE = 3;

const Parent = named('DcParent');
const Kid = named('DcKid'); // destroy child of Parent

let app: DeletionTestApp;
let admin: PgAdmin;
const sql = (q: string, p: unknown[] = []) => app.em().getConnection().execute<Record<string, unknown>[]>(q, p);

/** `promise`'s outcome, or a failure naming `what` if it has not settled after `ms` (a hang, not a timing). */
function withinMs<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const hung = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} hung for ${ms} ms`)), ms);
  });
  return Promise.race([promise, hung]).finally(() => clearTimeout(timer));
}

beforeAll(async () => {
  app = await createDeletionTestApp({
    database: DATABASE,
    entities: [
      new EntitySchema<Row>({ class: Parent as never, tableName: 'dc_parent', properties: { id: intId, kids: { kind: '1:m', entity: () => Kid, mappedBy: 'parent' } } as never }),
      new EntitySchema<Row>({ class: Kid as never, tableName: 'dc_kid', properties: { id: intId, parent: fk(() => Parent) } as never }),
    ],
    orm: { pool: { min: 0, max: POOL_SIZE } },
    deletion: { doctor: 'warn', policies: [definePolicy(Parent, { kids: 'destroy' } as never)] },
  });
  admin = await PgAdmin.connect(DATABASE);
});

afterAll(async () => {
  await admin?.close();
  await app?.close();
});

beforeEach(async () => {
  await sql('delete from dc_kid');
  await sql('delete from dc_parent');
  await sql('insert into dc_parent (id) values (1)');
  await sql('insert into dc_kid (id, parent_id) select g, 1 from generate_series(1, 20) g');
});

/** Removes kid `id` directly while another transaction holds its row, and fails its lock (`how`) once it waits. */
async function failWhileWaiting(id: number, how: 'terminate' | 'cancel'): Promise<unknown> {
  const hold = await RowLock.hold(DATABASE, 'dc_kid', id);
  try {
    const em = app.em();
    em.remove(em.getReference(Kid, id));
    const flushing = settle(em.flush());
    let waiters: number[] = [];
    await waitUntil(async () => (waiters = await admin.lockWaiters()).length > 0, 10_000, 'the flush to wait on its lock');
    if (how === 'terminate') {
      await admin.terminate(waiters);
    } else {
      await admin.query('select pg_cancel_backend(pid) from pg_stat_activity where pid = any($1::int[])', [waiters]);
    }
    return await withinMs(flushing, 30_000, `the flush whose lock was ${how === 'cancel' ? 'cancelled' : 'terminated'}`);
  } finally {
    await hold.release();
  }
}

describe.each(['cancel', 'terminate'] as const)('the lock of a direct removal fails (%s) while it waits', (how) => {
  it('the flush fails with the database error, nothing stays open, the pool still works', async () => {
    for (let id = 1; id <= POOL_SIZE + 2; id++) {
      const outcome = await failWhileWaiting(id, how);
      expect(outcome).toBeInstanceOf(Error);
      // The database's reason, not a secondary error of the rollback.
      expect((outcome as Error).message).toMatch(how === 'cancel' ? /cancel/i : /terminat|connection/i);
    }
    expect(await idleInTransaction(admin, DATABASE)).toBe(0);
    const em = app.em();
    em.remove(em.getReference(Kid, 10));
    await withinMs(em.flush(), 30_000, 'a normal flush after the failures (pool exhausted?)');
    // The failed flushes deleted nothing; the normal one deleted its row.
    expect(await sql(`select count(*)::int as n from dc_kid where id between 1 and ${POOL_SIZE + 2}`)).toEqual([{ n: POOL_SIZE + 2 }]);
    expect(await sql('select id from dc_kid where id = 10')).toEqual([]);
  }, 120_000);
});
