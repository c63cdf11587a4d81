import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { BigIntType, Collection, EntitySchema, type EntityClass, type Rel } from '@mikro-orm/core';
import { Entity, Filter, ManyToOne, OnLoad, OneToMany, PrimaryKey, Property } from '@mikro-orm/decorators/legacy';
import pg from 'pg';
import { definePolicy, type DeletionService } from '../../lib/index.js';
import { createDeletionTestApp, type DeletionTestApp } from '../support/deletion-test-app.js';
import { createTestDatabase, databaseUrl } from '../support/services.js';

/**
 * Attacks on 206dade: the lean `destroy()` locks the row by key (`select <key> ... for update`)
 * instead of `em.findOne(..., PESSIMISTIC_WRITE)` when nothing needs the row as an entity. Each
 * attack compares a lean entity with its twin forced onto the findOne path by a no-op `onLoad`
 * hook: receipts, errors, rows and request ids must be the same. Tables start with `fp2_`.
 */
const DATABASE = 'deletion_attack2_fast_paths';

type Row = Record<string, unknown>;
const named = (name: string) => ({ [name]: class {} })[name] as unknown as EntityClass<Row>;
const noop = (): void => undefined;

// ---- B1: a parent hidden by a default application filter; the child (non-nullable m:1) has none of its own
@Entity({ tableName: 'fp2_owner' })
@Filter({ name: 'fp2_visible', cond: { hidden: false }, default: true })
class Fp2Owner {
  @PrimaryKey({ autoincrement: false }) id!: number;
  @Property({ default: false }) hidden: boolean & {} = false;
}

@Entity({ tableName: 'fp2_pet' })
class Fp2Pet {
  @PrimaryKey({ autoincrement: false }) id!: number;
  @ManyToOne(() => Fp2Owner, { createForeignKeyConstraint: false, index: true }) owner!: Rel<Fp2Owner>;
}

@Entity({ tableName: 'fp2_loaded_pet' })
class Fp2LoadedPet {
  @PrimaryKey({ autoincrement: false }) id!: number;
  @ManyToOne(() => Fp2Owner, { createForeignKeyConstraint: false, index: true }) owner!: Rel<Fp2Owner>;
  @OnLoad() loaded(): void {}
}

// ---- B2: the same child shape under a parent in tombstone mode (the module's own filter hides the marked parent)
@Entity({ tableName: 'fp2_vault' })
class Fp2Vault {
  @PrimaryKey({ autoincrement: false }) id!: number;
  @Property({ type: 'datetime', nullable: true }) deletedAt?: Date | null;
  @OneToMany(() => Fp2Item, (item) => item.vault) items = new Collection<Fp2Item>(this);
  @OneToMany(() => Fp2LoadedItem, (item) => item.vault) loadedItems = new Collection<Fp2LoadedItem>(this);
}

@Entity({ tableName: 'fp2_item' })
class Fp2Item {
  @PrimaryKey({ autoincrement: false }) id!: number;
  @ManyToOne(() => Fp2Vault, { createForeignKeyConstraint: false, index: true }) vault!: Rel<Fp2Vault>;
}

@Entity({ tableName: 'fp2_loaded_item' })
class Fp2LoadedItem {
  @PrimaryKey({ autoincrement: false }) id!: number;
  @ManyToOne(() => Fp2Vault, { createForeignKeyConstraint: false, index: true }) vault!: Rel<Fp2Vault>;
  @OnLoad() loaded(): void {}
}

// ---- B3: a nullable m:1 to the filtered parent
@Entity({ tableName: 'fp2_stray' })
class Fp2Stray {
  @PrimaryKey({ autoincrement: false }) id!: number;
  @ManyToOne(() => Fp2Owner, { nullable: true, createForeignKeyConstraint: false, index: true }) owner?: Rel<Fp2Owner> | null;
}

@Entity({ tableName: 'fp2_loaded_stray' })
class Fp2LoadedStray {
  @PrimaryKey({ autoincrement: false }) id!: number;
  @ManyToOne(() => Fp2Owner, { nullable: true, createForeignKeyConstraint: false, index: true }) owner?: Rel<Fp2Owner> | null;
  @OnLoad() loaded(): void {}
}

// ---- B4: an eager, nullable m:1 to an unfiltered parent
@Entity({ tableName: 'fp2_plain' })
class Fp2Plain {
  @PrimaryKey({ autoincrement: false }) id!: number;
}

@Entity({ tableName: 'fp2_eager' })
class Fp2Eager {
  @PrimaryKey({ autoincrement: false }) id!: number;
  @ManyToOne(() => Fp2Plain, { nullable: true, eager: true, createForeignKeyConstraint: false, index: true }) plain?: Rel<Fp2Plain> | null;
}

@Entity({ tableName: 'fp2_loaded_eager' })
class Fp2LoadedEager {
  @PrimaryKey({ autoincrement: false }) id!: number;
  @ManyToOne(() => Fp2Plain, { nullable: true, eager: true, createForeignKeyConstraint: false, index: true }) plain?: Rel<Fp2Plain> | null;
  @OnLoad() loaded(): void {}
}

// ---- B5: key types, each a lean root and its onLoad twin, with a queued (destroyAsync) kid relation
interface KeyShape {
  prefix: string;
  pk: Row;
  /** The key as stored, the key as given to destroy(). */
  stored: string;
  given: unknown;
}
const KEY_SHAPES: KeyShape[] = [
  { prefix: 'big', pk: { type: new BigIntType('bigint'), primary: true, autoincrement: false }, stored: '9007199254740993', given: '9007199254740993' },
  { prefix: 'bigstr', pk: { type: new BigIntType('string'), primary: true, autoincrement: false }, stored: '42', given: 42n },
  { prefix: 'uuid', pk: { type: 'uuid', primary: true }, stored: '0a0b0c0d-0e0f-4a1b-8c2d-3e4f5a6b7c8d', given: '0A0B0C0D-0E0F-4A1B-8C2D-3E4F5A6B7C8D' },
  { prefix: 'ci', pk: { type: 'string', columnType: 'citext', runtimeType: 'string', primary: true }, stored: 'MixedCase', given: 'mixedcase' },
  { prefix: 'pad', pk: { type: 'string', columnType: 'varchar(20)', primary: true }, stored: 'abc', given: 'abc  ' },
  { prefix: 'int', pk: { type: 'integer', primary: true, autoincrement: false, fieldName: 'the_key' }, stored: '7', given: '0007' },
];

interface KeyPair {
  shape: KeyShape;
  lean: EntityClass<Row>;
  loaded: EntityClass<Row>;
  schemas: EntitySchema<Row>[];
}
function keyPair(shape: KeyShape): KeyPair {
  const make = (variant: 'lean' | 'loaded') => {
    const cap = `${shape.prefix[0]!.toUpperCase()}${shape.prefix.slice(1)}`;
    const Root = named(`Fp2${cap}${variant === 'lean' ? 'Lean' : 'Loaded'}`);
    const Kid = named(`Fp2${cap}${variant === 'lean' ? 'Lean' : 'Loaded'}Kid`);
    const root = new EntitySchema<Row>({
      class: Root as never,
      tableName: `fp2_${shape.prefix}_${variant}`,
      properties: { id: shape.pk, kids: { kind: '1:m', entity: () => Kid, mappedBy: 'root' } } as never,
    });
    if (variant === 'loaded') {
      root.addHook('onLoad', noop);
    }
    const kid = new EntitySchema<Row>({
      class: Kid as never,
      tableName: `fp2_${shape.prefix}_${variant}_kid`,
      properties: { id: { type: 'integer', primary: true, autoincrement: false }, root: { kind: 'm:1', entity: () => Root, nullable: true, createForeignKeyConstraint: false, index: true } } as never,
    });
    return { Root, schemas: [root, kid] };
  };
  const lean = make('lean');
  const loaded = make('loaded');
  return { shape, lean: lean.Root, loaded: loaded.Root, schemas: [...lean.schemas, ...loaded.schemas] };
}
const KEY_PAIRS = KEY_SHAPES.map(keyPair);

// ---- B6: a lean entity hidden by filters registered in other ways
@Entity({ tableName: 'fp2_late' })
class Fp2Late {
  @PrimaryKey({ autoincrement: false }) id!: number;
  @Property({ default: false }) hidden: boolean & {} = false;
}

@Entity({ tableName: 'fp2_cfg' })
class Fp2Cfg {
  @PrimaryKey({ autoincrement: false }) id!: number;
  @Property({ default: false }) hidden: boolean & {} = false;
}

@Entity({ tableName: 'fp2_param' })
class Fp2Param {
  @PrimaryKey({ autoincrement: false }) id!: number;
  @Property({ default: 0 }) tenant: number & {} = 0;
}

// ---- B7: a lean tombstone entity (already marked; concurrent destroys)
@Entity({ tableName: 'fp2_stone' })
class Fp2Stone {
  @PrimaryKey({ autoincrement: false }) id!: number;
  @Property({ type: 'datetime', nullable: true }) deletedAt?: Date | null;
}

@Entity({ tableName: 'fp2_loaded_stone' })
class Fp2LoadedStone {
  @PrimaryKey({ autoincrement: false }) id!: number;
  @Property({ type: 'datetime', nullable: true }) deletedAt?: Date | null;
  @OnLoad() loaded(): void {}
}

// ---- B8: a non-default schema with a table and key column that need quoting; B9: a formula property
function twin(prefix: string, schema: string | undefined, tableName: string, properties: Row): { lean: EntityClass<Row>; loaded: EntityClass<Row>; schemas: EntitySchema<Row>[] } {
  const lean = named(`Fp2${prefix}`);
  const loaded = named(`Fp2Loaded${prefix}`);
  const of = (cls: EntityClass<Row>, table: string) => new EntitySchema<Row>({ class: cls as never, ...(schema ? { schema } : {}), tableName: table, properties: properties as never });
  const loadedSchema = of(loaded, `${tableName} loaded`);
  loadedSchema.addHook('onLoad', noop);
  return { lean, loaded, schemas: [of(lean, tableName), loadedSchema] };
}
const ODD = twin('Odd', 'fp2 Schema', 'fp2 Odd"Table', { id: { type: 'integer', primary: true, autoincrement: false, fieldName: 'Key"Col' } });
const CALC = twin('Calc', undefined, 'fp2_calc', {
  id: { type: 'integer', primary: true, autoincrement: false },
  divisor: { type: 'integer', default: 1 },
  ratio: { type: 'integer', formula: (cols: Record<string, string>) => `100 / ${cols.divisor}`, persist: false },
});

/** A receipt, or the error's class name. */
async function outcome(deletions: DeletionService, entity: EntityClass<object>, id: unknown): Promise<unknown> {
  try {
    const receipt = await deletions.destroy(entity, id as never);
    return { ...receipt, entity: receipt.entity.replace('Loaded', ''), requestId: receipt.requestId ? 'set' : undefined };
  } catch (error) {
    return { error: (error as Error).constructor.name, message: (error as Error).message.replace('Loaded', '').slice(0, 120) };
  }
}

describe('lean destroy(): the key-only lock against the findOne path', () => {
  let app: DeletionTestApp;
  const sql = (q: string, p: unknown[] = []) => app.em().getConnection().execute<Row[]>(q, p);
  const count = async (table: string, where = 'true', p: unknown[] = []) => Number((await sql(`select count(*)::int as n from ${table} where ${where}`, p))[0]!.n);

  beforeAll(async () => {
    await createTestDatabase(DATABASE, { extensions: ['citext'] });
    app = await createDeletionTestApp({
      database: DATABASE,
      keepSchema: true,
      entities: [
        Fp2Owner,
        Fp2Pet,
        Fp2LoadedPet,
        Fp2Vault,
        Fp2Item,
        Fp2LoadedItem,
        Fp2Stray,
        Fp2LoadedStray,
        Fp2Plain,
        Fp2Eager,
        Fp2LoadedEager,
        Fp2Late,
        Fp2Cfg,
        Fp2Param,
        Fp2Stone,
        Fp2LoadedStone,
        ...KEY_PAIRS.flatMap((pair) => pair.schemas),
        ...ODD.schemas,
        ...CALC.schemas,
      ],
      orm: {
        filters: { fp2_cfg_hidden: { name: 'fp2_cfg_hidden', cond: { hidden: false }, entity: ['Fp2Cfg'], default: true } },
      },
      deletion: {
        doctor: 'warn',
        policies: [
          definePolicy(Fp2Pet, {}),
          definePolicy(Fp2LoadedPet, {}),
          definePolicy(Fp2Vault, { items: 'destroyAsync', loadedItems: 'destroyAsync' }, { tombstone: 'deletedAt' }),
          definePolicy(Fp2Item, {}),
          definePolicy(Fp2LoadedItem, {}),
          definePolicy(Fp2Stray, {}),
          definePolicy(Fp2LoadedStray, {}),
          definePolicy(Fp2Eager, {}),
          definePolicy(Fp2LoadedEager, {}),
          definePolicy(Fp2Late, {}),
          definePolicy(Fp2Cfg, {}),
          definePolicy(Fp2Param, {}),
          definePolicy(Fp2Stone, {}, { tombstone: 'deletedAt' }),
          definePolicy(Fp2LoadedStone, {}, { tombstone: 'deletedAt' }),
          definePolicy(ODD.lean, {}),
          definePolicy(ODD.loaded, {}),
          definePolicy(CALC.lean, {}),
          definePolicy(CALC.loaded, {}),
          ...KEY_PAIRS.flatMap((pair) => [definePolicy(pair.lean, { kids: 'destroyAsync' } as never), definePolicy(pair.loaded, { kids: 'destroyAsync' } as never)]),
        ],
      },
    });
    await sql(`create schema "fp2 Schema"`);
    await app.orm.schema.create();
    await app.queue.obliterate({ force: true });
  });
  afterAll(() => app?.close());

  it('sanity: the lean twin locks by key, the onLoad twin through findOne', async () => {
    await sql(`insert into fp2_plain (id) values (1)`);
    await sql(`insert into fp2_eager (id, plain_id) values (900, 1)`);
    await sql(`insert into fp2_loaded_eager (id, plain_id) values (900, 1)`);
    const lean = await app.queries.record(() => app.deletions.destroy(Fp2Eager, 900));
    const loaded = await app.queries.record(() => app.deletions.destroy(Fp2LoadedEager, 900));
    expect(lean.statements.filter((s) => /^select/i.test(s))).toEqual([`select v."id" as "k0" from "fp2_eager" as v where v."id" in (?) order by v."id" for update`]);
    expect(loaded.statements.find((s) => /^select/i.test(s))).toMatch(/from "fp2_loaded_eager"/);
  });

  it('sanity: a row whose to-one parent has an active filter is loaded through findOne (which joins that parent)', async () => {
    await sql(`insert into fp2_owner (id, hidden) values (1, false)`);
    await sql(`insert into fp2_pet (id, owner_id) values (900, 1)`);
    const lean = await app.queries.record(() => app.deletions.destroy(Fp2Pet, 900));
    expect(lean.statements.filter((s) => /^select/i.test(s))).toHaveLength(1);
    expect(lean.statements.find((s) => /^select/i.test(s))).toMatch(/from "fp2_pet" as "\w+" inner join "fp2_owner"/);
    expect(await count('fp2_pet', 'id = 900')).toBe(0);
  });

  it('B1. a row whose non-nullable m:1 parent a default application filter hides: same outcome as findOne', async () => {
    await sql(`insert into fp2_owner (id, hidden) values (10, true)`);
    await sql(`insert into fp2_pet (id, owner_id) values (10, 10)`);
    await sql(`insert into fp2_loaded_pet (id, owner_id) values (10, 10)`);
    const { result: loaded, statements } = await app.queries.record(() => outcome(app.deletions, Fp2LoadedPet, 10));
    // The findOne path joins the parent under its filter (MikroORM's autoJoinRefsForFilters): the row is not found.
    expect(statements.find((s) => /^select/i.test(s))).toMatch(/inner join "fp2_owner" as "\w+" on .*"hidden" = \?/);
    const lean = await outcome(app.deletions, Fp2Pet, 10);
    expect({ lean, leftLean: await count('fp2_pet', 'id = 10') }).toEqual({ lean: loaded, leftLean: await count('fp2_loaded_pet', 'id = 10') });
  });

  it('B2. a row whose non-nullable m:1 parent is tombstoned (the module’s own filter hides it): same outcome as findOne', async () => {
    await sql(`insert into fp2_vault (id, deleted_at) values (20, now())`);
    await sql(`insert into fp2_item (id, vault_id) values (20, 20)`);
    await sql(`insert into fp2_loaded_item (id, vault_id) values (20, 20)`);
    const loaded = await outcome(app.deletions, Fp2LoadedItem, 20);
    const lean = await outcome(app.deletions, Fp2Item, 20);
    expect({ lean, leftLean: await count('fp2_item', 'id = 20') }).toEqual({ lean: loaded, leftLean: await count('fp2_loaded_item', 'id = 20') });
  });

  it('B3. a row whose nullable m:1 parent a default application filter hides: same outcome as findOne', async () => {
    await sql(`insert into fp2_owner (id, hidden) values (30, true)`);
    await sql(`insert into fp2_stray (id, owner_id) values (30, 30)`);
    await sql(`insert into fp2_loaded_stray (id, owner_id) values (30, 30)`);
    const loaded = await outcome(app.deletions, Fp2LoadedStray, 30);
    const lean = await outcome(app.deletions, Fp2Stray, 30);
    expect({ lean, leftLean: await count('fp2_stray', 'id = 30') }).toEqual({ lean: loaded, leftLean: await count('fp2_loaded_stray', 'id = 30') });
  });

  it('B4. a row with an eager nullable m:1: same outcome as findOne', async () => {
    await sql(`insert into fp2_plain (id) values (40)`);
    await sql(`insert into fp2_eager (id, plain_id) values (40, 40), (41, null)`);
    await sql(`insert into fp2_loaded_eager (id, plain_id) values (40, 40), (41, null)`);
    for (const id of [40, 41]) {
      const loaded = await outcome(app.deletions, Fp2LoadedEager, id);
      const lean = await outcome(app.deletions, Fp2Eager, id);
      expect({ id, lean, leftLean: await count('fp2_eager', 'id = ?', [id]) }).toEqual({ id, lean: loaded, leftLean: await count('fp2_loaded_eager', 'id = ?', [id]) });
    }
  });

  it.each(KEY_PAIRS.map((pair) => [pair.shape.prefix, pair] as const))('B5. key type %s: same receipt, rows and request ids as findOne', async (_prefix, pair) => {
    const { shape } = pair;
    const column = shape.prefix === 'int' ? 'the_key' : 'id';
    const results: Record<string, unknown> = {};
    for (const variant of ['lean', 'loaded'] as const) {
      const table = `fp2_${shape.prefix}_${variant}`;
      await sql(`insert into ${table} (${column}) values (?)`, [shape.stored]);
      await sql(`insert into ${table}_kid (id, root_${column === 'the_key' ? 'the_key' : 'id'}) values (1, ?)`, [shape.stored]);
      const entity = variant === 'lean' ? pair.lean : pair.loaded;
      let receipt: unknown;
      let ids: unknown;
      try {
        const r = await app.deletions.destroy(entity, shape.given as never);
        receipt = { ...r, entity: 'X', requestId: r.requestId ? 'set' : undefined };
        ids = r.requestId ? (await app.deletions.status(r.requestId)).ids : undefined;
      } catch (error) {
        receipt = (error as Error).constructor.name;
      }
      results[variant] = { receipt, ids, rows: await count(table) };
    }
    expect(results.lean).toEqual(results.loaded);
    // varchar keeps trailing spaces significant: 'abc  ' names no row on either path.
    expect(results.loaded).toMatchObject(
      shape.prefix === 'pad' ? { receipt: 'DeletionTargetNotFoundError', rows: 1 } : { receipt: { status: 'pending', requestId: 'set' }, ids: [expect.anything()], rows: 0 },
    );
  });

  it('B6a. a filter added with orm.em.addFilter() after boot hides the row: 404, row kept', async () => {
    await sql(`insert into fp2_late (id, hidden) values (60, true), (61, false)`);
    app.orm.em.addFilter({ name: 'fp2_late_hidden', cond: { hidden: false }, entity: [Fp2Late], default: true });
    expect(await outcome(app.deletions, Fp2Late, 60)).toMatchObject({ error: 'DeletionTargetNotFoundError' });
    expect(await outcome(app.deletions, Fp2Late, 61)).toMatchObject({ status: 'completed' });
    expect(await sql(`select id from fp2_late order by id`)).toEqual([{ id: 60 }]);
  });

  it('B6b. a filter of the MikroORM config (`filters` option) hides the row: 404, row kept', async () => {
    await sql(`insert into fp2_cfg (id, hidden) values (70, true), (71, false)`);
    expect(await outcome(app.deletions, Fp2Cfg, 70)).toMatchObject({ error: 'DeletionTargetNotFoundError' });
    expect(await outcome(app.deletions, Fp2Cfg, 71)).toMatchObject({ status: 'completed' });
    expect(await sql(`select id from fp2_cfg order by id`)).toEqual([{ id: 70 }]);
  });

  it('B6c. a callback filter whose args are set with setFilterParams on the root em: only the tenant’s row goes', async () => {
    await sql(`insert into fp2_param (id, tenant) values (80, 1), (81, 2)`);
    app.orm.em.addFilter({ name: 'fp2_tenant', cond: (args: Record<string, unknown>) => ({ tenant: args.tenant as number }), entity: [Fp2Param], default: true });
    app.orm.em.setFilterParams('fp2_tenant', { tenant: 1 });
    expect(await outcome(app.deletions, Fp2Param, 81)).toMatchObject({ error: 'DeletionTargetNotFoundError' });
    expect(await outcome(app.deletions, Fp2Param, 80)).toMatchObject({ status: 'completed' });
    expect(await sql(`select id from fp2_param order by id`)).toEqual([{ id: 81 }]);
  });

  it('B7a. a row whose tombstone is already set: 404 on both paths, tombstone unchanged', async () => {
    const stamp = '2020-01-01T00:00:00.000Z';
    await sql(`insert into fp2_stone (id, deleted_at) values (90, ?)`, [stamp]);
    await sql(`insert into fp2_loaded_stone (id, deleted_at) values (90, ?)`, [stamp]);
    const loaded = await outcome(app.deletions, Fp2LoadedStone, 90);
    const lean = await outcome(app.deletions, Fp2Stone, 90);
    expect(lean).toEqual(loaded);
    expect(loaded).toMatchObject({ error: 'DeletionTargetNotFoundError' });
    const stamps = await sql(`select (select deleted_at from fp2_stone where id = 90) as lean, (select deleted_at from fp2_loaded_stone where id = 90) as loaded`);
    expect(stamps.map((r: Row) => [new Date(r.lean as string).toISOString(), new Date(r.loaded as string).toISOString()])).toEqual([[stamp, stamp]]);
  });

  it('B7b. concurrent destroy() of one row, and destroy() of a row another transaction is tombstoning: one winner, then 404, as on the findOne path', async () => {
    await sql(`insert into fp2_stone (id) values (91), (92)`);
    await sql(`insert into fp2_loaded_stone (id) values (91), (92)`);
    const run = async (entity: EntityClass<object>, table: string) => {
      const pair = await Promise.all([outcome(app.deletions, entity, 91), outcome(app.deletions, entity, 91)]);
      const client = new pg.Client({ connectionString: databaseUrl(DATABASE) });
      await client.connect();
      try {
        await client.query('begin');
        await client.query(`update ${table} set deleted_at = now() where id = 92`);
        const pending = outcome(app.deletions, entity, 92);
        await new Promise((resolve) => setTimeout(resolve, 300));
        await client.query('commit');
        const blocked = await pending;
        return { pair: pair.map((o) => (o as { status?: string; error?: string }).status ?? (o as { error: string }).error).sort(), blocked };
      } finally {
        await client.end();
      }
    };
    const loaded = await run(Fp2LoadedStone, 'fp2_loaded_stone');
    const lean = await run(Fp2Stone, 'fp2_stone');
    expect(lean).toEqual(loaded);
    expect(loaded.pair).toContain('DeletionTargetNotFoundError');
    expect(loaded.blocked).toMatchObject({ error: 'DeletionTargetNotFoundError' });
  });

  it('B8. a non-default schema, a table and key column that need quoting: same outcome as findOne', async () => {
    for (const table of ['fp2 Odd""Table', 'fp2 Odd""Table loaded']) {
      await sql(`insert into "fp2 Schema"."${table}" ("Key""Col") values (1), (2)`);
    }
    const loaded = [await outcome(app.deletions, ODD.loaded, 1), await outcome(app.deletions, ODD.loaded, 3)];
    const lean = [await outcome(app.deletions, ODD.lean, 1), await outcome(app.deletions, ODD.lean, 3)];
    expect(lean).toEqual(loaded);
    expect(await sql(`select "Key""Col" as k from "fp2 Schema"."fp2 Odd""Table"`)).toEqual(await sql(`select "Key""Col" as k from "fp2 Schema"."fp2 Odd""Table loaded"`));
  });

  it('B9. (minor) a row whose formula property fails to compute (division by zero): same outcome as findOne', async () => {
    await sql(`insert into fp2_calc (id, divisor) values (1, 0)`);
    await sql(`insert into "fp2_calc loaded" (id, divisor) values (1, 0)`);
    const loaded = await outcome(app.deletions, CALC.loaded, 1);
    const lean = await outcome(app.deletions, CALC.lean, 1);
    expect({ lean, left: await count('fp2_calc') }).toEqual({ lean: loaded, left: await count('"fp2_calc loaded"') });
  });
});
