import { afterAll, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import { EntitySchema, type EntityClass } from '@mikro-orm/core';
import pg from 'pg';
import { ValidateBeforeDestroy, definePolicy } from '../../lib/index.js';
import { createDeletionTestApp, type DeletionTestApp } from '../support/deletion-test-app.js';
import { databaseUrl } from '../support/services.js';
import { waitForState } from '../support/wait.js';
import { whilePaused } from '../support/worker-control.js';

/** The fixtures' rows, untyped: EntitySchema builds them from the properties below. */
type Row = Record<string, unknown>;

/** destroy() with the worker paused, then the side effect armed for the queued batch only. */
async function destroyThenArm(effect: { trigger: number; sql: string }): Promise<string> {
  return whilePaused(app, async () => {
    const receipt = await app.deletions.destroy(IParent, 1 as never);
    sideEffect = effect;
    return receipt.requestId!;
  });
}

/**
 * deleteAllAsync with validators: `nextKeys` → validators → `deleteKeys(keys)`, in one transaction
 * per batch. Another transaction tries to flag a row between the validators and the DELETE (an
 * instance validator runs its statement on its own connection while the batch is checking). The
 * batch locked its rows before checking them, so the flag cannot commit under its checks.
 */
const DATABASE = 'deletion_fault_interleave';
const IParent = ({ IParent: class {} }).IParent as EntityClass<object>;

/** What the "other transaction" does when the batch validates row `trigger`. */
let sideEffect: { trigger: number; sql: string } | undefined;
let other: pg.Client;
const committed: string[] = [];

class IKid {
  id!: number;
  vetoed?: boolean;
  async notVetoed(): Promise<string | undefined> {
    if (sideEffect && this.id === sideEffect.trigger) {
      const { sql } = sideEffect;
      sideEffect = undefined;
      // Autocommit: committed before the batch's DELETE runs, unless the batch holds a lock on the
      // row (then it gives up after a moment, and the batch's checks were not overtaken).
      try {
        await other.query(`set lock_timeout = '300ms'`);
        await other.query(sql);
        committed.push(sql);
      } catch {
        /* locked by the batch */
      }
    }
    return this.vetoed ? 'vetoed' : undefined;
  }
}
ValidateBeforeDestroy()(IKid.prototype, 'notVetoed', Object.getOwnPropertyDescriptor(IKid.prototype, 'notVetoed')!);
ValidateBeforeDestroy<Row>({ where: { blocked: true }, message: 'blocked' })(IKid);

const schemas = [
  new EntitySchema<Row>({ class: IParent as never, tableName: 'i_parent', properties: { id: { type: 'integer', primary: true, autoincrement: false }, kids: { kind: '1:m', entity: () => IKid, mappedBy: 'parent' } } as never }),
  new EntitySchema<Row>({
    class: IKid as never,
    tableName: 'i_kid',
    properties: {
      id: { type: 'integer', primary: true, autoincrement: false },
      parent: { kind: 'm:1', entity: () => IParent, nullable: true, createForeignKeyConstraint: false, index: true },
      blocked: { type: 'boolean', default: false },
      vetoed: { type: 'boolean', default: false },
    },
  }),
];

let app: DeletionTestApp;
const sql = (q: string, p: unknown[] = []) => app.em().getConnection().execute<Record<string, unknown>[]>(q, p);

beforeAll(async () => {
  app = await createDeletionTestApp({
    database: DATABASE,
    entities: schemas,
    deletion: { doctor: 'warn', policies: [definePolicy(IParent, { kids: 'deleteAllAsync' } as never)] },
  });
  other = new pg.Client({ connectionString: databaseUrl(DATABASE) });
  await other.connect();
});
afterAll(async () => {
  await other?.end();
  await app?.close();
});
beforeEach(async () => {
  committed.length = 0;
  await sql(`truncate i_parent, i_kid, deletion_request, deletion_orphan`);
  await sql(`insert into i_parent (id) values (1), (2)`);
  await sql(`insert into i_kid (id, parent_id) values (1, 1), (2, 1), (3, 1), (4, 1)`);
});

describe('deleteAllAsync with validators, another transaction flags a row while the batch checks', () => {
  it('cannot commit the flag under the checks: the batch holds the rows it validated, deletes them, and completes', async () => {
    const requestId = await destroyThenArm({ trigger: 1, sql: `update i_kid set blocked = true where id = 3` });
    const status = await waitForState(app.deletions, requestId);
    expect(sideEffect).toBeUndefined();
    // Had the flag committed, row 3 would have been deleted although blocked when it went.
    expect(committed).toEqual([]);
    expect(status.state).toBe('completed');
    expect(await sql(`select id from i_kid order by id`)).toEqual([]);
  });
});
