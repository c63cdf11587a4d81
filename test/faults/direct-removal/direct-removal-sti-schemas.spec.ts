import { afterAll, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import { EntitySchema } from '@mikro-orm/core';
import pg from 'pg';
import { DeletionTargetNotFoundError, definePolicy } from '../../../lib/index.js';
import { createDeletionTestApp, type DeletionTestApp } from '../../support/deletion-test-app.js';
import { PgAdmin } from '../../support/pg-admin.js';
import { createTestDatabase, databaseUrl } from '../../support/services.js';
import { waitForState } from '../../support/wait.js';
import { HookCalls, fk, flushRemoving, intId, named, settle, type Row } from './direct-removal-support.js';

/**
 * Issue 12, "one delete, one set of hooks" (DESIGN 7), on two more shapes a policy child can take:
 *
 * - single-table inheritance declared through EntitySchema `extends` only, the JS classes not
 *   extending each other (MikroORM takes the hierarchy from the schema): a row of the family
 *   removed through a base-class reference is locked like one removed through the child's class;
 * - entities in a PostgreSQL schema of their own, and a row reached through a fork's schema
 *   (`em.fork({ schema })`, a reference created with `{ schema }`): the lock looks in that schema,
 *   never at a row of the same key in another one.
 *
 * Each: a plain removal still works, a row already gone is "not found" with no hook run, and a
 * removal racing the batch that holds its row is "not found" with the row's hooks run once.
 */
const DATABASE = 'deletion_direct_sti_schemas';
const OWN_SCHEMA = 'direct_s';
const FORK_SCHEMA = 'direct_t';

const Kennel = named('DtKennel');
// Plain classes: the single-table hierarchy exists only in the EntitySchema definitions below.
const Animal = named('DtAnimal');
const Dog = named('DtDog'); // destroyAsync child of Kennel
const Cat = named('DtCat');
const Shop = named('DtShop');
const Item = named('DtItem'); // destroyAsync child of Shop, both in OWN_SCHEMA
const Box = named('DtBox');
const Toy = named('DtToy'); // destroy child of Box; a copy of its table in FORK_SCHEMA

const hooks = new HookCalls();

let app: DeletionTestApp;
let admin: PgAdmin;
const sql = (q: string, p: unknown[] = []) => app.em().getConnection().execute<Record<string, unknown>[]>(q, p);

beforeAll(async () => {
  // The entities' own schema must exist before MikroORM creates their tables.
  await createTestDatabase(DATABASE);
  const client = new pg.Client({ connectionString: databaseUrl(DATABASE) });
  await client.connect();
  await client.query(`create schema ${OWN_SCHEMA}`);
  await client.query(`create schema ${FORK_SCHEMA}`);
  await client.end();
  app = await createDeletionTestApp({
    database: DATABASE,
    keepSchema: true,
    entities: [
      new EntitySchema<Row>({ class: Kennel as never, tableName: 'dt_kennel', properties: { id: intId, dogs: { kind: '1:m', entity: () => Dog, mappedBy: 'kennel' } } as never }),
      hooks.record(
        new EntitySchema<Row>({
          class: Animal as never,
          tableName: 'dt_animal',
          discriminatorColumn: 'kind',
          discriminatorMap: { dog: 'DtDog', cat: 'DtCat' } as never,
          properties: { id: intId, kind: { type: 'string' }, kennel: fk(() => Kennel) } as never,
        }),
        'Animal',
      ),
      new EntitySchema<Row>({ class: Dog as never, extends: Animal as never, discriminatorValue: 'dog', properties: {} as never }),
      new EntitySchema<Row>({ class: Cat as never, extends: Animal as never, discriminatorValue: 'cat', properties: {} as never }),
      new EntitySchema<Row>({
        class: Shop as never,
        tableName: 'dt_shop',
        schema: OWN_SCHEMA,
        properties: { id: intId, items: { kind: '1:m', entity: () => Item, mappedBy: 'shop' } } as never,
      }),
      hooks.record(new EntitySchema<Row>({ class: Item as never, tableName: 'dt_item', schema: OWN_SCHEMA, properties: { id: intId, shop: fk(() => Shop) } as never }), 'Item'),
      new EntitySchema<Row>({ class: Box as never, tableName: 'dt_box', properties: { id: intId, toys: { kind: '1:m', entity: () => Toy, mappedBy: 'box' } } as never }),
      hooks.record(new EntitySchema<Row>({ class: Toy as never, tableName: 'dt_toy', properties: { id: intId, box: fk(() => Box) } as never }), 'Toy'),
    ],
    deletion: {
      doctor: 'warn',
      batchSize: 10,
      policies: [
        definePolicy(Kennel, { dogs: { policy: 'destroyAsync', batchSize: 10 } } as never),
        definePolicy(Shop, { items: { policy: 'destroyAsync', batchSize: 10 } } as never),
        definePolicy(Box, { toys: 'destroy' } as never),
      ],
    },
  });
  await app.orm.schema.create();
  await app.queue.obliterate({ force: true });
  await sql(`create table ${FORK_SCHEMA}.dt_toy (like public.dt_toy including all)`);
  admin = await PgAdmin.connect(DATABASE);
});

afterAll(async () => {
  await admin?.close();
  await app?.close();
});

beforeEach(async () => {
  hooks.reset();
  for (const table of ['dt_animal', 'dt_kennel', `${OWN_SCHEMA}.dt_item`, `${OWN_SCHEMA}.dt_shop`, 'dt_toy', `${FORK_SCHEMA}.dt_toy`, 'dt_box']) {
    await sql(`delete from ${table}`);
  }
  await sql(`insert into dt_kennel (id) values (1)`);
  await sql(`insert into dt_animal (id, kind, kennel_id) values (1, 'dog', 1), (2, 'dog', 1), (3, 'dog', 1), (4, 'cat', 1)`);
  await sql(`insert into ${OWN_SCHEMA}.dt_shop (id) values (1)`);
  await sql(`insert into ${OWN_SCHEMA}.dt_item (id, shop_id) values (1, 1), (2, 1), (3, 1)`);
  await sql(`insert into dt_box (id) values (1)`);
  await sql(`insert into dt_toy (id, box_id) values (1, 1), (2, 1)`);
  await sql(`insert into ${FORK_SCHEMA}.dt_toy (id, box_id) values (5, null), (2, null)`);
});

describe('single-table inheritance through EntitySchema `extends` only: a Dog (Kennel.dogs destroyAsync) removed through an Animal reference', () => {
  it('while the batch holds it: deleted once, hooks once, the direct removal is "not found"', async () => {
    const receipt = await app.deletions.destroy(Kennel, 1 as never);
    const outcome = await hooks.removeWhileHeld(
      admin,
      'Animal#1',
      async () => {
        const em = app.em();
        await flushRemoving(em, em.getReference(Animal, 2));
      },
      () => waitForState(app.deletions, receipt.requestId!),
    );
    expect((await app.deletions.status(receipt.requestId!)).state).toBe('completed');
    expect(outcome).toBeInstanceOf(DeletionTargetNotFoundError);
    for (const id of [1, 2, 3]) {
      expect(hooks.both('Animal', id)).toEqual([1, 1]);
    }
    expect(await sql('select id from dt_animal order by id')).toEqual([{ id: 4 }]);
  });

  it('a row already gone: "not found", no hook run', async () => {
    const em = app.em();
    const dog = await em.findOneOrFail(Animal, 2);
    await sql('delete from dt_animal where id = 2');
    expect(await settle(flushRemoving(em, dog))).toBeInstanceOf(DeletionTargetNotFoundError);
    expect(hooks.both('Animal', 2)).toEqual([0, 0]);
  });

  it('a cat removed through a Cat reference and a dog through a Dog reference in one flush', async () => {
    const em = app.em();
    em.remove(em.getReference(Cat, 4));
    em.remove(em.getReference(Dog, 3));
    await em.flush();
    expect(await sql('select id from dt_animal order by id')).toEqual([{ id: 1 }, { id: 2 }]);
    expect(hooks.both('Animal', 3)).toEqual([1, 1]);
    expect(hooks.both('Animal', 4)).toEqual([1, 1]);
  });
});

describe(`an entity in a schema of its own (${OWN_SCHEMA})`, () => {
  it('while the batch holds it: deleted once, hooks once, the direct removal is "not found"', async () => {
    const receipt = await app.deletions.destroy(Shop, 1 as never);
    const outcome = await hooks.removeWhileHeld(
      admin,
      'Item#1',
      async () => {
        const em = app.em();
        await flushRemoving(em, await em.findOneOrFail(Item, 2));
      },
      () => waitForState(app.deletions, receipt.requestId!),
    );
    expect((await app.deletions.status(receipt.requestId!)).state).toBe('completed');
    expect(outcome).toBeInstanceOf(DeletionTargetNotFoundError);
    for (const id of [1, 2, 3]) {
      expect(hooks.both('Item', id)).toEqual([1, 1]);
    }
    expect(await sql(`select id from ${OWN_SCHEMA}.dt_item`)).toEqual([]);
  });

  it('a plain removal deletes its row; a row already gone is "not found", no hook run', async () => {
    const em = app.em();
    await flushRemoving(em, await em.findOneOrFail(Item, 3));
    const other = app.em();
    const item = await other.findOneOrFail(Item, 2);
    await sql(`delete from ${OWN_SCHEMA}.dt_item where id = 2`);
    expect(await settle(flushRemoving(other, item))).toBeInstanceOf(DeletionTargetNotFoundError);
    expect(hooks.both('Item', 3)).toEqual([1, 1]);
    expect(hooks.both('Item', 2)).toEqual([0, 0]);
    expect(await sql(`select id from ${OWN_SCHEMA}.dt_item order by id`)).toEqual([{ id: 1 }]);
  });
});

describe(`a row in a fork's schema (em.fork({ schema: '${FORK_SCHEMA}' }))`, () => {
  it('a row that exists only there is removed', async () => {
    const em = app.em().fork({ schema: FORK_SCHEMA });
    await flushRemoving(em, await em.findOneOrFail(Toy, 5));
    expect(await sql(`select id from ${FORK_SCHEMA}.dt_toy order by id`)).toEqual([{ id: 2 }]);
    expect(hooks.both('Toy', 5)).toEqual([1, 1]);
  });

  it('a row gone there (a row of the same key in public) is "not found" with no hooks', async () => {
    const em = app.em().fork({ schema: FORK_SCHEMA });
    const toy = await em.findOneOrFail(Toy, 2);
    await sql(`delete from ${FORK_SCHEMA}.dt_toy where id = 2`);
    expect(await settle(flushRemoving(em, toy))).toBeInstanceOf(DeletionTargetNotFoundError);
    expect(hooks.both('Toy', 2)).toEqual([0, 0]);
    expect(await sql('select id from public.dt_toy order by id')).toEqual([{ id: 1 }, { id: 2 }]);
  });

  it(`a reference created with { schema: '${FORK_SCHEMA}' } is removed there`, async () => {
    const em = app.em();
    await flushRemoving(em, em.getReference(Toy, 5, { schema: FORK_SCHEMA } as never));
    expect(await sql(`select id from ${FORK_SCHEMA}.dt_toy order by id`)).toEqual([{ id: 2 }]);
  });
});
