import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { EntitySchema } from '@mikro-orm/core';
import { DeletionBlockedError, ValidateBeforeDestroy, definePolicy } from '../../lib/index.js';
import { createDeletionTestApp, type DeletionTestApp } from '../support/deletion-test-app.js';

/** How a crate's validator fails: each throws a value that says nothing. */
const THROWS: Record<string, () => never> = {
  'new Error()': () => {
    throw new Error();
  },
  "new Error('')": () => {
    throw new Error('');
  },
  "''": () => {
    throw '';
  },
  undefined: () => {
    throw undefined;
  },
};

class Depot {
  id!: number;
  crates!: unknown;
}
class Crate {
  id!: number;
  how!: string;
  depot!: Depot;
  mustStay(): void {
    THROWS[this.how]?.();
  }
}
ValidateBeforeDestroy()(Crate.prototype, 'mustStay', Object.getOwnPropertyDescriptor(Crate.prototype, 'mustStay')!);

/** Issue 12, "any throw is a refusal": an instance validator that throws anything refuses, with a reason. */
describe('an instance validator that throws without a message', () => {
  let app: DeletionTestApp;
  beforeAll(async () => {
    app = await createDeletionTestApp({
      database: 'deletion_validation_throws',
      entities: [
        new EntitySchema<Depot>({ class: Depot, properties: { id: { type: 'integer', primary: true }, crates: { kind: '1:m', entity: () => Crate, mappedBy: 'depot' } } as never }),
        new EntitySchema<Crate>({
          class: Crate,
          properties: {
            id: { type: 'integer', primary: true },
            how: { type: 'string' },
            depot: { kind: 'm:1', entity: () => Depot, createForeignKeyConstraint: false, index: true },
          },
        }),
      ],
      deletion: { policies: [definePolicy(Depot, { crates: 'destroyAsync' })] },
    });
  });
  afterAll(() => app?.close());

  it.each(Object.keys(THROWS))('throwing %s refuses the deletion with a non-empty reason in the 409 body, and deletes nothing', async (how) => {
    const sql = app.em().getConnection();
    await sql.execute('delete from crate');
    await sql.execute('delete from depot');
    await sql.execute('insert into depot (id) values (1)');
    await sql.execute(`insert into crate (id, how, depot_id) values (1, 'fine', 1), (2, ?, 1)`, [how]);
    const error = await app.deletions.destroy(Depot, 1).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DeletionBlockedError);
    const body = (error as DeletionBlockedError).getResponse();
    expect(body.statusCode).toBe(409);
    expect(body.blockers).toEqual([{ entity: 'Crate', id: 2, path: 'Depot.crates', reason: expect.stringMatching(/\S/) }]);
    expect(await sql.execute('select count(*)::int as n from crate')).toEqual([{ n: 2 }]);
    expect(await sql.execute('select count(*)::int as n from depot')).toEqual([{ n: 1 }]);
  });
});
