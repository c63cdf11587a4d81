import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { DeletionDoctorError, definePolicy } from '../../lib/index.js';
import { ASYNC_ENTITIES, Vault } from '../fixtures/async.entities.js';
import { Archive, Branch, Edition, Imprint, Publisher, Shelf, TOMBSTONE_ENTITIES, Volume } from '../fixtures/tombstone.entities.js';
import { createDeletionTestApp, type DeletionTestApp } from '../support/deletion-test-app.js';
import { scalar } from '../support/fault-checks.js';
import { waitForState } from '../support/wait.js';

/**
 * Issue 12, "tombstone mode at any level": an entity in tombstone mode reached by a queued cascade
 * is marked once, walked once, and the whole deletion completes, with at most one request per row
 * that has queued work. NO ACTION foreign keys everywhere: no orphan ever exists.
 */
describe('tombstone mode on two levels and on a self-referencing tree', () => {
  let app: DeletionTestApp;
  beforeAll(async () => {
    app = await createDeletionTestApp({
      database: 'deletion_async_tombstone_levels',
      entities: TOMBSTONE_ENTITIES,
      deletion: {
        batchSize: 3,
        policies: [
          definePolicy(Archive, { shelves: 'destroyAsync' }, { tombstone: 'deletedAt' }),
          definePolicy(Shelf, { tomes: 'destroyAsync' }, { tombstone: 'deletedAt' }),
          definePolicy(Branch, { children: 'destroyAsync' }, { tombstone: 'deletedAt' }),
        ],
      },
    });
  });
  afterAll(() => app?.close());
  const sql = (query: string, params: unknown[] = []) => app.em().getConnection().execute<Record<string, unknown>[]>(query, params);

  it('an archive and its tombstoned shelves: completes, every row gone, one request per row with queued work at most', async () => {
    const [{ id: archive }] = (await sql('insert into archive default values returning id')) as { id: number }[];
    const [{ id: bystander }] = (await sql('insert into archive default values returning id')) as { id: number }[];
    for (const owner of [archive, bystander]) {
      await sql('insert into shelf (archive_id) select ? from generate_series(1, 7)', [owner]);
    }
    await sql('insert into tome (shelf_id) select s.id from shelf s cross join generate_series(1, 4)');

    const receipt = await app.deletions.destroy(Archive, archive!);
    const status = await waitForState(app.deletions, receipt.requestId!, ['completed', 'failed'], 30_000);
    expect(status.state).toBe('completed');
    expect(await scalar(app, 'select count(*) from archive where id = ?', [archive])).toBe(0);
    expect(await scalar(app, 'select count(*) from shelf where archive_id = ?', [archive])).toBe(0);
    expect(await scalar(app, 'select count(*) from shelf where archive_id = ?', [bystander])).toBe(7);
    expect(await scalar(app, 'select count(*) from tome')).toBe(28);
    // The archive, plus at most one per shelf (a page of shelves shares one).
    expect(status.counts.requests).toBeLessThanOrEqual(1 + 7);
    expect(status.progress).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ path: 'Archive.shelves', processed: 7, done: true }),
        expect.objectContaining({ path: 'Archive.shelves.tomes', processed: 28, done: true }),
      ]),
    );
  });

  it('a tombstoned tree eight levels deep: completes, and no node is walked twice', async () => {
    expect(await sql(`select confdeltype from pg_constraint where conrelid = 'branch'::regclass and contype = 'f'`)).toEqual([{ confdeltype: 'a' }]);
    const [{ id: root }] = (await sql('insert into branch default values returning id')) as { id: number }[];
    let level = [root!];
    for (let depth = 0; depth < 8; depth++) {
      const next: number[] = [];
      for (const parent of level.slice(0, 2)) {
        const rows = (await sql('insert into branch (parent_id) select ? from generate_series(1, 2) returning id', [parent])) as { id: number }[];
        next.push(...rows.map((r) => r.id));
      }
      level = next;
    }
    const total = await scalar(app, 'select count(*) from branch');
    const receipt = await app.deletions.destroy(Branch, root!);
    const status = await waitForState(app.deletions, receipt.requestId!, ['completed', 'failed'], 60_000);
    expect(status.state).toBe('completed');
    expect(await scalar(app, 'select count(*) from branch')).toBe(0);
    expect(status.counts.requests).toBeLessThanOrEqual(total);
    expect(status.counts.processed).toBe(total - 1);
  });
});

/** Issue 12: a request that keeps finding children it already walked fails visibly instead of spinning. */
describe('a tombstoned parent whose children keep coming back', () => {
  let app: DeletionTestApp;
  beforeAll(async () => {
    app = await createDeletionTestApp({
      database: 'deletion_async_tombstone_stalled',
      entities: ASYNC_ENTITIES,
      deletion: { batchSize: 10, policies: [definePolicy(Vault, { items: 'destroyAsync' }, { tombstone: 'deletedAt' })] },
    });
    // Every deleted item comes back under the same vault with a key behind the walk's cursor.
    await app.em().getConnection().execute(`
      create function vault_item_returns() returns trigger language plpgsql as $$
      begin
        insert into vault_item (id, vault_id) values (-abs(old.id) - 1000, old.vault_id);
        return old;
      end $$;
      create trigger vault_item_returns after delete on vault_item for each row execute function vault_item_returns();`);
  });
  afterAll(() => app?.close());

  it('fails the request with DELETION_CASCADE_STALLED after a bounded number of walks, leaving the vault marked', async () => {
    const [{ id: vault }] = await app.em().getConnection().execute<{ id: number }[]>(`insert into vault (name) values ('haunted') returning id`);
    await app.em().getConnection().execute(`insert into vault_item (vault_id) select ? from generate_series(1, 3)`, [vault]);

    const receipt = await app.deletions.destroy(Vault, vault!);
    const status = await waitForState(app.deletions, receipt.requestId!, ['completed', 'failed'], 30_000);
    expect(status.state).toBe('failed');
    expect(status.errors).toEqual([
      expect.objectContaining({ state: 'failed', error: expect.objectContaining({ code: 'DELETION_CASCADE_STALLED', path: 'Vault.items', walks: 5 }) }),
    ]);
    expect(await scalar(app, 'select count(*) from vault where id = ? and deleted_at is not null', [vault])).toBe(1);
  });
});

/** Issue 12: a child in tombstone mode under a synchronous `destroy`, its foreign key constrained. */
describe('a synchronous destroy over children in tombstone mode', () => {
  let app: DeletionTestApp;
  beforeAll(async () => {
    app = await createDeletionTestApp({
      database: 'deletion_async_tombstone_under_destroy',
      entities: TOMBSTONE_ENTITIES,
      deletion: {
        batchSize: 2,
        policies: [definePolicy(Publisher, { volumes: 'destroy' }), definePolicy(Volume, { leaves: 'destroyAsync' }, { tombstone: 'deletedAt' })],
      },
    });
  });
  afterAll(() => app?.close());
  const sql = (query: string, params: unknown[] = []) => app.em().getConnection().execute<Record<string, unknown>[]>(query, params);

  it('deletes the publisher in the request, detaches its marked volumes, and the queue removes their leaves and then them', async () => {
    const fk = await sql(`select confdeltype from pg_constraint where conrelid = 'volume'::regclass and contype = 'f'`);
    expect(fk).toEqual([{ confdeltype: 'a' }]);
    const [{ id: publisher }] = (await sql('insert into publisher default values returning id')) as { id: number }[];
    const [{ id: bystander }] = (await sql('insert into publisher default values returning id')) as { id: number }[];
    await sql('insert into volume (publisher_id) select p from unnest(array[?, ?, ?]::int[]) p', [publisher, publisher, bystander]);
    await sql('insert into leaf (volume_id) select v.id from volume v cross join generate_series(1, 3)');

    const receipt = await app.deletions.destroy(Publisher, publisher!);
    expect(receipt.status).toBe('pending');
    expect(await scalar(app, 'select count(*) from publisher where id = ?', [publisher])).toBe(0);
    expect((await waitForState(app.deletions, receipt.requestId!)).state).toBe('completed');
    expect(await scalar(app, 'select count(*) from volume')).toBe(1);
    expect(await scalar(app, 'select count(*) from volume where publisher_id = ?', [bystander])).toBe(1);
    expect(await scalar(app, 'select count(*) from leaf')).toBe(3);
  });
});

describe('the doctor, on a synchronous destroy over children in tombstone mode whose foreign key is NOT NULL', () => {
  it('stops the boot with DELETION_DOCTOR_TOMBSTONE_UNDER_DESTROY, and suggests only what works', async () => {
    const error = await createDeletionTestApp({
      database: 'deletion_async_tombstone_doctor',
      entities: TOMBSTONE_ENTITIES,
      deletion: { policies: [definePolicy(Imprint, { editions: 'destroy' }), definePolicy(Edition, {}, { tombstone: 'deletedAt' })] },
    }).then(
      async (app) => {
        await app.close();
        return undefined;
      },
      (reason: unknown) => reason,
    );
    expect(error).toBeInstanceOf(DeletionDoctorError);
    const message = (error as Error).message;
    expect(message).toContain('[DELETION_DOCTOR_TOMBSTONE_UNDER_DESTROY] Imprint.editions uses "destroy" over Edition, which is in tombstone mode');
    expect(message).toContain('make Edition.imprint nullable');
    expect(message).not.toMatch(/destroyAsync|createForeignKeyConstraint/);
  });
});
