import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { BigIntType, Collection, EntityCaseNamingStrategy, type EventArgs, type EventSubscriber, type Opt, type Rel } from '@mikro-orm/core';
import { Entity, ManyToOne, OneToMany, PrimaryKey, Property } from '@mikro-orm/decorators/legacy';
import pg from 'pg';
import { DeletionBlockedError, DeletionConfigurationError, ValidateBeforeDestroy, definePolicy, type DeletionStatus } from '../../lib/index.js';
import { RESOLVED_DELETION_OPTIONS } from '../../lib/deletion.constants.js';
import { CascadeBatches } from '../../lib/queue/cascade-batches.js';
import { RequestCompletion } from '../../lib/queue/request-completion.js';
import { RequestRunner, type RunOutcome } from '../../lib/queue/request-runner.js';
import { PolicyRegistry } from '../../lib/registry/policy-registry.js';
import { createDeletionTestApp, type DeletionTestApp } from '../support/deletion-test-app.js';
import { PgAdmin } from '../support/pg-admin.js';
import { databaseUrl } from '../support/services.js';
import { waitForState, waitUntil } from '../support/wait.js';
import { whilePaused } from '../support/worker-control.js';

/**
 * Attacks on three queue changes: the unvalidated `deleteAllAsync` batch chosen through
 * `key = any(array(select …))` (`RelationStatements.deleteNextBatch`), the checked batch deleting the
 * locked rows through `key = any(array(select b."k0" from b))` (`deleteCheckedBatch`), and the request
 * row locked with a plain `select … for update` + `em.map()` and saved with one plain UPDATE per batch
 * (`RequestRunner.step`, `lockRequest`, `updateRequest`).
 *
 * Failing (defects):
 * - D1, D1b: an unvalidated batch that deletes fewer rows than it chose (a chosen row moved to another
 *   parent, or deleted, by a transaction the batch waited for) is taken for the last one
 *   (`done: count < size`): the request completes and the parent's remaining children stay.
 * - C1: with MikroORM's `disableIdentityMap: true`, `em.map()` and `findOne()` return entities no
 *   entity manager tracks, so the steps that save the request through the unit of work wrote nothing
 *   (announced completed, `running` forever): the option is now refused at boot.
 * Held (shapes and interleavings not covered elsewhere): D2, S1, S2, R0-R4.
 */
const MAIN = 'deletion_qsa_main';

const HELD = 'held rows are kept';
const fk = { createForeignKeyConstraint: false, index: true } as const;

// ---- Unvalidated deleteAllAsync (deleteNextBatch), integer key
@Entity({ tableName: 'qsa_box' })
class QsaBox {
  @PrimaryKey({ autoincrement: false })
  id!: number;

  @OneToMany(() => QsaLog, (log) => log.box)
  logs = new Collection<QsaLog>(this);

  @OneToMany(() => QsaNote, (note) => note.box)
  notes = new Collection<QsaNote>(this);
}

@Entity({ tableName: 'qsa_log' })
class QsaLog {
  @PrimaryKey({ autoincrement: false })
  id!: number;

  @ManyToOne(() => QsaBox, fk)
  box!: Rel<QsaBox>;
}

// ---- Checked deleteAllAsync (deleteCheckedBatch), integer key
@Entity({ tableName: 'qsa_note' })
@ValidateBeforeDestroy<QsaNote>({ where: { held: true }, message: HELD })
class QsaNote {
  @PrimaryKey({ autoincrement: false })
  id!: number;

  @Property({ default: false })
  held: Opt<boolean> = false;

  @ManyToOne(() => QsaBox, fk)
  box!: Rel<QsaBox>;
}

// ---- bigint keys past 2^53 (JS bigint) and bigint-as-string, both paths
@Entity({ tableName: 'qsa_big_box' })
class QsaBigBox {
  @PrimaryKey({ type: new BigIntType('bigint'), autoincrement: false })
  id!: bigint;

  @OneToMany(() => QsaBigLog, (log) => log.box)
  logs = new Collection<QsaBigLog>(this);

  @OneToMany(() => QsaBigNote, (note) => note.box)
  notes = new Collection<QsaBigNote>(this);
}

@Entity({ tableName: 'qsa_big_log' })
class QsaBigLog {
  @PrimaryKey({ type: new BigIntType('bigint'), autoincrement: false })
  id!: bigint;

  @ManyToOne(() => QsaBigBox, fk)
  box!: Rel<QsaBigBox>;
}

@Entity({ tableName: 'qsa_big_note' })
@ValidateBeforeDestroy<QsaBigNote>({ where: { held: true }, message: HELD })
class QsaBigNote {
  @PrimaryKey({ type: new BigIntType('string'), autoincrement: false })
  id!: string;

  @Property({ default: false })
  held: Opt<boolean> = false;

  @ManyToOne(() => QsaBigBox, fk)
  box!: Rel<QsaBigBox>;
}

// ---- varchar keys with quotes, spaces, '?', backslashes; uuid keys
@Entity({ tableName: 'qsa_str_box' })
class QsaStrBox {
  @PrimaryKey({ type: 'string', length: 80 })
  id!: string;

  @OneToMany(() => QsaStrLog, (log) => log.box)
  logs = new Collection<QsaStrLog>(this);

  @OneToMany(() => QsaStrNote, (note) => note.box)
  notes = new Collection<QsaStrNote>(this);

  @OneToMany(() => QsaUuidLog, (log) => log.box)
  uuids = new Collection<QsaUuidLog>(this);
}

@Entity({ tableName: 'qsa_str_log' })
class QsaStrLog {
  @PrimaryKey({ type: 'string', length: 80 })
  id!: string;

  @ManyToOne(() => QsaStrBox, fk)
  box!: Rel<QsaStrBox>;
}

@Entity({ tableName: 'qsa_str_note' })
@ValidateBeforeDestroy<QsaStrNote>({ where: { held: true }, message: HELD })
class QsaStrNote {
  @PrimaryKey({ type: 'text' })
  id!: string;

  @Property({ default: false })
  held: Opt<boolean> = false;

  @ManyToOne(() => QsaStrBox, fk)
  box!: Rel<QsaStrBox>;
}

@Entity({ tableName: 'qsa_uuid_log' })
@ValidateBeforeDestroy<QsaUuidLog>({ where: { held: true }, message: HELD })
class QsaUuidLog {
  @PrimaryKey({ type: 'uuid' })
  id!: string;

  @Property({ default: false })
  held: Opt<boolean> = false;

  @ManyToOne(() => QsaStrBox, fk)
  box!: Rel<QsaStrBox>;
}

// ---- single-table inheritance: relations typed to subclasses over one base column
@Entity({ tableName: 'qsa_pen' })
class QsaPen {
  @PrimaryKey({ autoincrement: false })
  id!: number;

  @OneToMany(() => QsaDog, (dog) => dog.pen)
  dogs = new Collection<QsaDog>(this);

  @OneToMany(() => QsaCat, (cat) => cat.pen)
  cats = new Collection<QsaCat>(this);
}

@Entity({ tableName: 'qsa_animal', discriminatorColumn: 'kind', discriminatorMap: { dog: 'QsaDog', cat: 'QsaCat' } })
class QsaAnimal {
  @PrimaryKey({ autoincrement: false })
  id!: number;

  @Property()
  kind!: string;

  @Property({ default: false })
  held: Opt<boolean> = false;

  @ManyToOne(() => QsaPen, fk)
  pen!: Rel<QsaPen>;
}

@Entity({ discriminatorValue: 'dog' })
@ValidateBeforeDestroy<QsaDog>({ where: { held: true }, message: HELD })
class QsaDog extends QsaAnimal {}

@Entity({ discriminatorValue: 'cat' })
class QsaCat extends QsaAnimal {}

// ---- a child table in another schema, with identifiers that need quoting
@Entity({ tableName: 'qsa_odd_box' })
class QsaOddBox {
  @PrimaryKey({ autoincrement: false })
  id!: number;

  @OneToMany(() => QsaOddLog, (log) => log.box)
  logs = new Collection<QsaOddLog>(this);

  @OneToMany(() => QsaOddNote, (note) => note.box)
  notes = new Collection<QsaOddNote>(this);
}

@Entity({ schema: 'qsa other', tableName: 'odd "log"' })
class QsaOddLog {
  @PrimaryKey({ autoincrement: false, fieldName: 'Key Col' })
  id!: number;

  @ManyToOne(() => QsaOddBox, { ...fk, fieldName: 'Box Ref' })
  box!: Rel<QsaOddBox>;
}

@Entity({ schema: 'qsa other', tableName: 'odd "note"' })
@ValidateBeforeDestroy<QsaOddNote>({ where: { held: true }, message: HELD })
class QsaOddNote {
  @PrimaryKey({ autoincrement: false, fieldName: 'Note KEY' })
  id!: number;

  @Property({ default: false, fieldName: 'Held"Flag' })
  held: Opt<boolean> = false;

  @ManyToOne(() => QsaOddBox, { ...fk, fieldName: 'Box Ref' })
  box!: Rel<QsaOddBox>;
}

// ---- batches larger than PostgreSQL's 32,767 bound parameters
const BULK_BATCH = 40_000;

@Entity({ tableName: 'qsa_bulk_box' })
class QsaBulkBox {
  @PrimaryKey({ autoincrement: false })
  id!: number;

  @OneToMany(() => QsaBulkLog, (log) => log.box)
  logs = new Collection<QsaBulkLog>(this);

  @OneToMany(() => QsaBulkNote, (note) => note.box)
  notes = new Collection<QsaBulkNote>(this);
}

@Entity({ tableName: 'qsa_bulk_log' })
class QsaBulkLog {
  @PrimaryKey({ autoincrement: false })
  id!: number;

  @ManyToOne(() => QsaBulkBox, fk)
  box!: Rel<QsaBulkBox>;
}

@Entity({ tableName: 'qsa_bulk_note' })
@ValidateBeforeDestroy<QsaBulkNote>({ where: { held: true }, message: HELD })
class QsaBulkNote {
  @PrimaryKey({ autoincrement: false })
  id!: number;

  @Property({ default: false })
  held: Opt<boolean> = false;

  @ManyToOne(() => QsaBulkBox, fk)
  box!: Rel<QsaBulkBox>;
}

const MAIN_ENTITIES = [
  QsaBox,
  QsaLog,
  QsaNote,
  QsaBigBox,
  QsaBigLog,
  QsaBigNote,
  QsaStrBox,
  QsaStrLog,
  QsaStrNote,
  QsaUuidLog,
  QsaPen,
  QsaAnimal,
  QsaDog,
  QsaCat,
  QsaOddBox,
  QsaOddLog,
  QsaOddNote,
  QsaBulkBox,
  QsaBulkLog,
  QsaBulkNote,
];

let app: DeletionTestApp;
let admin: PgAdmin;

beforeAll(async () => {
  app = await createDeletionTestApp({
    database: MAIN,
    entities: MAIN_ENTITIES,
    deletion: {
      batchSize: 3,
      queue: { attempts: 1 },
      policies: [
        definePolicy(QsaBox, { logs: 'deleteAllAsync', notes: 'deleteAllAsync' }),
        definePolicy(QsaBigBox, { logs: { policy: 'deleteAllAsync', batchSize: 2 }, notes: { policy: 'deleteAllAsync', batchSize: 2 } }),
        definePolicy(QsaStrBox, {
          logs: { policy: 'deleteAllAsync', batchSize: 2 },
          notes: { policy: 'deleteAllAsync', batchSize: 2 },
          uuids: { policy: 'deleteAllAsync', batchSize: 2 },
        }),
        definePolicy(QsaPen, { dogs: { policy: 'deleteAllAsync', batchSize: 2 }, cats: { policy: 'deleteAllAsync', batchSize: 2 } }),
        definePolicy(QsaOddBox, { logs: { policy: 'deleteAllAsync', batchSize: 2 }, notes: { policy: 'deleteAllAsync', batchSize: 2 } }),
        definePolicy(QsaBulkBox, { logs: { policy: 'deleteAllAsync', batchSize: BULK_BATCH }, notes: { policy: 'deleteAllAsync', batchSize: BULK_BATCH } }),
      ],
    },
  });
  admin = await PgAdmin.connect(MAIN);
});
afterAll(async () => {
  await admin?.close();
  await app?.close();
});

async function sql<T extends Record<string, unknown>>(text: string, params: unknown[] = []): Promise<T[]> {
  return app.em().getConnection().execute<T[]>(text, params);
}

const column = async (text: string, params: unknown[] = []): Promise<unknown[]> => (await sql(text, params)).map((row) => Object.values(row)[0]);

/** Destroys a parent with the worker paused, runs `meanwhile`, lets the worker go, runs `settled`, and waits for the request to settle. */
async function destroyAndSettle(
  entity: Parameters<DeletionTestApp['deletions']['destroy']>[0],
  id: unknown,
  meanwhile: () => Promise<void> = async () => undefined,
  settled: () => Promise<void> = async () => undefined,
): Promise<{ requestId: string; status: DeletionStatus }> {
  const requestId = await whilePaused(app, async () => {
    const receipt = await app.deletions.destroy(entity, id as never);
    expect(receipt.status).toBe('pending');
    await meanwhile();
    return receipt.requestId!;
  });
  await settled();
  return { requestId, status: await waitForState(app.deletions, requestId) };
}

/** A transaction of the test's own on the main database, holding its row locks until `commit()`. */
async function openTransaction(statement: string, params: unknown[] = []): Promise<{ commit(): Promise<void> }> {
  const client = new pg.Client({ connectionString: databaseUrl(MAIN) });
  client.on('error', () => undefined);
  await client.connect();
  await client.query('begin');
  await client.query(statement, params);
  return {
    commit: async () => {
      await client.query('commit').catch(() => undefined);
      await client.end().catch(() => undefined);
    },
  };
}

/** Waits until the cascade's batch waits for a row lock in a statement on `table`. */
async function batchWaitsOn(table: string): Promise<string> {
  let waiting: string | undefined;
  await waitUntil(
    async () => {
      const rows = await admin.query<{ query: string }>(`select query from pg_stat_activity where datname = $1 and wait_event_type = 'Lock'`, [MAIN]);
      waiting = rows.find((row) => row.query.includes(table))?.query;
      return waiting !== undefined;
    },
    10_000,
    `the batch to wait for a row lock on ${table}`,
  );
  return waiting!;
}

/*
 * D1/D1b. The batch chooses its rows in a snapshot (`= any(array(select … limit n))`, unlocked) and the
 * DELETE re-checks each row it waited for: a row moved away meanwhile stays (right), a row deleted
 * meanwhile is skipped. Either way the statement deletes fewer than `n` rows, and `CascadeBatches`
 * reads that as the end of the relation (`done: count < size`), though the rows after the batch were
 * never looked at. The same held for the `in (select …)` form before today's change.
 */
describe('D1: unvalidated deleteAllAsync batch (deleteNextBatch), a chosen row changed by another transaction while the batch waits', () => {
  it('a row of the first batch moved to a surviving parent: it stays, and every other child of the deleted parent is deleted', async () => {
    await sql('insert into qsa_box (id) values (1), (2)');
    await sql('insert into qsa_log (id, box_id) select g, 1 from generate_series(1, 7) g');
    let move: { commit(): Promise<void> } | undefined;
    let waited = '';
    const { status } = await destroyAndSettle(
      QsaBox,
      1,
      async () => {
        move = await openTransaction('update qsa_log set box_id = 2 where id = 2');
      },
      async () => {
        try {
          waited = await batchWaitsOn('"qsa_log"');
        } finally {
          await move!.commit();
        }
      },
    );
    expect(waited).toMatch(/^with b as \(select .* from "qsa_log" as v where .* limit \S+\), gone as \(delete from "qsa_log" as v where .* = any\(array\(select b\."k0" from b\)\)/s);
    expect(await column('select id from qsa_log where box_id = 2 order by id')).toEqual([2]);
    expect(await column('select id from qsa_log where box_id = 1 order by id')).toEqual([]);
    expect(status.state).toBe('completed');
    expect(status.progress).toContainEqual({ path: 'QsaBox.logs', entity: 'QsaLog', policy: 'deleteAllAsync', processed: 6, done: true });
  });
});

describe('D1b: the same batch, a chosen row deleted by another transaction while the batch waits', () => {
  it('every other child of the deleted parent is still deleted', async () => {
    await sql('insert into qsa_box (id) values (11), (12)');
    await sql('insert into qsa_log (id, box_id) select g, 11 from generate_series(101, 107) g');
    await sql('insert into qsa_log (id, box_id) values (108, 12)');
    let gone: { commit(): Promise<void> } | undefined;
    const { status } = await destroyAndSettle(
      QsaBox,
      11,
      async () => {
        gone = await openTransaction('delete from qsa_log where id = 102');
      },
      async () => {
        try {
          await batchWaitsOn('"qsa_log"');
        } finally {
          await gone!.commit();
        }
      },
    );
    expect(await column('select id from qsa_log where box_id = 11 order by id')).toEqual([]);
    expect(await column('select id from qsa_log where box_id = 12 order by id')).toEqual([108]);
    expect(status.state).toBe('completed');
    expect(status.progress).toContainEqual({ path: 'QsaBox.logs', entity: 'QsaLog', policy: 'deleteAllAsync', processed: 6, done: true });
  });
});

describe('D2 (held): checked deleteAllAsync batch (deleteCheckedBatch), a locked row moved away while the batch waits', () => {
  it('the moved row stays under its new parent; the batch takes the next row in its place and the rest are deleted', async () => {
    await sql('insert into qsa_box (id) values (21), (22)');
    await sql('insert into qsa_note (id, box_id) select g, 21 from generate_series(201, 207) g');
    let move: { commit(): Promise<void> } | undefined;
    let waited = '';
    const { status } = await destroyAndSettle(
      QsaBox,
      21,
      async () => {
        move = await openTransaction('update qsa_note set box_id = 22 where id = 202');
      },
      async () => {
        try {
          waited = await batchWaitsOn('"qsa_note"');
        } finally {
          await move!.commit();
        }
      },
    );
    expect(waited).toMatch(/^with b as \(select .* for update of v\), gone as \(delete from "qsa_note" as d where d\."id" = any\(array\(select b\."k0" from b\)\)/s);
    expect(await column('select id from qsa_note where box_id = 22 order by id')).toEqual([202]);
    expect(await column('select id from qsa_note where box_id = 21 order by id')).toEqual([]);
    expect(status.state).toBe('completed');
    expect(status.progress).toContainEqual({ path: 'QsaBox.notes', entity: 'QsaNote', policy: 'deleteAllAsync', processed: 6, done: true });
  });
});

/** Statements of the unvalidated batch (`= any(array(select …))`) and of the checked one on `table`. */
const arrayBatches = (statements: readonly string[], table: string) =>
  statements.filter((s) => s.startsWith('with b as (') && s.includes(`gone as (delete from ${table} as v where `) && s.includes(' = any(array(select b."k0" from b))'));
const checkedBatches = (statements: readonly string[], table: string) =>
  statements.filter((s) => s.startsWith('with b as (') && s.includes(`gone as (delete from ${table} as d where `) && s.includes(' = any(array(select b."k0" from b))'));

async function recorded<T>(fn: () => Promise<T>): Promise<{ result: T; statements: string[] }> {
  return app.queries.record(fn);
}

describe('S1 (held): key shapes through both array batches', () => {
  it('bigint keys past 2^53 (JS bigint, and bigint as string): each row deleted exactly, neighbours one apart kept', async () => {
    const box = TWO_53 + 11n;
    const other = TWO_53 + 12n;
    await sql('insert into qsa_big_box (id) values (?), (?)', [box.toString(), other.toString()]);
    // Keys one apart under both parents: a key rounded through a double would hit a neighbour.
    const keys = (base: bigint, n: number) => Array.from({ length: n }, (_, i) => (base + BigInt(i)).toString());
    const target = keys(TWO_53 + 1n, 5).filter((_, i) => i % 2 === 0); // +1, +3, +5
    const kept = keys(TWO_53 + 1n, 5).filter((_, i) => i % 2 === 1); // +2, +4
    for (const table of ['qsa_big_log', 'qsa_big_note']) {
      for (const id of target) await sql(`insert into ${table} (id, box_id) values (?, ?)`, [id, box.toString()]);
      for (const id of kept) await sql(`insert into ${table} (id, box_id) values (?, ?)`, [id, other.toString()]);
    }
    const { result, statements } = await recorded(() => destroyAndSettle(QsaBigBox, box));
    expect(result.status.state).toBe('completed');
    expect(result.status.ids).toEqual([box.toString()]);
    expect(result.status.progress).toEqual([
      { path: 'QsaBigBox.logs', entity: 'QsaBigLog', policy: 'deleteAllAsync', processed: 3, done: true },
      { path: 'QsaBigBox.notes', entity: 'QsaBigNote', policy: 'deleteAllAsync', processed: 3, done: true },
    ]);
    for (const table of ['qsa_big_log', 'qsa_big_note']) {
      expect(await column(`select id::text from ${table} order by id`)).toEqual(kept);
    }
    expect(arrayBatches(statements, '"qsa_big_log"')).toHaveLength(2);
    expect(checkedBatches(statements, '"qsa_big_note"')).toHaveLength(2);
  });

  it("varchar and text keys with quotes, spaces, '?', backslashes and unicode, and uuid keys", async () => {
    const box = `box 'one' ? \\`;
    const other = `box 'one' ? \\ `; // differs by a trailing space
    await sql('insert into qsa_str_box (id) values (?), (?)', [box, other]);
    const target = [`a'b`, `a b`, `a?b`, `a\\b`, `ä "b"`];
    const kept = [`a'b `, `A B`, `a??b`];
    for (const table of ['qsa_str_log', 'qsa_str_note']) {
      for (const id of target) await sql(`insert into ${table} (id, box_id) values (?, ?)`, [id, box]);
      for (const id of kept) await sql(`insert into ${table} (id, box_id) values (?, ?)`, [id, other]);
    }
    const uuids = ['00000000-0000-4000-8000-000000000003', 'ffffffff-0000-4000-8000-000000000001', '7fffffff-0000-4000-8000-000000000002'];
    for (const id of uuids) await sql('insert into qsa_uuid_log (id, box_id) values (?, ?)', [id, box]);
    await sql('insert into qsa_uuid_log (id, box_id) values (?, ?)', ['80000000-0000-4000-8000-000000000009', other]);
    const { result, statements } = await recorded(() => destroyAndSettle(QsaStrBox, box));
    expect(result.status.state).toBe('completed');
    expect(result.status.progress).toEqual([
      { path: 'QsaStrBox.logs', entity: 'QsaStrLog', policy: 'deleteAllAsync', processed: 5, done: true },
      { path: 'QsaStrBox.notes', entity: 'QsaStrNote', policy: 'deleteAllAsync', processed: 5, done: true },
      { path: 'QsaStrBox.uuids', entity: 'QsaUuidLog', policy: 'deleteAllAsync', processed: 3, done: true },
    ]);
    for (const table of ['qsa_str_log', 'qsa_str_note']) {
      expect((await column(`select id from ${table}`)).sort()).toEqual([...kept].sort());
    }
    expect(await column('select id from qsa_uuid_log')).toEqual(['80000000-0000-4000-8000-000000000009']);
    expect(arrayBatches(statements, '"qsa_str_log"')).toHaveLength(3);
    expect(checkedBatches(statements, '"qsa_str_note"')).toHaveLength(3);
    expect(checkedBatches(statements, '"qsa_uuid_log"')).toHaveLength(2);
  });

  it('single-table inheritance: relations typed to Dog (checked) and Cat (unvalidated) over one base column delete only their subclass', async () => {
    await sql('insert into qsa_pen (id) values (1), (2)');
    // Dogs and cats interleaved in key order under pen 1; a held cat (held only blocks dogs).
    await sql(`insert into qsa_animal (id, kind, pen_id, held) values
      (1, 'dog', 1, false), (2, 'cat', 1, true), (3, 'dog', 1, false), (4, 'cat', 1, false), (5, 'dog', 1, false),
      (6, 'cat', 1, false), (7, 'dog', 2, false), (8, 'cat', 2, false)`);
    const { result, statements } = await recorded(() => destroyAndSettle(QsaPen, 1));
    expect(result.status.state).toBe('completed');
    expect(result.status.progress).toEqual([
      { path: 'QsaPen.cats', entity: 'QsaCat', policy: 'deleteAllAsync', processed: 3, done: true },
      { path: 'QsaPen.dogs', entity: 'QsaDog', policy: 'deleteAllAsync', processed: 3, done: true },
    ]);
    expect(await column('select id from qsa_animal order by id')).toEqual([7, 8]);
    expect(checkedBatches(statements, '"qsa_animal"')).toHaveLength(2);
    expect(arrayBatches(statements, '"qsa_animal"')).toHaveLength(2);
  });

  it('a child table in another schema with identifiers that need quoting (table, key and foreign-key columns)', async () => {
    await sql('insert into qsa_odd_box (id) values (1), (2)');
    await sql(`insert into "qsa other"."odd ""log""" ("Key Col", "Box Ref") select g, case when g % 4 = 0 then 2 else 1 end from generate_series(1, 8) g`);
    await sql(`insert into "qsa other"."odd ""note""" ("Note KEY", "Box Ref") select g, case when g % 4 = 0 then 2 else 1 end from generate_series(1, 8) g`);
    const { result, statements } = await recorded(() => destroyAndSettle(QsaOddBox, 1));
    expect(result.status.state).toBe('completed');
    expect(result.status.progress).toEqual([
      { path: 'QsaOddBox.logs', entity: 'QsaOddLog', policy: 'deleteAllAsync', processed: 6, done: true },
      { path: 'QsaOddBox.notes', entity: 'QsaOddNote', policy: 'deleteAllAsync', processed: 6, done: true },
    ]);
    expect(await column(`select "Key Col" from "qsa other"."odd ""log""" order by 1`)).toEqual([4, 8]);
    expect(await column(`select "Note KEY" from "qsa other"."odd ""note""" order by 1`)).toEqual([4, 8]);
    // Six rows in batches of 2: three full batches, then an empty one that finds the relation done.
    expect(arrayBatches(statements, '"qsa other"."odd ""log"""')).toHaveLength(4);
    expect(checkedBatches(statements, '"qsa other"."odd ""note"""')).toHaveLength(4);
  });
});

describe('S2 (held): a batch of 40,000 rows (past 32,767 bound parameters) on both array paths', () => {
  it('deletes 40,000 + 5 children of each relation in two batches, keeps the bystander, and counts them', async () => {
    await sql('insert into qsa_bulk_box (id) values (1), (2)');
    await sql(`insert into qsa_bulk_log (id, box_id) select g, case when g % 10000 = 0 then 2 else 1 end from generate_series(1, 40009) g`);
    await sql(`insert into qsa_bulk_note (id, box_id) select g, case when g % 10000 = 0 then 2 else 1 end from generate_series(1, 40009) g`);
    const { result, statements } = await recorded(() => destroyAndSettle(QsaBulkBox, 1));
    expect(result.status.state).toBe('completed');
    expect(result.status.progress).toEqual([
      { path: 'QsaBulkBox.logs', entity: 'QsaBulkLog', policy: 'deleteAllAsync', processed: 40005, done: true },
      { path: 'QsaBulkBox.notes', entity: 'QsaBulkNote', policy: 'deleteAllAsync', processed: 40005, done: true },
    ]);
    expect(await column('select id from qsa_bulk_log order by id')).toEqual([10000, 20000, 30000, 40000]);
    expect(await column('select id from qsa_bulk_note order by id')).toEqual([10000, 20000, 30000, 40000]);
    expect(arrayBatches(statements, '"qsa_bulk_log"')).toHaveLength(2);
    expect(checkedBatches(statements, '"qsa_bulk_note"')).toHaveLength(2);
  });
});


// =====================================================================================================
// The request row's plain lock and UPDATE, under ORM options the statements must follow: a global
// `schema`, EntityCaseNamingStrategy (camelCase columns: "rootId", "parentIds", "startedAt" …) and
// forceUtcTimezone. No worker: the test drives the queue's RequestRunner one batch at a time.
// =====================================================================================================
const CFG = 'deletion_qsa_cfg';
const CFG_SCHEMA = 'qsa_app';

@Entity({ tableName: 'cfg_vault' })
class CfgVault {
  @PrimaryKey({ autoincrement: false })
  id!: number;

  @Property({ type: 'datetime', nullable: true })
  deletedAt?: Date | null;

  @OneToMany(() => CfgItem, (item) => item.vault)
  items = new Collection<CfgItem>(this);

  @OneToMany(() => CfgLog, (log) => log.vault)
  logs = new Collection<CfgLog>(this);
}

@Entity({ tableName: 'cfg_item' })
class CfgItem {
  @PrimaryKey({ autoincrement: false })
  id!: number;

  // Tombstone mode: a plain NO ACTION constraint stays.
  @ManyToOne(() => CfgVault, { fieldName: 'vault_id', deleteRule: 'no action' })
  vault!: Rel<CfgVault>;

  @OneToMany(() => CfgPart, (part) => part.item)
  parts = new Collection<CfgPart>(this);

  @OneToMany(() => CfgTag, (tag) => tag.item)
  tags = new Collection<CfgTag>(this);
}

@Entity({ tableName: 'cfg_part' })
class CfgPart {
  @PrimaryKey({ autoincrement: false })
  id!: number;

  @ManyToOne(() => CfgItem, { fieldName: 'item_id', createForeignKeyConstraint: false, index: true })
  item!: Rel<CfgItem>;
}

@Entity({ tableName: 'cfg_tag' })
class CfgTag {
  @PrimaryKey({ autoincrement: false })
  id!: number;

  @ManyToOne(() => CfgItem, { fieldName: 'item_id', deleteRule: 'no action' })
  item!: Rel<CfgItem>;
}

@Entity({ tableName: 'cfg_log' })
@ValidateBeforeDestroy<CfgLog>({ where: { held: true }, message: HELD })
class CfgLog {
  @PrimaryKey({ autoincrement: false })
  id!: number;

  @Property({ default: false })
  held: Opt<boolean> = false;

  @ManyToOne(() => CfgVault, { fieldName: 'vault_id', deleteRule: 'no action' })
  vault!: Rel<CfgVault>;
}

// A parent without tombstone, batches of one: nullifyThenPurge (cursor: orphan record ids) and destroyAsync.
@Entity({ tableName: 'cfg_shed' })
class CfgShed {
  @PrimaryKey({ autoincrement: false })
  id!: number;

  @OneToMany(() => CfgBin, (bin) => bin.shed)
  bins = new Collection<CfgBin>(this);

  @OneToMany(() => CfgCrate, (crate) => crate.shed)
  crates = new Collection<CfgCrate>(this);
}

@Entity({ tableName: 'cfg_bin' })
class CfgBin {
  @PrimaryKey({ type: new BigIntType('bigint'), autoincrement: false })
  id!: bigint;

  @ManyToOne(() => CfgShed, { fieldName: 'shed_id', nullable: true, createForeignKeyConstraint: false, index: true })
  shed?: Rel<CfgShed> | null;
}

@Entity({ tableName: 'cfg_crate' })
class CfgCrate {
  @PrimaryKey({ type: 'string', length: 40 })
  id!: string;

  @ManyToOne(() => CfgShed, { fieldName: 'shed_id', createForeignKeyConstraint: false, index: true })
  shed!: Rel<CfgShed>;
}

/** Every CfgItem and CfgCrate the ORM deleted, as its afterDelete saw it. */
const deletedRows: string[] = [];
const deleteRecorder: EventSubscriber = {
  getSubscribedEntities: () => [CfgItem, CfgCrate],
  afterDelete: (args: EventArgs<object>) => {
    deletedRows.push(`${args.meta.className}:${String((args.entity as { id: unknown }).id)}`);
  },
};

let cfg: DeletionTestApp;

/** A RequestRunner of the test's own that stops after each batch: `run()` is then one batch. */
function runner(oneBatch = true): RequestRunner {
  const built = new RequestRunner(
    cfg.orm,
    cfg.module.get(PolicyRegistry),
    cfg.module.get(CascadeBatches),
    cfg.module.get(RequestCompletion),
    cfg.module.get(RESOLVED_DELETION_OPTIONS),
  );
  if (oneBatch) {
    built.stop();
  }
  return built;
}

async function cfgSql<T extends Record<string, unknown>>(text: string, params: unknown[] = []): Promise<T[]> {
  return cfg.em().getConnection().execute<T[]>(text, params);
}

const cfgColumn = async (text: string, params: unknown[] = []): Promise<unknown[]> => (await cfgSql(text, params)).map((row) => Object.values(row)[0]);

interface RequestRow extends Record<string, unknown> {
  state: string;
  progress: Record<string, { cursor: unknown; processed: number; done: boolean; walks?: number }>;
  startedAt: Date | null;
  ownWorkDone: boolean;
}

async function requestRow(id: string): Promise<RequestRow> {
  const [row] = await cfgSql<RequestRow>(`select "state", "progress", "startedAt", "ownWorkDone" from ${CFG_SCHEMA}.deletion_request where "id" = ?`, [id]);
  // Raw statements get timestamps as PostgreSQL's text (MikroORM's type parsers).
  return { ...row!, startedAt: row!.startedAt === null ? null : new Date(row!.startedAt as unknown as string) };
}

/** Runs batches of `requestId` until it stops asking for more; returns the outcomes in order. */
async function drain(requestId: string, steps = 40): Promise<RunOutcome['kind'][]> {
  const outcomes: RunOutcome['kind'][] = [];
  const one = runner();
  for (let i = 0; i < steps; i++) {
    const outcome = await one.run(requestId);
    outcomes.push(outcome.kind);
    if (outcome.kind !== 'interrupted') {
      return outcomes;
    }
  }
  throw new Error(`request ${requestId} still running after ${steps} batches: ${outcomes.join(', ')}`);
}

/** The open child requests of a deletion (nested requests filed by its batches). */
const openChildren = async (rootId: string): Promise<string[]> =>
  (await cfgColumn(`select "id" from ${CFG_SCHEMA}.deletion_request where "rootId" = ? and "id" <> "rootId" and "state" <> 'completed' order by "createdAt", "id"`, [rootId])) as string[];

/** Request-row statements of a recording: the plain UPDATE of a batch and any other UPDATE (a flush's). */
const requestUpdates = (statements: readonly string[]) => statements.filter((s) => /^update "qsa_app"\."deletion_request"/.test(s));

beforeAll(async () => {
  cfg = await createDeletionTestApp({
    database: CFG,
    entities: [CfgVault, CfgItem, CfgPart, CfgTag, CfgLog, CfgShed, CfgBin, CfgCrate],
    orm: { schema: CFG_SCHEMA, namingStrategy: EntityCaseNamingStrategy, forceUtcTimezone: true },
    deletion: {
      worker: false,
      batchSize: 2,
      policies: [
        definePolicy(CfgVault, { items: 'destroyAsync', logs: 'deleteAllAsync' }, { tombstone: 'deletedAt' }),
        definePolicy(CfgItem, { parts: 'deleteAllAsync', tags: 'deleteAll' }),
        definePolicy(CfgShed, { bins: { policy: 'nullifyThenPurge', batchSize: 1 }, crates: { policy: 'destroyAsync', batchSize: 1 } }),
      ],
    },
  });
  cfg.orm.em.getEventManager().registerSubscriber(deleteRecorder);
});
afterAll(async () => {
  await cfg?.close();
});

describe('R0 (held): the request table under a global schema and EntityCaseNamingStrategy', () => {
  it('sanity: it is in the global schema, with camelCase columns', async () => {
    const columns = await cfgColumn(`select column_name from information_schema.columns where table_schema = ? and table_name = 'deletion_request' order by column_name`, [CFG_SCHEMA]);
    expect(columns).toEqual(expect.arrayContaining(['rootId', 'parentIds', 'ownWorkDone', 'startedAt', 'updatedAt', 'progress', 'state']));
  });
});

const Q = CFG_SCHEMA;

async function seedVault(id: number, items: readonly number[], logs: readonly number[]): Promise<void> {
  await cfgSql(`insert into ${Q}.cfg_vault ("id") values (?)`, [id]);
  for (const item of items) {
    await cfgSql(`insert into ${Q}.cfg_item ("id", "vault_id") values (?, ?)`, [item, id]);
    await cfgSql(`insert into ${Q}.cfg_part ("id", "item_id") values (?, ?), (?, ?)`, [item * 10 + 1, item, item * 10 + 2, item]);
    await cfgSql(`insert into ${Q}.cfg_tag ("id", "item_id") values (?, ?)`, [item * 10 + 1, item]);
  }
  for (const log of logs) {
    await cfgSql(`insert into ${Q}.cfg_log ("id", "vault_id") values (?, ?)`, [log, id]);
  }
}

describe('R1 (held): tombstone mode, late children reopening a relation whose batches were saved by plain UPDATEs', () => {
  it('walks the late child, runs the nested requests, hard-deletes the vault last, and reports every path', async () => {
    deletedRows.length = 0;
    await seedVault(1, [1, 2, 3, 4, 5], [1, 2, 3]);
    await seedVault(2, [100], [100]);
    const receipt = await cfg.deletions.destroy(CfgVault, 1);
    expect(receipt.status).toBe('pending');
    const requestId = receipt.requestId!;

    // Batch 1: items 1 and 2, in one plain UPDATE of the request row (no flush of the mapped entity after it).
    const first = await cfg.queries.record(() => runner().run(requestId));
    expect(first.result.kind).toBe('interrupted');
    const updates = requestUpdates(first.statements);
    expect(updates).toEqual(['update "qsa_app"."deletion_request" set "state" = ?, "startedAt" = ?, "updatedAt" = ?, "progress" = ? where "id" = ?']);
    const afterFirst = await requestRow(requestId);
    expect(afterFirst.state).toBe('running');
    expect(afterFirst.startedAt).not.toBeNull();
    expect(afterFirst.progress.items).toMatchObject({ cursor: 2, processed: 2, done: false });
    expect(afterFirst.progress['items.tags']).toMatchObject({ processed: 2, done: false });
    expect(deletedRows.sort()).toEqual(['CfgItem:1', 'CfgItem:2']);

    // A late child behind the cursor (the vault row still exists, tombstoned: the FK accepts it).
    await cfgSql(`insert into ${Q}.cfg_item ("id", "vault_id") values (0, 1)`);
    await cfgSql(`insert into ${Q}.cfg_part ("id", "item_id") values (1, 0)`);

    expect((await drain(requestId)).at(-1)).toBe('waiting');
    const own = await requestRow(requestId);
    expect(own.ownWorkDone).toBe(true);
    expect(own.progress.items).toMatchObject({ processed: 6, done: true, walks: 2 });
    expect(await cfgColumn(`select "id" from ${Q}.cfg_vault order by "id"`)).toEqual([1, 2]);

    // The nested requests the item batches filed (their parts), each run to the end.
    const children = await openChildren(requestId);
    expect(children.length).toBeGreaterThan(0);
    for (const child of children) {
      await drain(child);
    }
    const status = await cfg.deletions.status(requestId);
    expect(status.state).toBe('completed');
    expect(status.errors).toEqual([]);
    expect(status.progress).toEqual([
      { path: 'CfgVault.items', entity: 'CfgItem', policy: 'destroyAsync', processed: 6, done: true },
      { path: 'CfgVault.items.parts', entity: 'CfgPart', policy: 'deleteAllAsync', processed: 11, done: true },
      { path: 'CfgVault.items.tags', entity: 'CfgTag', policy: 'deleteAll', processed: 5, done: true },
      { path: 'CfgVault.logs', entity: 'CfgLog', policy: 'deleteAllAsync', processed: 3, done: true },
    ]);
    expect(status.startedAt).toEqual(afterFirst.startedAt);
    expect(status.completedAt!.getTime()).toBeGreaterThanOrEqual(status.startedAt!.getTime());
    expect(await cfgColumn(`select "id" from ${Q}.cfg_vault order by "id"`)).toEqual([2]);
    expect(await cfgColumn(`select "id" from ${Q}.cfg_item order by "id"`)).toEqual([100]);
    expect(await cfgColumn(`select "id" from ${Q}.cfg_part order by "id"`)).toEqual([1001, 1002]);
    expect(await cfgColumn(`select "id" from ${Q}.cfg_tag order by "id"`)).toEqual([1001]);
    expect(await cfgColumn(`select "id" from ${Q}.cfg_log order by "id"`)).toEqual([100]);
    expect(deletedRows.sort()).toEqual(['CfgItem:0', 'CfgItem:1', 'CfgItem:2', 'CfgItem:3', 'CfgItem:4', 'CfgItem:5']);
  });
});

const TWO_53 = 2n ** 53n;
const CRATES = ['c 1', "c'2", 'c?3', 'c\\4'];

async function seedShed(id: number, bins: number, crates: readonly string[]): Promise<void> {
  await cfgSql(`insert into ${Q}.cfg_shed ("id") values (?)`, [id]);
  for (let i = 1; i <= bins; i++) {
    await cfgSql(`insert into ${Q}.cfg_bin ("id", "shed_id") values (?, ?)`, [(TWO_53 + BigInt(id * 100 + i)).toString(), id]);
  }
  for (const crate of crates) {
    await cfgSql(`insert into ${Q}.cfg_crate ("id", "shed_id") values (?, ?)`, [`${id}:${crate}`, id]);
  }
}

describe('R2 (held): a batch whose commit fails after its plain UPDATE (a worker lost between statement and commit)', () => {
  afterAll(async () => {
    await cfgSql(`drop trigger if exists qsa_fail_commit on ${Q}.deletion_request`);
  });

  it('rolls back the rows and the cursor together; the next run resumes from the stored cursor and counts each row once', async () => {
    deletedRows.length = 0;
    await seedShed(1, 2, CRATES);
    await seedShed(2, 1, ['bystander']);
    // Fails at commit, after every statement of the batch ran, when the second crate is recorded.
    await cfgSql(`create or replace function ${Q}.qsa_fail() returns trigger language plpgsql as $$
      begin
        if (new."progress"->'crates'->>'processed') = '2' then raise exception 'qsa: commit refused'; end if;
        return null;
      end $$`);
    await cfgSql(`create constraint trigger qsa_fail_commit after update on ${Q}.deletion_request deferrable initially deferred for each row execute function ${Q}.qsa_fail()`);
    const receipt = await cfg.deletions.destroy(CfgShed, 1);
    const requestId = receipt.requestId!;

    await expect(drain(requestId)).rejects.toThrow(/qsa: commit refused/);
    const stuck = await requestRow(requestId);
    expect(stuck.progress.crates).toMatchObject({ cursor: '1:c 1', processed: 1, done: false });
    expect(stuck.progress.bins).toMatchObject({ processed: 2, done: true });
    expect(await cfgColumn(`select "id" from ${Q}.cfg_crate order by "id"`)).toEqual(["1:c'2", '1:c?3', '1:c\\4', '2:bystander']);

    await cfgSql(`drop trigger qsa_fail_commit on ${Q}.deletion_request`);
    expect((await drain(requestId)).at(-1)).toBe('completed');
    const status = await cfg.deletions.status(requestId);
    expect(status.state).toBe('completed');
    expect(status.progress).toEqual([
      { path: 'CfgShed.bins', entity: 'CfgBin', policy: 'nullifyThenPurge', processed: 2, done: true },
      { path: 'CfgShed.crates', entity: 'CfgCrate', policy: 'destroyAsync', processed: 4, done: true },
    ]);
    expect(await cfgColumn(`select "id" from ${Q}.cfg_crate order by "id"`)).toEqual(['2:bystander']);
    expect(await cfgColumn(`select "id"::text from ${Q}.cfg_bin order by "id"`)).toEqual([(TWO_53 + 201n).toString()]);
    expect(await cfgColumn(`select count(*)::int from ${Q}.deletion_orphan where "requestId" = ?`, [requestId])).toEqual([0]);
  });
});

describe('R3 (held): two runs of the same request at once (a duplicate delivery), each batch serialized on the plain row lock', () => {
  it('every row is processed once and counted once', async () => {
    deletedRows.length = 0;
    const crates = Array.from({ length: 9 }, (_, i) => `k${i}`);
    await seedShed(3, 3, crates);
    const receipt = await cfg.deletions.destroy(CfgShed, 3);
    const requestId = receipt.requestId!;
    const outcomes = await Promise.all([runner(false).run(requestId), runner(false).run(requestId)]);
    expect(outcomes.map((o) => o.kind).sort()).toEqual(['completed', 'finished-before']);
    const status = await cfg.deletions.status(requestId);
    expect(status.state).toBe('completed');
    expect(status.progress).toEqual([
      { path: 'CfgShed.bins', entity: 'CfgBin', policy: 'nullifyThenPurge', processed: 3, done: true },
      { path: 'CfgShed.crates', entity: 'CfgCrate', policy: 'destroyAsync', processed: 9, done: true },
    ]);
    expect(deletedRows.sort()).toEqual(crates.map((c) => `CfgCrate:3:${c}`).sort());
    expect(await cfgColumn(`select count(*)::int from ${Q}.cfg_crate where "shed_id" = 3`)).toEqual([0]);
  });
});

describe('R4 (held): a request refused in the queue, fixed and retried: the plain UPDATE keeps its first start', () => {
  it('startedAt survives the failure and the retry to the millisecond, and the request completes', async () => {
    await seedVault(4, [40], [41, 42, 43]);
    const receipt = await cfg.deletions.destroy(CfgVault, 4);
    const requestId = receipt.requestId!;
    expect((await runner().run(requestId)).kind).toBe('interrupted'); // items: 40, done
    const started = (await requestRow(requestId)).startedAt!;
    await cfgSql(`update ${Q}.cfg_log set "held" = true where "id" = 43`);
    const refusal = await drain(requestId).catch((error: unknown) => error);
    expect(refusal).toBeInstanceOf(DeletionBlockedError);
    await runner().recordFailure(requestId, { message: (refusal as Error).message, code: 'DELETION_BLOCKED' }, true);
    expect((await cfg.deletions.status(requestId)).state).toBe('failed');

    await cfgSql(`update ${Q}.cfg_log set "held" = false where "id" = 43`);
    expect((await cfg.deletions.retry(requestId)).state).toBe('pending');
    const again = await cfg.queries.record(() => runner().run(requestId));
    expect(requestUpdates(again.statements)).toHaveLength(1);
    expect((await requestRow(requestId)).state).toBe('running');
    expect((await requestRow(requestId)).startedAt).toEqual(started);
    await drain(requestId);
    for (const child of await openChildren(requestId)) {
      await drain(child);
    }
    const status = await cfg.deletions.status(requestId);
    expect(status.state).toBe('completed');
    expect(status.startedAt).toEqual(started);
    expect(await cfgColumn(`select count(*)::int from ${Q}.cfg_log where "vault_id" = 4`)).toEqual([0]);
    expect(await cfgColumn(`select count(*)::int from ${Q}.cfg_vault where "id" = 4`)).toEqual([0]);
  });
});


// =====================================================================================================
// MikroORM's global `disableIdentityMap`: em.map() (as findOne() before it) then returns an entity no
// entity manager tracks, and the steps that still save the request through the unit of work
// (completion, reopening) write nothing.
// =====================================================================================================
@Entity({ tableName: 'idm_shed' })
class IdmShed {
  @PrimaryKey({ autoincrement: false })
  id!: number;

  @OneToMany(() => IdmCrate, (crate) => crate.shed)
  crates = new Collection<IdmCrate>(this);
}

@Entity({ tableName: 'idm_crate' })
class IdmCrate {
  @PrimaryKey({ autoincrement: false })
  id!: number;

  @ManyToOne(() => IdmShed, fk)
  shed!: Rel<IdmShed>;
}

describe('C1: MikroORM option disableIdentityMap: true', () => {
  let noMap: DeletionTestApp | undefined;
  let refused: unknown;
  beforeAll(async () => {
    try {
      noMap = await createDeletionTestApp({
        database: 'deletion_qsa_no_identity_map',
        entities: [IdmShed, IdmCrate],
        orm: { disableIdentityMap: true },
        deletion: { queue: { attempts: 1 }, policies: [definePolicy(IdmShed, { crates: { policy: 'destroyAsync', batchSize: 2 } })] },
      });
    } catch (error) {
      refused = error;
    }
  });
  afterAll(async () => {
    await noMap?.close();
  });

  it('is refused at boot: the queue saves its requests through the unit of work, which would track none of them', () => {
    expect(noMap).toBeUndefined();
    expect(refused).toBeInstanceOf(DeletionConfigurationError);
    expect(refused).toMatchObject({ code: 'DELETION_CONFIG_IDENTITY_MAP', option: 'disableIdentityMap' });
    expect((refused as Error).message).toMatch(/disableIdentityMap/);
  });
});
