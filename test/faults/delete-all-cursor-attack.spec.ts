import { afterAll, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import { BigIntType, Collection, type Opt, type Rel } from '@mikro-orm/core';
import { Entity, ManyToOne, OneToMany, PrimaryKey, Property } from '@mikro-orm/decorators/legacy';
import { ValidateBeforeDestroy, definePolicy, type DeletionStatus } from '../../lib/index.js';
import { createDeletionTestApp, type DeletionTestApp } from '../support/deletion-test-app.js';
import { waitForState } from '../support/wait.js';
import { whilePaused } from '../support/worker-control.js';

/**
 * Attacks on ec1792c: `deleteAllAsync` batches walk from a stored keyset cursor (`progress.cursor`)
 * in all three forms (one statement, one checked statement, locked keys + validators). Found: a
 * bigint key mapped to a JavaScript number past 2^53 came back from the batch rounded, so the
 * stored cursor stepped over the next row; the cursor is now the key's text, compared in SQL.
 */
const DATABASE = 'deletion_dac_cursor';
const NOTE_FLAGGED = 'flagged notes are kept';
const TWO_53 = 2n ** 53n;

@Entity({ tableName: 'dac_box' })
class DacBox {
  @PrimaryKey({ type: 'string', length: 40 })
  id!: string;

  @OneToMany(() => DacLog, (log) => log.box)
  logs = new Collection<DacLog>(this);

  @OneToMany(() => DacNote, (note) => note.box)
  notes = new Collection<DacNote>(this);
}

@Entity({ tableName: 'dac_log' })
class DacLog {
  @PrimaryKey({ type: 'string', length: 40 })
  id!: string;

  @ManyToOne(() => DacBox, { createForeignKeyConstraint: false, index: true })
  box!: Rel<DacBox>;
}

@Entity({ tableName: 'dac_note' })
@ValidateBeforeDestroy<DacNote>({ where: { flagged: true }, message: NOTE_FLAGGED })
class DacNote {
  @PrimaryKey({ type: 'string', length: 40 })
  id!: string;

  @Property({ default: false })
  flagged: Opt<boolean> = false;

  @ManyToOne(() => DacBox, { createForeignKeyConstraint: false, index: true })
  box!: Rel<DacBox>;
}

// bigint mapped as a JS number, with child keys past 2^53 (the rows exist; the app never loads them)
@Entity({ tableName: 'dac_num_box' })
class DacNumBox {
  @PrimaryKey({ autoincrement: false })
  id!: number;

  @OneToMany(() => DacNum, (row) => row.box)
  rows = new Collection<DacNum>(this);
}

@Entity({ tableName: 'dac_num' })
class DacNum {
  @PrimaryKey({ type: new BigIntType('number'), autoincrement: false })
  id!: number;

  @ManyToOne(() => DacNumBox, { createForeignKeyConstraint: false, index: true })
  box!: Rel<DacNumBox>;
}

// Tombstone mode, NO ACTION foreign key kept
@Entity({ tableName: 'dac_vault' })
class DacVault {
  @PrimaryKey({ autoincrement: false })
  id!: number;

  @Property({ type: 'datetime', nullable: true })
  deletedAt?: Date | null;

  @OneToMany(() => DacItem, (item) => item.vault)
  items = new Collection<DacItem>(this);
}

@Entity({ tableName: 'dac_item' })
class DacItem {
  @PrimaryKey({ autoincrement: false })
  id!: number;

  @ManyToOne(() => DacVault, { index: true })
  vault!: Rel<DacVault>;
}

let app: DeletionTestApp;

beforeAll(async () => {
  app = await createDeletionTestApp({
    database: DATABASE,
    entities: [DacBox, DacLog, DacNote, DacNumBox, DacNum, DacVault, DacItem],
    deletion: {
      queue: { attempts: 1, backoffMs: 10 },
      policies: [
        definePolicy(DacBox, { logs: { policy: 'deleteAllAsync', batchSize: 2 }, notes: { policy: 'deleteAllAsync', batchSize: 2 } }),
        definePolicy(DacNumBox, { rows: { policy: 'deleteAllAsync', batchSize: 1 } }),
        definePolicy(DacVault, { items: { policy: 'deleteAllAsync', batchSize: 2 } }, { tombstone: 'deletedAt' }),
      ],
    },
  });
});
afterAll(async () => {
  await app?.close();
});

beforeEach(async () => {
  await sql('truncate dac_box, dac_log, dac_note, dac_num_box, dac_num, dac_item, dac_vault, deletion_request cascade');
});

async function sql<T extends Record<string, unknown>>(text: string, params: unknown[] = []): Promise<T[]> {
  return app.em().getConnection().execute<T[]>(text, params);
}

const column = async (text: string, params: unknown[] = []): Promise<unknown[]> => (await sql(text, params)).map((row) => Object.values(row)[0]);

async function destroyPaused(
  entity: Parameters<DeletionTestApp['deletions']['destroy']>[0],
  id: unknown,
  meanwhile: (requestId: string) => Promise<void> = async () => undefined,
): Promise<{ requestId: string; status: DeletionStatus }> {
  const requestId = await whilePaused(app, async () => {
    const receipt = await app.deletions.destroy(entity, id as never);
    expect(receipt.status).toBe('pending');
    await meanwhile(receipt.requestId!);
    return receipt.requestId!;
  });
  return { requestId, status: await waitForState(app.deletions, requestId) };
}

const cursorOf = async (requestId: string, relation: string): Promise<unknown> =>
  (await column(`select progress->'${relation}'->'cursor' as c from deletion_request where id = ?`, [requestId]))[0];

describe('deleteAllAsync keyset cursor', () => {
  it("collation-sensitive varchar keys (case, accents, trailing spaces, '10' vs '9'): both forms delete exactly the parent's rows", async () => {
    await sql('insert into dac_box (id) values (?), (?)', ['box', 'Box']);
    const keys = ['a', 'B', 'b', 'A', '10', '9', 'é', 'e', 'z ', 'z', 'Z', 'ä', 'a a', 'aa', '-1', '_x'];
    const others = keys.map((k) => `${k}#other`);
    for (const table of ['dac_log', 'dac_note']) {
      for (const id of keys) await sql(`insert into ${table} (id, box_id) values (?, ?)`, [id, 'box']);
      for (const id of others) await sql(`insert into ${table} (id, box_id) values (?, ?)`, [id, 'Box']);
    }
    const { requestId, status } = await destroyPaused(DacBox, 'box');
    expect(status.state).toBe('completed');
    expect(status.progress).toEqual([
      { path: 'DacBox.logs', entity: 'DacLog', policy: 'deleteAllAsync', processed: keys.length, done: true },
      { path: 'DacBox.notes', entity: 'DacNote', policy: 'deleteAllAsync', processed: keys.length, done: true },
    ]);
    for (const table of ['dac_log', 'dac_note']) {
      expect((await column(`select id from ${table}`)).sort()).toEqual([...others].sort());
    }
    // The cursor stored is the greatest key in the column's own order.
    const max = (await column(`select max(id) from (values ${keys.map(() => '(?::varchar(40))').join(', ')}) as t (id)`, keys))[0];
    expect(await cursorOf(requestId, 'logs')).toBe(max);
    expect(await cursorOf(requestId, 'notes')).toBe(max);
  });

  it('a refused checked batch leaves the cursor at the last committed batch; retry resumes there and deletes every row', async () => {
    await sql('insert into dac_box (id) values (?), (?)', ['box', 'other']);
    const keys = ['n1', 'n2', 'n3', 'n4', 'n5', 'n6', 'n7'];
    for (const id of keys) await sql('insert into dac_note (id, box_id) values (?, ?)', [id, 'box']);
    await sql('insert into dac_note (id, box_id) values (?, ?)', ['n0', 'other']);
    // Flagged after the request was written (its hoisted validation passed): the second batch refuses.
    const { requestId, status } = await destroyPaused(DacBox, 'box', async () => {
      await sql('update dac_note set flagged = true where id = ?', ['n4']);
    });
    expect(status.state).toBe('failed');
    expect(await cursorOf(requestId, 'notes')).toBe('n2');
    expect(await column('select id from dac_note order by id')).toEqual(['n0', 'n3', 'n4', 'n5', 'n6', 'n7']);
    await sql('update dac_note set flagged = false where id = ?', ['n4']);
    await app.deletions.retry(requestId);
    const after = await waitForState(app.deletions, requestId);
    expect(after.state).toBe('completed');
    expect(await column('select id from dac_note order by id')).toEqual(['n0']);
    expect(after.progress).toEqual([
      { path: 'DacBox.logs', entity: 'DacLog', policy: 'deleteAllAsync', processed: 0, done: true },
      { path: 'DacBox.notes', entity: 'DacNote', policy: 'deleteAllAsync', processed: 7, done: true },
    ]);
    expect(await cursorOf(requestId, 'notes')).toBe('n7');
  });

  it('tombstone mode: children behind a stored cursor are found by the re-walk (cursor reset), then the parent is hard-deleted', async () => {
    await sql('insert into dac_vault (id) values (1), (2)');
    await sql('insert into dac_item (id, vault_id) select g, 1 from generate_series(10, 15) g');
    await sql('insert into dac_item (id, vault_id) values (3, 2), (99, 2)');
    const { status } = await destroyPaused(DacVault, 1, async (requestId) => {
      // As if earlier batches had walked past 10..12 while they arrived behind the cursor.
      await sql(`update deletion_request set progress = jsonb_set(progress, '{items,cursor}', '12'::jsonb) where id = ?`, [requestId]);
    });
    expect(status.state).toBe('completed');
    expect(await column('select id from dac_item order by id')).toEqual([3, 99]);
    expect(await column('select id from dac_vault order by id')).toEqual([2]);
  });

  it('a request whose cursor is null mid-walk (written by the old code) resumes from the first child', async () => {
    await sql('insert into dac_box (id) values (?), (?)', ['box', 'other']);
    for (const id of ['l1', 'l2', 'l3', 'l4', 'l5']) await sql('insert into dac_log (id, box_id) values (?, ?)', [id, 'box']);
    await sql('insert into dac_log (id, box_id) values (?, ?)', ['l0', 'other']);
    const { status } = await destroyPaused(DacBox, 'box', async (requestId) => {
      await sql(`update deletion_request set progress = jsonb_set(progress, '{logs}', progress->'logs' || '{"cursor": null, "processed": 4}'::jsonb) where id = ?`, [requestId]);
    });
    expect(status.state).toBe('completed');
    expect(await column('select id from dac_log order by id')).toEqual(['l0']);
  });

  it('bigint mapped as number, child keys past 2^53, batches of one: every child of the parent is deleted by the walk itself', async () => {
    await sql('insert into dac_num_box (id) values (1), (2)');
    const ids = Array.from({ length: 8 }, (_, i) => (TWO_53 + BigInt(i + 1)).toString());
    for (const id of ids) await sql('insert into dac_num (id, box_id) values (?, 1)', [id]);
    await sql('insert into dac_num (id, box_id) values (?, 2)', [(TWO_53 + 100n).toString()]);
    const { requestId, status } = await destroyPaused(DacNumBox, 1);
    expect(status.state).toBe('completed');
    expect(await column('select id::text from dac_num order by id')).toEqual([(TWO_53 + 100n).toString()]);
    expect(await cursorOf(requestId, 'rows')).toBe(ids.at(-1));
  });
});
