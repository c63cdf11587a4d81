import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { EntityClass, EntityManager, FilterQuery, Primary } from '@mikro-orm/core';
import {
  DeletionBlockedError,
  DeletionConfigurationError,
  DeletionRestrictedError,
  DeletionTargetNotFoundError,
  definePolicy,
  type DeletionModuleOptions,
  type DeletionReceipt,
  type PolicyName,
} from '../../lib/index.js';
import { BATCH_ENTITIES, Batch, LEDGER_ENTITIES, Ledger, STAMP_ENTITIES, SHEET_ENTITIES, Sheet, Stamp } from '../fixtures/shapes/composite.entities.js';
import { createDeletionTestApp, type DeletionTestApp, type DeletionTestAppOptions } from '../support/deletion-test-app.js';

/**
 * Issue 11, "Composite keys": a composite-key entity with validators only boots and its validators
 * run; `deleteAll`, `nullify` and `restrict` work on composite-key children; every other use of a
 * composite key is refused at boot with an error that recommends only what works.
 */

type Row = Record<string, unknown>;
type Rows = Record<string, Row[]>;

/** Rows in a stable order, whatever order they were read or computed in. */
const sorted = (rows: Row[]) => [...rows].sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b)));

/** Every row of `tables`, sorted: compare whole tables. */
async function readTables(em: EntityManager, tables: readonly string[]): Promise<Rows> {
  const out: Rows = {};
  for (const table of tables) {
    const rows = await em.getConnection().execute<{ row: Row }[]>(`select to_jsonb(t) as row from "${table}" t`);
    out[table] = sorted(rows.map((r: { row: Row }) => r.row));
  }
  return out;
}

const without = (rows: Row[], predicate: (row: Row) => boolean) => rows.filter((r) => !predicate(r));

async function requestCount(app: DeletionTestApp): Promise<number> {
  return Number((await app.em().getConnection().execute<{ n: string }[]>(`select count(*) as n from deletion_request`))[0]!.n);
}

/** A deletion by primary key, through the service or through `em.remove()` + `flush()`. */
type Trigger = <T extends object>(app: DeletionTestApp, entity: EntityClass<T>, id: Primary<T>) => Promise<DeletionReceipt | undefined>;
const TRIGGERS: readonly (readonly [string, Trigger])[] = [
  ['DeletionService.destroy', (app, entity, id) => app.deletions.destroy(entity, id)],
  [
    'em.remove + em.flush',
    async <T extends object>(app: DeletionTestApp, entity: EntityClass<T>, id: Primary<T>) => {
      const em = app.em();
      em.remove(await em.findOneOrFail(entity, id as FilterQuery<NoInfer<T>>));
      await em.flush();
      return undefined;
    },
  ],
];

describe('a composite-key entity with validators only', () => {
  const tables = ['stamp'];
  let app: DeletionTestApp;
  beforeAll(async () => {
    app = await createDeletionTestApp({ database: 'deletion_shapes_composite_stamp', entities: STAMP_ENTITIES });
  });
  afterAll(() => app?.close());

  let serial = 0;
  async function seedStamps(series: string, count: number): Promise<number[]> {
    const serials = Array.from({ length: count }, () => ++serial);
    await app.em().getConnection().execute(`insert into stamp (series, serial) values ${serials.map(() => '(?, ?)').join(', ')}`, serials.flatMap((s) => [series, s]));
    return serials;
  }

  describe.each(TRIGGERS)('through %s', (_name, trigger) => {
    it('deletes the row with that key, and only it', async () => {
      const [victim, neighbour] = await seedStamps('A', 2);
      const [sameSerialOtherSeries] = await seedStamps('B', 1);
      // Same series, same serial elsewhere: only the pair identifies the row.
      await app.em().getConnection().execute(`insert into stamp (series, serial) values ('B', ?)`, [victim]);
      const before = await readTables(app.em(), tables);

      await trigger(app, Stamp, ['A', victim]);

      expect(await readTables(app.em(), tables)).toEqual({ stamp: without(before.stamp!, (r) => r.series === 'A' && r.serial === victim) });
      expect(before.stamp!.filter((r) => r.serial === neighbour || r.serial === sameSerialOtherSeries)).toHaveLength(2);
      expect(await requestCount(app)).toBe(0);
    });

    it.each([
      ['set-based', 'frozen', 'frozen stamps are kept'],
      ['instance', 'vetoed', 'vetoed stamps are kept'],
    ])('the %s validator refuses with DeletionBlockedError, and nothing is deleted', async (_form, column, reason) => {
      const [victim] = await seedStamps('C', 1);
      await seedStamps('C', 1);
      await app.em().getConnection().execute(`update stamp set ${column} = true where series = 'C' and serial = ?`, [victim]);
      const before = await readTables(app.em(), tables);

      const error = await Promise.resolve(trigger(app, Stamp, ['C', victim])).catch((e: unknown) => e);

      expect(error).toBeInstanceOf(DeletionBlockedError);
      expect((error as DeletionBlockedError).getStatus()).toBe(409);
      expect(error).toMatchObject({ code: 'DELETION_BLOCKED', entity: 'Stamp', total: 1, blockers: [expect.objectContaining({ entity: 'Stamp', path: 'Stamp', reason })] });
      expect(await readTables(app.em(), tables)).toEqual(before);
    });
  });

  it('plan() reports the validators’ verdict for a composite key', async () => {
    const [victim] = await seedStamps('D', 1);
    expect(await app.deletions.plan(Stamp, ['D', victim])).toMatchObject({ entity: 'Stamp', allowed: true, blockedTotal: 0 });
    await app.em().getConnection().execute(`update stamp set frozen = true where series = 'D' and serial = ?`, [victim]);
    expect(await app.deletions.plan(Stamp, ['D', victim])).toMatchObject({ allowed: false, blockedTotal: 1, blockers: [expect.objectContaining({ entity: 'Stamp', reason: 'frozen stamps are kept' })] });
  });

  it('a composite key with no row is "not found" (404)', async () => {
    const error = await app.deletions.destroy(Stamp, ['Z', 424242]).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DeletionTargetNotFoundError);
    expect((error as DeletionTargetNotFoundError).getStatus()).toBe(404);
  });
});

describe('composite-key children under deleteAll, nullify and restrict', () => {
  const tables = ['ledger', 'ledger_line', 'ledger_tag', 'ledger_hold'];
  let app: DeletionTestApp;
  beforeAll(async () => {
    app = await createDeletionTestApp({
      database: 'deletion_shapes_composite_ledger',
      entities: LEDGER_ENTITIES,
      deletion: { policies: [definePolicy(Ledger, { lines: 'deleteAll', tags: 'nullify', holds: 'restrict' })] },
    });
  });
  afterAll(() => app?.close());

  let tagSeq = 0;
  let holdSeq = 0;
  async function seedLedger(shape: { lines: number; tags: number; holds: number }, name = 'ledger'): Promise<number> {
    const sql = app.em().getConnection();
    const [{ id }] = (await sql.execute(`insert into ledger (name) values (?) returning id`, [name])) as { id: number }[];
    if (shape.lines) {
      await sql.execute(`insert into ledger_line (ledger_id, line_no) select ?, g from generate_series(1, ?) g`, [id, shape.lines]);
    }
    for (let i = 0; i < shape.tags; i++) {
      await sql.execute(`insert into ledger_tag (code, seq, ledger_id) values ('tag', ?, ?)`, [++tagSeq, id]);
    }
    for (let i = 0; i < shape.holds; i++) {
      await sql.execute(`insert into ledger_hold (kind, n, ledger_id) values ('hold', ?, ?)`, [++holdSeq, id]);
    }
    return id!;
  }

  /** A bystander whose lines would refuse, and a tag already detached. */
  async function seedBystander(): Promise<number> {
    const id = await seedLedger({ lines: 2, tags: 2, holds: 1 }, 'bystander');
    await app.em().getConnection().execute(`update ledger_line set locked = true, vetoed = true where ledger_id = ?`, [id]);
    await app.em().getConnection().execute(`insert into ledger_tag (code, seq, ledger_id) values ('loose', ?, null)`, [++tagSeq]);
    return id;
  }

  describe.each(TRIGGERS)('through %s', (_name, trigger) => {
    it('deletes the lines (deleteAll), detaches the tags (nullify), and touches no other ledger', async () => {
      const victim = await seedLedger({ lines: 3, tags: 2, holds: 0 }, 'victim');
      await seedBystander();
      const before = await readTables(app.em(), tables);

      await trigger(app, Ledger, victim);

      expect(await readTables(app.em(), tables)).toEqual({
        ledger: without(before.ledger!, (r) => r.id === victim),
        ledger_line: without(before.ledger_line!, (r) => r.ledger_id === victim),
        ledger_tag: sorted(before.ledger_tag!.map((r) => (r.ledger_id === victim ? { ...r, ledger_id: null } : r))),
        ledger_hold: before.ledger_hold,
      });
    });

    it.each([
      ['set-based', 'locked', 'locked lines are kept'],
      ['instance', 'vetoed', 'vetoed lines are kept'],
    ])('the child’s %s validator refuses the deleteAll with DeletionBlockedError, and nothing changes', async (_form, column, reason) => {
      const victim = await seedLedger({ lines: 3, tags: 1, holds: 0 }, 'victim');
      await seedBystander();
      await app.em().getConnection().execute(`update ledger_line set ${column} = true where ledger_id = ? and line_no = 2`, [victim]);
      const before = await readTables(app.em(), tables);

      const error = await Promise.resolve(trigger(app, Ledger, victim)).catch((e: unknown) => e);

      expect(error).toBeInstanceOf(DeletionBlockedError);
      expect((error as DeletionBlockedError).getStatus()).toBe(409);
      expect(error).toMatchObject({ code: 'DELETION_BLOCKED', entity: 'Ledger', id: victim, total: 1, blockers: [expect.objectContaining({ entity: 'LedgerLine', path: 'Ledger.lines', reason })] });
      expect(await readTables(app.em(), tables)).toEqual(before);
    });

    it('restrict refuses while composite-key holds reference the ledger, and nothing changes', async () => {
      const victim = await seedLedger({ lines: 2, tags: 1, holds: 2 }, 'victim');
      await seedBystander();
      const before = await readTables(app.em(), tables);

      const error = await Promise.resolve(trigger(app, Ledger, victim)).catch((e: unknown) => e);

      expect(error).toBeInstanceOf(DeletionRestrictedError);
      expect(error).toMatchObject({ code: 'DELETION_RESTRICTED', entity: 'Ledger', id: victim, relation: 'holds', childEntity: 'LedgerHold', count: 2 });
      expect(await readTables(app.em(), tables)).toEqual(before);
    });
  });

  it('plan() counts composite-key children per path', async () => {
    const victim = await seedLedger({ lines: 3, tags: 2, holds: 1 }, 'victim');
    await seedBystander();
    const plan = await app.deletions.plan(Ledger, victim);
    expect(plan.allowed).toBe(false);
    expect(plan.paths.map(({ path, rows, effect }) => ({ path, rows, effect })).sort((a, b) => a.path.localeCompare(b.path))).toEqual([
      { path: 'Ledger', rows: 1, effect: 'delete' },
      { path: 'Ledger.holds', rows: 1, effect: 'refuse' },
      { path: 'Ledger.lines', rows: 3, effect: 'delete' },
      { path: 'Ledger.tags', rows: 2, effect: 'detach' },
    ]);
  });
});

describe('composite keys the batched cascades cannot walk fail the boot', () => {
  let boots = 0;
  async function bootError(entities: DeletionTestAppOptions['entities'], deletion: DeletionModuleOptions): Promise<DeletionConfigurationError> {
    const app = await createDeletionTestApp({ database: `deletion_shapes_composite_boot_${++boots}`, entities, deletion }).catch((error: unknown) => error);
    if (!(app instanceof Error)) {
      await (app as DeletionTestApp).close();
      throw new Error('the application started although its deletion configuration uses a composite key the library cannot walk');
    }
    expect(app).toBeInstanceOf(DeletionConfigurationError);
    return app as DeletionConfigurationError;
  }

  /** Policies that walk children one key at a time: a recommendation must not point at any of them. */
  const UNSUPPORTED = /\bdestroy\b|destroyAsync|deleteAllAsync|nullifyThenPurge/;
  /**
   * What the error recommends: the text after "Fix:" (DeletionConfigurationError's format), else the
   * whole message. The problem part may name the policy that was declared; the fix may not.
   */
  const recommendation = (error: Error) => error.message.split(' Fix: ')[1] ?? error.message;

  it.each(['destroy', 'destroyAsync', 'deleteAllAsync', 'nullifyThenPurge'] satisfies PolicyName[])(
    '%s over a composite-key child: recommends only "deleteAll", "nullify" or "restrict"',
    async (policy) => {
      const error = await bootError(BATCH_ENTITIES, { policies: [definePolicy(Batch, { entries: policy })] });

      expect(error).toMatchObject({ code: 'DELETION_CONFIG_COMPOSITE_KEY', entity: 'Batch', relation: 'entries' });
      expect(error.message).toContain('Batch.entries');
      expect(recommendation(error)).toMatch(/\bdeleteAll\b/);
      expect(recommendation(error)).toMatch(/\bnullify\b/);
      expect(recommendation(error)).toMatch(/\brestrict\b/);
      expect(recommendation(error)).not.toMatch(UNSUPPORTED);
    },
  );

  it.each(['deleteAll', 'nullify', 'restrict', 'destroyAsync'] satisfies PolicyName[])('a %s policy declared on a composite-key parent', async (policy) => {
    const error = await bootError(SHEET_ENTITIES, { policies: [definePolicy(Sheet, { cells: policy })] });

    expect(error).toMatchObject({ code: 'DELETION_CONFIG_COMPOSITE_KEY', entity: 'Sheet', relation: 'cells' });
    expect(error.message).toContain('Sheet.cells');
    expect(recommendation(error)).not.toMatch(UNSUPPORTED);
  });

  it('a tombstone declared on a composite-key parent', async () => {
    const error = await bootError(SHEET_ENTITIES, { policies: [definePolicy(Sheet, {}, { tombstone: 'deletedAt' })] });

    expect(error).toMatchObject({ code: 'DELETION_CONFIG_COMPOSITE_KEY', entity: 'Sheet' });
    expect(error.message).toContain('Sheet');
    expect(recommendation(error)).not.toMatch(UNSUPPORTED);
  });
});
