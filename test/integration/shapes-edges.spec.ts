import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { EntitySchema, type EntityClass } from '@mikro-orm/core';
import { DeletionConfigurationError, definePolicy, type PolicyDefinition, type PolicyName } from '../../lib/index.js';
import { createDeletionTestApp, type DeletionTestApp } from '../support/deletion-test-app.js';

/**
 * Shapes the library cannot handle are refused at boot, naming what works (DESIGN 7), and ids
 * that no key can hold are a 400, never a 500. Found by the adversarial review of issue 11.
 */
const klass = (name: string): EntityClass<object> => ({ [name]: class {} })[name] as EntityClass<object>;
let boots = 0;

async function bootError(entities: EntitySchema[], policies: PolicyDefinition[]): Promise<DeletionConfigurationError> {
  const result = await createDeletionTestApp({ database: `deletion_shapes_edges_${++boots}`, entities, deletion: { doctor: 'off', policies } }).then(
    async (app) => {
      await app.close();
      return undefined;
    },
    (reason: unknown) => reason,
  );
  expect(result).toBeInstanceOf(DeletionConfigurationError);
  return result as DeletionConfigurationError;
}

/** A parent with a `kids` relation to a child whose key and foreign key are given. */
function family(prefix: string, parentKey: object, kidKey: object, kidParent: object = {}) {
  const Parent = klass(`${prefix}Parent`);
  const Kid = klass(`${prefix}Kid`);
  const entities = [
    new EntitySchema<Record<string, unknown>>({ class: Parent as never, tableName: `${prefix.toLowerCase()}_parent`, properties: { id: { primary: true, ...parentKey }, kids: { kind: '1:m', entity: () => Kid, mappedBy: 'parent' } } as never }),
    new EntitySchema<Record<string, unknown>>({
      class: Kid as never,
      tableName: `${prefix.toLowerCase()}_kid`,
      properties: {
        ...kidKey,
        parent: { kind: 'm:1', entity: () => Parent, nullable: true, createForeignKeyConstraint: false, index: true, ...kidParent },
      } as never,
    }),
  ] as EntitySchema[];
  return { Parent, Kid, entities };
}

describe('shapes refused at boot', () => {
  it('a relation whose foreign key references another column than the parent key (targetKey)', async () => {
    const { Parent, entities } = family('Tk', { type: 'integer' }, { id: { type: 'integer', primary: true } }, { targetKey: 'code', fieldName: 'parent_code' });
    (entities[0] as EntitySchema<Record<string, unknown>>).addProperty('code', 'integer', { unique: true });
    const error = await bootError(entities, [definePolicy(Parent, { kids: 'deleteAll' } as never)]);
    expect(error).toMatchObject({ code: 'DELETION_CONFIG_TARGET_KEY', entity: 'TkParent', relation: 'kids' });
    expect(error.message).toContain('TkKid.parent references TkParent.code (targetKey)');
  });

  it.each<PolicyName>(['destroy', 'destroyAsync', 'deleteAllAsync', 'nullifyThenPurge'])('%s over children keyed by a date', async (policy) => {
    const { Parent, entities } = family(`Date${policy}`, { type: 'integer' }, { day: { type: 'date', primary: true } });
    const error = await bootError(entities, [definePolicy(Parent, { kids: policy } as never)]);
    expect(error).toMatchObject({ code: 'DELETION_CONFIG_KEY_TYPE', entity: `Date${policy}Kid` });
    expect(error.message).toContain('use an integer, bigint (as bigint, number or string), uuid or varchar/text primary key');
  });

  it('a policy on an entity keyed by char(n), whose padded values do not compare as stored', async () => {
    const { Parent, entities } = family('Char', { type: 'string', columnType: 'char(4)' }, { id: { type: 'integer', primary: true } });
    const error = await bootError(entities, [definePolicy(Parent, { kids: 'destroyAsync' } as never)]);
    expect(error).toMatchObject({ code: 'DELETION_CONFIG_KEY_TYPE', entity: 'CharParent' });
    expect(error.message).toContain('(not char(n))');
  });
});

describe('ids on shapes the key codec does not type', () => {
  const DailyStat = klass('DailyStat');
  const { Parent: VarParent, entities } = family('Var', { type: 'string' }, { id: { type: 'integer', primary: true } });
  let app: DeletionTestApp;
  beforeAll(async () => {
    app = await createDeletionTestApp({
      database: 'deletion_shapes_edges_ids',
      entities: [
        ...entities,
        new EntitySchema<Record<string, unknown>>({ class: DailyStat as never, tableName: 'daily_stat', properties: { day: { type: 'date', primary: true }, hits: { type: 'integer' } } }),
      ],
      deletion: { policies: [definePolicy(VarParent, { kids: 'deleteAll' } as never)] },
    });
  });
  afterAll(() => app?.close());
  const sql = (q: string, p: unknown[] = []) => app.em().getConnection().execute<Record<string, unknown>[]>(q, p);
  const destroy = (entity: EntityClass<object>, id: unknown) => app.deletions.destroy(entity, id as never);

  it('an entity without policies keyed by a date is deleted by its key, as MikroORM would; a filter is a 400', async () => {
    await sql(`insert into daily_stat (day, hits) values ('2024-01-01', 1), ('2024-01-02', 2)`);
    await expect(destroy(DailyStat, {})).rejects.toMatchObject({ code: 'DELETION_INVALID_ID', status: 400 });
    await expect(destroy(DailyStat, { $gt: '2000-01-01' })).rejects.toMatchObject({ code: 'DELETION_INVALID_ID' });
    await expect(destroy(DailyStat, '2024-01-01')).resolves.toMatchObject({ entity: 'DailyStat', status: 'completed' });
    expect(await sql(`select to_char(day, 'YYYY-MM-DD') as day from daily_stat`)).toEqual([{ day: '2024-01-02' }]);
  });

  it('a varchar id holding a NUL character is a 400 (PostgreSQL text cannot hold one), and nothing is deleted', async () => {
    await sql(`insert into var_parent (id) values ('a'), ('ab')`);
    for (const call of [() => destroy(VarParent, 'a\u0000b'), () => app.deletions.plan(VarParent, 'a\u0000b' as never)]) {
      await expect(call()).rejects.toMatchObject({ code: 'DELETION_INVALID_ID', status: 400 });
    }
    expect((await sql(`select id from var_parent order by id`)).map((r: Record<string, unknown>) => r.id)).toEqual(['a', 'ab']);
  });
});

describe('shapes of several tenants and of overlapping relations, refused', () => {
  it("an entity with schema: '*' under a policy stops the boot with DELETION_CONFIG_SCHEMA", async () => {
    const { Parent, entities } = family('Wild', { type: 'integer' }, { id: { type: 'integer', primary: true } });
    (entities[0] as EntitySchema<Record<string, unknown>>).meta.schema = '*';
    const error = await bootError(entities, [definePolicy(Parent, { kids: 'deleteAll' } as never)]);
    expect(error).toMatchObject({ code: 'DELETION_CONFIG_SCHEMA', entity: 'WildParent' });
    expect(error.message).toContain("schema: '*'");
  });

  it('two relations over one foreign key whose targets share rows, with different policies, stop the boot with DELETION_CONFIG_OVERLAP', async () => {
    const Shelter = klass('Shelter');
    const Pet = klass('Pet');
    const Stray = ({ Stray: class extends (Pet as new () => object) {} }).Stray as EntityClass<object>;
    const entities = [
      new EntitySchema<Record<string, unknown>>({
        class: Shelter as never,
        properties: {
          id: { type: 'integer', primary: true },
          pets: { kind: '1:m', entity: () => Pet, mappedBy: 'shelter' },
          strays: { kind: '1:m', entity: () => Stray, mappedBy: 'shelter' },
        } as never,
      }),
      new EntitySchema<Record<string, unknown>>({
        class: Pet as never,
        discriminatorColumn: 'kind',
        discriminatorMap: { pet: 'Pet', stray: 'Stray' } as never,
        properties: {
          id: { type: 'integer', primary: true },
          kind: { type: 'string' },
          shelter: { kind: 'm:1', entity: () => Shelter, nullable: true, createForeignKeyConstraint: false, index: true },
        } as never,
      }),
      new EntitySchema<Record<string, unknown>>({ class: Stray as never, extends: Pet as never, discriminatorValue: 'stray', properties: {} }),
    ] as EntitySchema[];
    const error = await bootError(entities, [definePolicy(Shelter, { pets: 'nullify', strays: 'destroyAsync' } as never)]);
    expect(error).toMatchObject({ code: 'DELETION_CONFIG_OVERLAP', entity: 'Shelter', relation: 'strays' });
    expect(error.message).toContain('"pets" ("nullify") and "strays" ("destroyAsync") reach the same Stray rows through the same foreign key');
  });
});

describe('a queued deletion flushed by an entity manager with its own schema', () => {
  const { Parent, entities } = family('Tenant', { type: 'integer' }, { id: { type: 'integer', primary: true } });
  let app: DeletionTestApp;
  beforeAll(async () => {
    app = await createDeletionTestApp({ database: 'deletion_shapes_edges_tenant', entities, deletion: { policies: [definePolicy(Parent, { kids: 'destroyAsync' } as never)] } });
    const sql = app.em().getConnection();
    await sql.execute('create schema t1');
    for (const table of ['tenant_parent', 'tenant_kid', 'deletion_request', 'deletion_orphan']) {
      await sql.execute(`create table t1.${table} (like public.${table} including all)`);
    }
  });
  afterAll(() => app?.close());

  it('is refused with DELETION_CONFIG_SCHEMA, and nothing is deleted in either schema', async () => {
    const sql = app.em().getConnection();
    for (const schema of ['public', 't1']) {
      await sql.execute(`insert into ${schema}.tenant_parent (id) values (1)`);
      await sql.execute(`insert into ${schema}.tenant_kid (id, parent_id) values (10, 1)`);
    }
    const em = app.orm.em.fork({ schema: 't1' });
    em.remove(await em.findOneOrFail(Parent, 1 as never));
    await expect(em.flush()).rejects.toMatchObject({ code: 'DELETION_CONFIG_SCHEMA' });
    for (const schema of ['public', 't1']) {
      expect(await sql.execute(`select (select count(*)::int from ${schema}.tenant_parent) as parents, (select count(*)::int from ${schema}.tenant_kid) as kids`)).toEqual([
        { parents: 1, kids: 1 },
      ]);
    }
    expect(await sql.execute('select count(*)::int as n from t1.deletion_request')).toEqual([{ n: 0 }]);
  });
});
