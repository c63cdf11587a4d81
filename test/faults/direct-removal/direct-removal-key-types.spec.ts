import { afterAll, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import { EntitySchema } from '@mikro-orm/core';
import { definePolicy } from '../../../lib/index.js';
import { createDeletionTestApp, type DeletionTestApp } from '../../support/deletion-test-app.js';
import { createTestDatabase } from '../../support/services.js';
import { HookCalls, intId, named, type Row } from './direct-removal-support.js';

/**
 * Regression guard: children reached only by `deleteAll`, `nullify` or `restrict` are not locked
 * when a flush removes them directly (those policies run no hooks for the rows they remove), so
 * their keys may be of types the lock cannot handle (char(n), numeric, citext). MikroORM's own
 * behaviour applies to them: `em.remove` + `flush` deletes the row, as without the module.
 */
const DATABASE = 'deletion_direct_key_types';

interface Country {
  code: string;
}
interface Keyed {
  id: string;
}

const Region = named('DkRegion');
const CountryClass = named<Country>('DkCountry'); // char(2) key, nullify child of Region
const Ledger = named('DkLedger');
const Tag = named<Keyed>('DkTag'); // citext key, deleteAll child of Ledger
const Shelf = named('DkShelf');
const Slot = named<Keyed>('DkSlot'); // numeric key, restrict child of Shelf

const hooks = new HookCalls();
const fk = (entity: () => unknown) => ({ kind: 'm:1', entity, nullable: true, createForeignKeyConstraint: false, index: true });

let app: DeletionTestApp;
const sql = (q: string, p: unknown[] = []) => app.em().getConnection().execute<Record<string, unknown>[]>(q, p);

beforeAll(async () => {
  await createTestDatabase(DATABASE, { extensions: ['citext'] });
  app = await createDeletionTestApp({
    database: DATABASE,
    keepSchema: true,
    entities: [
      new EntitySchema<Row>({ class: Region as never, tableName: 'dk_region', properties: { id: intId, countries: { kind: '1:m', entity: () => CountryClass, mappedBy: 'region' } } as never }),
      hooks.record(
        new EntitySchema<Country>({
          class: CountryClass as never,
          tableName: 'dk_country',
          properties: { code: { type: 'string', columnType: 'char(2)', primary: true }, region: fk(() => Region) } as never,
        }),
        'Country',
        (country) => country.code,
      ),
      new EntitySchema<Row>({ class: Ledger as never, tableName: 'dk_ledger', properties: { id: intId, tags: { kind: '1:m', entity: () => Tag, mappedBy: 'ledger' } } as never }),
      hooks.record(
        new EntitySchema<Keyed>({
          class: Tag as never,
          tableName: 'dk_tag',
          properties: { id: { type: 'string', columnType: 'citext', runtimeType: 'string', primary: true }, ledger: fk(() => Ledger) } as never,
        }),
        'Tag',
      ),
      new EntitySchema<Row>({ class: Shelf as never, tableName: 'dk_shelf', properties: { id: intId, slots: { kind: '1:m', entity: () => Slot, mappedBy: 'shelf' } } as never }),
      hooks.record(
        new EntitySchema<Keyed>({
          class: Slot as never,
          tableName: 'dk_slot',
          properties: { id: { type: 'string', columnType: 'numeric(10,0)', primary: true }, shelf: fk(() => Shelf) } as never,
        }),
        'Slot',
      ),
    ],
    deletion: {
      doctor: 'warn',
      policies: [
        definePolicy(Region, { countries: 'nullify' } as never),
        definePolicy(Ledger, { tags: 'deleteAll' } as never),
        definePolicy(Shelf, { slots: 'restrict' } as never),
      ],
    },
  });
  await app.orm.schema.create();
  await app.queue.obliterate({ force: true });
});

afterAll(async () => {
  await app?.close();
});

beforeEach(async () => {
  hooks.reset();
  for (const table of ['dk_country', 'dk_region', 'dk_tag', 'dk_ledger', 'dk_slot', 'dk_shelf']) {
    await sql(`delete from ${table}`);
  }
  await sql(`insert into dk_region (id) values (1)`);
  await sql(`insert into dk_country (code, region_id) values ('US', 1), ('FR', 1)`);
  await sql(`insert into dk_ledger (id) values (1)`);
  await sql(`insert into dk_tag (id, ledger_id) values ('abc', 1), ('def', 1)`);
  await sql(`insert into dk_shelf (id) values (1)`);
  await sql(`insert into dk_slot (id, shelf_id) values ('7', 1), ('8', 1)`);
});

describe('direct removal of a child whose key type only deleteAll / nullify / restrict accept', () => {
  it('a char(2)-keyed nullify child is removed with em.remove + flush, hooks once', async () => {
    const em = app.em();
    em.remove(await em.findOneOrFail(CountryClass, { code: 'US' }));
    await em.flush();
    expect(await sql('select code from dk_country order by code')).toEqual([{ code: 'FR' }]);
    expect(hooks.both('Country', 'US')).toEqual([1, 1]);
  });

  it('a numeric-keyed restrict child is removed with em.remove + flush, hooks once', async () => {
    const em = app.em();
    em.remove(await em.findOneOrFail(Slot, { id: '7' }));
    await em.flush();
    expect(await sql('select id from dk_slot order by id')).toEqual([{ id: '8' }]);
    expect(hooks.both('Slot', '7')).toEqual([1, 1]);
  });

  it('a citext-keyed deleteAll child removed through a reference of another case is deleted (the row exists)', async () => {
    const em = app.em();
    em.remove(em.getReference(Tag, 'ABC'));
    await em.flush();
    expect(await sql('select id from dk_tag order by id')).toEqual([{ id: 'def' }]);
  });
});
