import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { EntitySchema, type EntityClass } from '@mikro-orm/core';
import { definePolicy } from '../../../lib/index.js';
import { createDeletionTestApp, type DeletionTestApp } from '../../support/deletion-test-app.js';
import { fk, intId, named, type Row } from './direct-removal-support.js';

/**
 * Regression guard: the lock a flush takes on the policy children it removes directly (one
 * statement per table and class) grows linearly with the number of rows. A flush removing 20,000
 * rows of a `destroy` child (locked) or of a `deleteAll` child (not locked) takes about as long as
 * the same flush of an entity no policy reaches. Measured as a ratio in the same run, with a
 * generous bound: CI runs on a loaded 2-core machine.
 */
const DATABASE = 'deletion_direct_large_flush';
const ROWS = 20_000;
const MAX_RATIO = 5;

const Parent = named('DlParent');
const LockedKid = named('DlLockedKid'); // destroy child of Parent: locked
const SetKid = named('DlSetKid'); // deleteAll child of Parent: not locked
const Plain = named('DlPlain'); // no policy reaches it

let app: DeletionTestApp;
const sql = (q: string, p: unknown[] = []) => app.em().getConnection().execute<Record<string, unknown>[]>(q, p);

beforeAll(async () => {
  app = await createDeletionTestApp({
    database: DATABASE,
    entities: [
      new EntitySchema<Row>({
        class: Parent as never,
        tableName: 'dl_parent',
        properties: {
          id: intId,
          lockedKids: { kind: '1:m', entity: () => LockedKid, mappedBy: 'parent' },
          setKids: { kind: '1:m', entity: () => SetKid, mappedBy: 'parent' },
        } as never,
      }),
      new EntitySchema<Row>({ class: LockedKid as never, tableName: 'dl_locked_kid', properties: { id: intId, parent: fk(() => Parent) } as never }),
      new EntitySchema<Row>({ class: SetKid as never, tableName: 'dl_set_kid', properties: { id: intId, parent: fk(() => Parent) } as never }),
      new EntitySchema<Row>({ class: Plain as never, tableName: 'dl_plain', properties: { id: intId } as never }),
    ],
    deletion: { doctor: 'warn', policies: [definePolicy(Parent, { lockedKids: 'destroy', setKids: 'deleteAll' } as never)] },
    // 20,000 logged statements would measure the logger.
    orm: { debug: false },
  });
}, 120_000);

afterAll(async () => {
  await app?.close();
});

/** Milliseconds one flush takes to remove `rows` rows of `entity` through references. */
async function timeRemoval(entity: EntityClass<Row>, table: string, rows: number): Promise<number> {
  await sql(`delete from ${table}`);
  await sql(`insert into ${table} (id) select g from generate_series(1, ${rows}) g`);
  const em = app.em();
  for (let id = 1; id <= rows; id++) {
    em.remove(em.getReference(entity, id));
  }
  const start = performance.now();
  await em.flush();
  const elapsed = performance.now() - start;
  expect(await sql(`select count(*)::int as n from ${table}`)).toEqual([{ n: 0 }]);
  return elapsed;
}

describe(`a flush removing ${ROWS} rows`, () => {
  it(`takes at most ${MAX_RATIO}x as long for a policy child as for an entity no policy reaches`, async () => {
    // Warm up every path once, so the first measurement does not pay for compilation.
    for (const [entity, table] of [[Plain, 'dl_plain'], [LockedKid, 'dl_locked_kid'], [SetKid, 'dl_set_kid']] as const) {
      await timeRemoval(entity, table, 1_000);
    }
    const plain = await timeRemoval(Plain, 'dl_plain', ROWS);
    const locked = await timeRemoval(LockedKid, 'dl_locked_kid', ROWS);
    const setBased = await timeRemoval(SetKid, 'dl_set_kid', ROWS);
    const timings = { plain: Math.round(plain), locked: Math.round(locked), setBased: Math.round(setBased) };
    expect({ ...timings, lockedWithinBound: locked < MAX_RATIO * plain }).toEqual({ ...timings, lockedWithinBound: true });
    expect({ ...timings, setBasedWithinBound: setBased < MAX_RATIO * plain }).toEqual({ ...timings, setBasedWithinBound: true });
  }, 300_000);
});
