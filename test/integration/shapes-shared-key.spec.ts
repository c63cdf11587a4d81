import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { EntitySchema, type EntityClass } from '@mikro-orm/core';
import { ValidateBeforeDestroy, definePolicy } from '../../lib/index.js';
import { createDeletionTestApp, type DeletionTestApp } from '../support/deletion-test-app.js';
import { waitForState } from '../support/wait.js';

/** The fixtures' rows, untyped: EntitySchema builds them from the properties below. */
type Row = Record<string, unknown>;

/**
 * Children whose primary key is itself a reference (a shared-primary-key one-to-one: the child row's
 * key is its `base`'s key), a shape MikroORM declares with `primary: true` on a 1:1 owner. The key
 * takes the referenced key's type; the queue's cursor and the validators' ids are that key, not the
 * referenced entity.
 */
const klass = (name: string): EntityClass<object> => ({ [name]: class {} })[name] as EntityClass<object>;

function shape(prefix: string, keyType: 'uuid' | 'integer', validated: boolean) {
  const Parent = klass(`${prefix}Parent`);
  const Base = klass(`${prefix}Base`);
  const Kid = klass(`${prefix}Kid`);
  if (validated) {
    ValidateBeforeDestroy<Row>({ where: { blocked: true }, message: 'blocked' })(Kid);
  }
  const t = prefix.toLowerCase();
  const schemas = [
    new EntitySchema<Row>({ class: Parent as never, tableName: `${t}_parent`, properties: { id: { type: keyType, primary: true, autoincrement: false }, kids: { kind: '1:m', entity: () => Kid, mappedBy: 'parent' } } as never }),
    new EntitySchema<Row>({ class: Base as never, tableName: `${t}_base`, properties: { id: { type: keyType, primary: true, autoincrement: false } } }),
    new EntitySchema<Row>({
      class: Kid as never,
      tableName: `${t}_kid`,
      properties: {
        base: { kind: '1:1', entity: () => Base, owner: true, primary: true },
        parent: { kind: 'm:1', entity: () => Parent, nullable: true, createForeignKeyConstraint: false, index: true },
        blocked: { type: 'boolean', default: false },
      },
    }),
  ];
  return { Parent, Base, Kid, schemas, t };
}

const uuidPlain = shape('SpU', 'uuid', false);
const uuidValidated = shape('SpUv', 'uuid', true);
const intValidated = shape('SpIv', 'integer', true);

let app: DeletionTestApp;
const sql = (q: string, p: unknown[] = []) => app.em().getConnection().execute<Record<string, unknown>[]>(q, p);
const uuid = (n: number) => `00000000-0000-4000-8000-${n.toString(16).padStart(12, '0')}`;

beforeAll(async () => {
  app = await createDeletionTestApp({
    database: 'deletion_shapes_shared_key',
    entities: [...uuidPlain.schemas, ...uuidValidated.schemas, ...intValidated.schemas],
    deletion: {
      doctor: 'warn',
      policies: [
        definePolicy(uuidPlain.Parent, { kids: { policy: 'destroyAsync', batchSize: 1 } } as never),
        definePolicy(uuidValidated.Parent, { kids: 'destroyAsync' } as never),
        definePolicy(intValidated.Parent, { kids: 'destroyAsync' } as never),
      ],
    },
  });
});
afterAll(() => app?.close());

async function seed(s: { t: string }, key: (n: number) => unknown) {
  await sql(`insert into ${s.t}_parent (id) values (?)`, [key(1)]);
  await sql(`insert into ${s.t}_base (id) values (?), (?), (?)`, [key(11), key(12), key(13)]);
  await sql(`insert into ${s.t}_kid (base_id, parent_id) values (?, ?), (?, ?), (?, ?)`, [key(11), key(1), key(12), key(1), key(13), key(1)]);
}

describe('destroyAsync over children keyed by a reference', () => {
  it('uuid keys, batchSize 1 (cursor stored from the last row): completes and deletes every child', async () => {
    await seed(uuidPlain, uuid);
    const receipt = await app.deletions.destroy(uuidPlain.Parent, uuid(1));
    const status = await waitForState(app.deletions, receipt.requestId!);
    expect({ state: status.state, errors: status.errors.map((e) => e.error.message), kids: await sql(`select base_id from ${uuidPlain.t}_kid`) }).toEqual({ state: 'completed', errors: [], kids: [] });
    expect(status.progress).toEqual([expect.objectContaining({ processed: 3, done: true })]);
  });

  it.each([
    ['uuid', uuidValidated, uuid],
    ['integer', intValidated, (n: number) => n],
  ] as const)('%s keys with a set-based validator on the child: refused while a child is blocked, then the queued batch completes', async (_name, s, key) => {
    await seed(s, key);
    await sql(`update ${s.t}_kid set blocked = true where base_id = ?`, [key(12)]);
    await expect(app.deletions.destroy(s.Parent, key(1) as never)).rejects.toMatchObject({ code: 'DELETION_BLOCKED', blockers: [{ id: key(12), reason: 'blocked' }] });
    expect(await sql(`select count(*)::int as n from ${s.t}_kid`)).toEqual([{ n: 3 }]);
    await sql(`update ${s.t}_kid set blocked = false`);
    const receipt = await app.deletions.destroy(s.Parent, key(1) as never);
    const status = await waitForState(app.deletions, receipt.requestId!);
    expect({ state: status.state, errors: status.errors.map((e) => e.error.message), kids: await sql(`select base_id from ${s.t}_kid`) }).toEqual({ state: 'completed', errors: [], kids: [] });
  });
});
