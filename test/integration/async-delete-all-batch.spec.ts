import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import { Collection, type EntityClass, type Opt, type Primary, type Rel } from '@mikro-orm/core';
import { Entity, ManyToOne, OneToMany, PrimaryKey, Property } from '@mikro-orm/decorators/legacy';
import pg from 'pg';
import { ValidateBeforeDestroy, definePolicy, type DeletionStatus } from '../../lib/index.js';
import { createDeletionTestApp, type DeletionTestApp } from '../support/deletion-test-app.js';
import { PgAdmin } from '../support/pg-admin.js';
import { QueryLog } from '../support/query-log.js';
import { databaseUrl } from '../support/services.js';
import { waitForState, waitUntil } from '../support/wait.js';
import { whilePaused } from '../support/worker-control.js';

/**
 * A queued `deleteAllAsync` batch over children whose validators are all set-based and read the
 * child row alone: it locks, checks and deletes in one statement (`with b as (select … for update
 * of v), gone as (delete … where key = any(array(select … from b)) …)`), deletes nothing when a row of the batch is blocked (the
 * three-statement path then names the blockers), and checks a row as it is after the change it
 * waited for. A validator that reads another row keeps the three-statement path.
 */
const DATABASE = 'deletion_async_delete_all_batch';
const BATCH = 3;

const LOG_FLAGGED = 'flagged logs are kept';
const MEMO_X = 'memos noted x are kept';
const ITEM_KEPT = 'items of a kept category are kept';

// ---- Row-local validator on a boolean column
@Entity({ tableName: 'dab_parent' })
class DabParent {
  @PrimaryKey({ autoincrement: false })
  id!: number;

  @Property()
  name!: string;

  @OneToMany(() => DabLog, (log) => log.parent)
  logs = new Collection<DabLog>(this);
}

@Entity({ tableName: 'dab_log' })
@ValidateBeforeDestroy<DabLog>({ where: { flagged: true }, message: LOG_FLAGGED })
class DabLog {
  @PrimaryKey({ autoincrement: false })
  id!: number;

  @Property({ default: false })
  flagged: Opt<boolean> = false;

  @ManyToOne(() => DabParent, { createForeignKeyConstraint: false, index: true })
  parent!: Rel<DabParent>;
}

// ---- Row-local validator on a nullable column (NULL never matches)
@Entity({ tableName: 'dab_board' })
class DabBoard {
  @PrimaryKey({ autoincrement: false })
  id!: number;

  @OneToMany(() => DabMemo, (memo) => memo.board)
  memos = new Collection<DabMemo>(this);
}

@Entity({ tableName: 'dab_memo' })
@ValidateBeforeDestroy<DabMemo>({ where: { note: 'x' }, message: MEMO_X })
class DabMemo {
  @PrimaryKey({ autoincrement: false })
  id!: number;

  @Property({ type: 'text', nullable: true })
  note?: string | null;

  @ManyToOne(() => DabBoard, { createForeignKeyConstraint: false, index: true })
  board!: Rel<DabBoard>;
}

// ---- A validator that reads another row (a many-to-one's column): not row-local
@Entity({ tableName: 'dab_category' })
class DabCategory {
  @PrimaryKey({ autoincrement: false })
  id!: number;

  @Property()
  name!: string;
}

@Entity({ tableName: 'dab_shelf' })
class DabShelf {
  @PrimaryKey({ autoincrement: false })
  id!: number;

  @OneToMany(() => DabItem, (item) => item.shelf)
  items = new Collection<DabItem>(this);
}

@Entity({ tableName: 'dab_item' })
@ValidateBeforeDestroy<DabItem>({ where: { category: { name: 'keep' } }, message: ITEM_KEPT })
class DabItem {
  @PrimaryKey({ autoincrement: false })
  id!: number;

  @ManyToOne(() => DabCategory, { index: true })
  category!: Rel<DabCategory>;

  @ManyToOne(() => DabShelf, { createForeignKeyConstraint: false, index: true })
  shelf!: Rel<DabShelf>;
}

let app: DeletionTestApp;
let admin: PgAdmin;

beforeAll(async () => {
  app = await createDeletionTestApp({
    database: DATABASE,
    entities: [DabParent, DabLog, DabBoard, DabMemo, DabCategory, DabShelf, DabItem],
    deletion: {
      policies: [
        definePolicy(DabParent, { logs: { policy: 'deleteAllAsync', batchSize: BATCH } }),
        definePolicy(DabBoard, { memos: { policy: 'deleteAllAsync', batchSize: BATCH } }),
        definePolicy(DabShelf, { items: { policy: 'deleteAllAsync', batchSize: BATCH } }),
      ],
    },
  });
  admin = await PgAdmin.connect(DATABASE);
});
afterAll(async () => {
  await admin?.close();
  await app?.close();
});

beforeEach(async () => {
  await sql('truncate dab_parent, dab_log, dab_board, dab_memo, dab_shelf, dab_item, dab_category');
});

async function sql<T extends Record<string, unknown>>(text: string, params: unknown[] = []): Promise<T[]> {
  return app.em().getConnection().execute<T[]>(text, params);
}

const idsOf = async (table: string, where = 'true'): Promise<number[]> =>
  (await sql<{ id: number }>(`select id from ${table} where ${where} order by id`)).map((row) => row.id);

/** Parent 1 with logs 1-7 (the target), parent 2 with logs 8-10 (a bystander). */
async function seedLogs(): Promise<void> {
  await sql(`insert into dab_parent (id, name) values (1, 'target'), (2, 'bystander')`);
  await sql(`insert into dab_log (id, parent_id) select g, 1 from generate_series(1, 7) g`);
  await sql(`insert into dab_log (id, parent_id) select g, 2 from generate_series(8, 10) g`);
}

/** Destroys a parent with the worker paused, runs `meanwhile` (still paused), then records every statement until the request settles. */
async function destroyAndSettle<T extends { id: number }>(
  entity: EntityClass<T>,
  id: number,
  meanwhile: () => Promise<void> = async () => undefined,
  settled: (requestId: string) => Promise<void> = async () => undefined,
): Promise<{ requestId: string; status: DeletionStatus; statements: string[] }> {
  const { result, statements } = await app.queries.record(async () => {
    const requestId = await whilePaused(app, async () => {
      const receipt = await app.deletions.destroy(entity, id as Primary<T>);
      expect(receipt.status).toBe('pending');
      await meanwhile();
      return receipt.requestId!;
    });
    await settled(requestId);
    return { requestId, status: await waitForState(app.deletions, requestId) };
  });
  return { ...result, statements };
}

/** The one-statement batches over `table`. */
const checkedBatches = (statements: readonly string[], table: string) =>
  QueryLog.matching(statements, new RegExp(`^with b as \\(select .* from "${table}" as v where .* for update of v\\), gone as \\(delete from "${table}" as d (using b |where \\S+ = any\\(array\\(select b\\."k0" from b\\)\\) )`, 's'));
/** The standalone locking selects of the three-statement path. */
const lockingSelects = (statements: readonly string[], table: string) =>
  QueryLog.matching(statements, new RegExp(`^select .* from "${table}" as v where .* limit \\S+ for update of v$`, 's'));
/** The keyed deletes of the three-statement path: `delete … where <belongs> and key in (…)`. */
const keyedDeletes = (statements: readonly string[], table: string) =>
  QueryLog.matching(statements, new RegExp(`^delete from "${table}" as v where .* in \\([^()]*\\)$`, 's'));

/** The status error of a request refused by the queue: the blocker named by entity, id, relation path and message. */
const blockedError = (requestId: string, relationPath: string, entity: string, id: number, reason: string) => ({
  requestId,
  path: relationPath.split('.')[0],
  state: 'failed',
  error: expect.objectContaining({
    code: 'DELETION_BLOCKED',
    message: expect.stringContaining(reason),
    blockers: [{ entity, id, path: relationPath, reason }],
  }),
});

describe('a row-local validator: one statement per batch', () => {
  it('deletes every child in batches of 3, one statement each, and leaves the bystander', async () => {
    await seedLogs();
    const { status, statements } = await destroyAndSettle(DabParent, 1);
    expect(status.state).toBe('completed');
    expect(status.errors).toEqual([]);
    expect(status.progress).toEqual([{ path: 'DabParent.logs', entity: 'DabLog', policy: 'deleteAllAsync', processed: 7, done: true }]);
    expect(await idsOf('dab_parent')).toEqual([2]);
    expect(await idsOf('dab_log')).toEqual([8, 9, 10]);
    expect(await idsOf('dab_log', 'parent_id = 2')).toEqual([8, 9, 10]);

    // Batches of 3, 3 and 1: three checked statements, and none of the three-statement path.
    expect(checkedBatches(statements, 'dab_log')).toHaveLength(3);
    expect(lockingSelects(statements, 'dab_log')).toEqual([]);
    expect(keyedDeletes(statements, 'dab_log')).toEqual([]);
    expect(QueryLog.matching(statements, /^delete from "dab_log"/)).toEqual([]);
  });

  it('refuses the whole batch holding a flagged child: the earlier batch stays deleted, the refused one and the rest stay', async () => {
    await seedLogs();
    const { requestId, status, statements } = await destroyAndSettle(DabParent, 1, async () => {
      // Flagged after the request was accepted (the request itself would refuse): log 5 is in the 2nd batch (4-6).
      await sql('update dab_log set flagged = true where id = 5');
    });
    expect(status.state).toBe('failed');
    expect(status.errors).toEqual([blockedError(requestId, 'DabParent.logs', 'DabLog', 5, LOG_FLAGGED)]);
    expect(status.progress).toEqual([{ path: 'DabParent.logs', entity: 'DabLog', policy: 'deleteAllAsync', processed: 3, done: false }]);
    expect(await idsOf('dab_log')).toEqual([4, 5, 6, 7, 8, 9, 10]);
    expect(await idsOf('dab_log', 'flagged')).toEqual([5]);
    expect(await idsOf('dab_parent')).toEqual([2]);

    // The first batch and the refused one were checked in one statement; the refusal then locked the
    // batch again to name its blockers, and deleted nothing by key.
    expect(checkedBatches(statements, 'dab_log')).toHaveLength(2);
    expect(lockingSelects(statements, 'dab_log')).toHaveLength(1);
    expect(keyedDeletes(statements, 'dab_log')).toEqual([]);
  });
});

describe('a validator that reads another row: three statements per batch', () => {
  async function seedItems(): Promise<void> {
    await sql(`insert into dab_category (id, name) values (1, 'plain'), (2, 'keep')`);
    await sql(`insert into dab_shelf (id) values (1), (2)`);
    await sql(`insert into dab_item (id, shelf_id, category_id) select g, 1, 1 from generate_series(1, 7) g`);
    // The bystander shelf holds a kept item: it is not under the deleted shelf, so it never blocks.
    await sql(`insert into dab_item (id, shelf_id, category_id) values (8, 2, 1), (9, 2, 2)`);
  }

  it('completes through the locking select, the validator statement and the keyed delete', async () => {
    await seedItems();
    const { status, statements } = await destroyAndSettle(DabShelf, 1);
    expect(status.state).toBe('completed');
    expect(status.errors).toEqual([]);
    expect(status.progress).toEqual([{ path: 'DabShelf.items', entity: 'DabItem', policy: 'deleteAllAsync', processed: 7, done: true }]);
    expect(await idsOf('dab_shelf')).toEqual([2]);
    expect(await idsOf('dab_item')).toEqual([8, 9]);
    expect(await idsOf('dab_category')).toEqual([1, 2]);

    expect(checkedBatches(statements, 'dab_item')).toEqual([]);
    expect(QueryLog.matching(statements, /^with b as/)).toEqual([]);
    expect(lockingSelects(statements, 'dab_item')).toHaveLength(3);
    expect(keyedDeletes(statements, 'dab_item')).toHaveLength(3);
  });

  it('refuses a batch whose item was moved to the kept category after the request', async () => {
    await seedItems();
    const { requestId, status, statements } = await destroyAndSettle(DabShelf, 1, async () => {
      await sql('update dab_item set category_id = 2 where id = 5');
    });
    expect(status.state).toBe('failed');
    expect(status.errors).toEqual([blockedError(requestId, 'DabShelf.items', 'DabItem', 5, ITEM_KEPT)]);
    expect(status.progress).toEqual([{ path: 'DabShelf.items', entity: 'DabItem', policy: 'deleteAllAsync', processed: 3, done: false }]);
    expect(await idsOf('dab_item')).toEqual([4, 5, 6, 7, 8, 9]);

    expect(checkedBatches(statements, 'dab_item')).toEqual([]);
    expect(lockingSelects(statements, 'dab_item')).toHaveLength(2);
    // Only the first batch was deleted by key; the refused one never reached its delete.
    expect(keyedDeletes(statements, 'dab_item')).toHaveLength(1);
  });
});

describe('NULL semantics of a row-local condition', () => {
  it('a NULL note does not block ({ note: "x" } is not true for it): every memo is deleted', async () => {
    await sql(`insert into dab_board (id) values (1), (2)`);
    await sql(`insert into dab_memo (id, board_id, note) values (1, 1, null), (2, 1, null), (3, 1, 'a'), (4, 1, null), (5, 1, 'b'), (6, 1, null), (7, 1, null), (8, 2, 'x')`);
    const { status, statements } = await destroyAndSettle(DabBoard, 1);
    expect(status.state).toBe('completed');
    expect(status.errors).toEqual([]);
    expect(status.progress).toEqual([{ path: 'DabBoard.memos', entity: 'DabMemo', policy: 'deleteAllAsync', processed: 7, done: true }]);
    expect(await idsOf('dab_memo')).toEqual([8]);
    expect(await idsOf('dab_board')).toEqual([2]);
    expect(checkedBatches(statements, 'dab_memo')).toHaveLength(3);
    expect(keyedDeletes(statements, 'dab_memo')).toEqual([]);
  });

  it('a memo noted "x" blocks its batch; the NULL-noted batch before it is deleted', async () => {
    await sql(`insert into dab_board (id) values (1)`);
    await sql(`insert into dab_memo (id, board_id, note) values (1, 1, null), (2, 1, null), (3, 1, null), (4, 1, null), (5, 1, 'y'), (6, 1, null), (7, 1, null)`);
    const { requestId, status } = await destroyAndSettle(DabBoard, 1, async () => {
      await sql(`update dab_memo set note = 'x' where id = 5`);
    });
    expect(status.state).toBe('failed');
    expect(status.errors).toEqual([blockedError(requestId, 'DabBoard.memos', 'DabMemo', 5, MEMO_X)]);
    expect(status.progress).toEqual([{ path: 'DabBoard.memos', entity: 'DabMemo', policy: 'deleteAllAsync', processed: 3, done: false }]);
    expect(await sql(`select id, note from dab_memo order by id`)).toEqual([
      { id: 4, note: null },
      { id: 5, note: 'x' },
      { id: 6, note: null },
      { id: 7, note: null },
    ]);
  });
});

describe('a row changed by another transaction while the batch waits for its lock', () => {
  let other: pg.Client;
  beforeEach(async () => {
    other = new pg.Client({ connectionString: databaseUrl(DATABASE) });
    other.on('error', () => undefined);
    await other.connect();
  });
  afterEach(async () => {
    await other.query('rollback').catch(() => undefined);
    await other.end().catch(() => undefined);
  });

  /**
   * Waits until a backend of the database waits for a lock in a statement on `dab_log` (the
   * cascade's batch: the queue's own PostgreSQL backend, when it runs on one, may wait on locks of
   * its own), and returns that statement.
   */
  async function waitingStatement(): Promise<string> {
    let waiting: string | undefined;
    await waitUntil(
      async () => {
        const rows = await admin.query<{ query: string }>(`select query from pg_stat_activity where datname = $1 and wait_event_type = 'Lock'`, [DATABASE]);
        waiting = rows.find((row) => row.query.includes('"dab_log"'))?.query;
        return waiting !== undefined;
      },
      10_000,
      'the batch to wait for the row lock',
    );
    return waiting!;
  }

  it('a flag committed while the batch waits is seen: the batch refuses and deletes nothing', async () => {
    await seedLogs();
    let waited = '';
    const { requestId, status, statements } = await destroyAndSettle(
      DabParent,
      1,
      async () => {
        await other.query('begin');
        await other.query('update dab_log set flagged = true where id = 5');
      },
      async () => {
        try {
          waited = await waitingStatement();
        } finally {
          await other.query('commit');
        }
      },
    );
    // The one-statement batch is the one that waited on log 5.
    expect(waited).toMatch(/^with b as \(select .* for update of v\), gone as \(delete from "dab_log"/s);
    expect(status.state).toBe('failed');
    expect(status.errors).toEqual([blockedError(requestId, 'DabParent.logs', 'DabLog', 5, LOG_FLAGGED)]);
    expect(status.progress).toEqual([{ path: 'DabParent.logs', entity: 'DabLog', policy: 'deleteAllAsync', processed: 3, done: false }]);
    expect(await idsOf('dab_log')).toEqual([4, 5, 6, 7, 8, 9, 10]);
    expect(await idsOf('dab_log', 'flagged')).toEqual([5]);
    // Batch 1 and the refused batch 2 in one statement each; the refusal's blockers named by the old path, nothing deleted by key.
    expect(checkedBatches(statements, 'dab_log')).toHaveLength(2);
    expect(lockingSelects(statements, 'dab_log')).toHaveLength(1);
    expect(keyedDeletes(statements, 'dab_log')).toEqual([]);
  });

  it('a flag cleared and committed while the batch waits is seen: the batch deletes the row', async () => {
    await seedLogs();
    let waited = '';
    const { status, statements } = await destroyAndSettle(
      DabParent,
      1,
      async () => {
        // Flagged after the request was accepted, then cleared by a transaction the batch will wait for.
        await sql('update dab_log set flagged = true where id = 5');
        await other.query('begin');
        await other.query('update dab_log set flagged = false where id = 5');
      },
      async () => {
        try {
          waited = await waitingStatement();
        } finally {
          await other.query('commit');
        }
      },
    );
    expect(waited).toMatch(/^with b as \(select .* for update of v\), gone as \(delete from "dab_log"/s);
    expect(status.state).toBe('completed');
    expect(status.errors).toEqual([]);
    expect(status.progress).toEqual([{ path: 'DabParent.logs', entity: 'DabLog', policy: 'deleteAllAsync', processed: 7, done: true }]);
    expect(await idsOf('dab_log')).toEqual([8, 9, 10]);
    expect(checkedBatches(statements, 'dab_log')).toHaveLength(3);
    expect(lockingSelects(statements, 'dab_log')).toEqual([]);
  });
});
