import { afterAll, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import { DeletionBlockedError, DeletionValidationDepthError, definePolicy, type PolicyName } from '../../lib/index.js';
import { DEEP_ENTITIES, Folder, Ping, Pong } from '../fixtures/deep.entities.js';
import { createDeletionTestApp, type DeletionTestApp } from '../support/deletion-test-app.js';
import { scalar } from '../support/fault-checks.js';
import { QueryLog } from '../support/query-log.js';
import { waitForState } from '../support/wait.js';

const DEPTH = 30;

/** A chain of `DEPTH` folders under a root (ids root+1 … root+DEPTH, each the child of the one before), and a bystander chain. */
async function chain(app: DeletionTestApp): Promise<number[]> {
  const sql = app.em().getConnection();
  const [{ id: root }] = await sql.execute<{ id: number }[]>('insert into folder (locked, sealed) values (false, false) returning id');
  const ids = [root];
  for (let i = 0; i < DEPTH; i++) {
    const [{ id }] = await sql.execute<{ id: number }[]>('insert into folder (parent_id) values (?) returning id', [ids.at(-1)]);
    ids.push(id);
  }
  return ids;
}

/** DESIGN 4 and 7: validators are checked at any depth of a self-referencing tree, in the request. */
describe.each<PolicyName>(['destroy', 'destroyAsync'])('a self-referencing tree 30 levels deep under %s', (policy) => {
  let app: DeletionTestApp;
  beforeAll(async () => {
    app = await createDeletionTestApp({ database: `deletion_validation_depth_${policy.toLowerCase()}`, entities: DEEP_ENTITIES, deletion: { batchSize: 7, policies: [definePolicy(Folder, { children: policy })] } });
  });
  afterAll(() => app?.close());
  beforeEach(async () => {
    await app.em().getConnection().execute('delete from folder');
  });

  it.each([5, 20, 30])('a locked folder at depth %i refuses the deletion of the root in the request, and nothing is deleted', async (depth) => {
    const ids = await chain(app);
    const bystander = await chain(app);
    await app.em().getConnection().execute('update folder set locked = true where id = ?', [ids[depth]]);
    const before = await scalar(app, 'select count(*) from folder');

    const error = await app.deletions.destroy(Folder, ids[0]!).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DeletionBlockedError);
    expect(error).toMatchObject({ total: 1, blockers: [{ entity: 'Folder', id: ids[depth], reason: 'locked folders are kept' }] });
    expect(await scalar(app, 'select count(*) from folder')).toBe(before);
    expect(await scalar(app, 'select count(*) from deletion_request')).toBe(0);
    expect((await app.deletions.plan(Folder, ids[0]!)).allowed).toBe(false);
    expect(bystander).toHaveLength(DEPTH + 1);
  });

  it('a sealed folder (instance validator) at depth 25 refuses it too', async () => {
    const ids = await chain(app);
    await app.em().getConnection().execute('update folder set sealed = true where id = ?', [ids[25]]);
    await expect(app.deletions.destroy(Folder, ids[0]!)).rejects.toMatchObject({ code: 'DELETION_BLOCKED', blockers: [{ id: ids[25], reason: `folder ${ids[25]} is sealed` }] });
    expect(await scalar(app, 'select count(*) from folder')).toBe(DEPTH + 1);
  });

  it('with nothing locked, deletes the whole chain and no other folder; the set-based check is one statement whatever the depth', async () => {
    const ids = await chain(app);
    const bystander = await chain(app);
    const { result, statements } = await app.queries.record(() => app.deletions.destroy(Folder, ids[0]!));
    if (result.requestId) {
      expect((await waitForState(app.deletions, result.requestId)).state).toBe('completed');
    }
    expect(await scalar(app, `select count(*) from folder where id in (${ids.join(', ')})`)).toBe(0);
    expect(await scalar(app, `select count(*) from folder where id in (${bystander.join(', ')})`)).toBe(DEPTH + 1);
    expect(QueryLog.matching(statements, /locked/).length).toBeLessThanOrEqual(2);
  });
});

/** A cycle through two entities is unrolled a fixed depth; rows past it refuse the deletion instead of going unchecked. */
describe('a cycle of policies through two entities', () => {
  let app: DeletionTestApp;
  beforeAll(async () => {
    app = await createDeletionTestApp({
      database: 'deletion_validation_depth_cycle',
      entities: DEEP_ENTITIES,
      deletion: { policies: [definePolicy(Ping, { pongs: 'destroy' }), definePolicy(Pong, { pings: 'destroy' })] },
    });
  });
  afterAll(() => app?.close());

  /** ping ← pong ← ping ← … alternating, `links` rows below the first ping. */
  async function alternate(links: number): Promise<number> {
    const sql = app.em().getConnection();
    const [{ id: first }] = await sql.execute<{ id: number }[]>('insert into ping default values returning id');
    let last = { table: 'ping', id: first };
    for (let i = 0; i < links; i++) {
      const table = last.table === 'ping' ? 'pong' : 'ping';
      const column = table === 'pong' ? 'ping_id' : 'pong_id';
      const [{ id }] = await sql.execute<{ id: number }[]>(`insert into ${table} (${column}) values (?) returning id`, [last.id]);
      last = { table, id };
    }
    return first;
  }

  it('deletes a short chain, validating every ping', async () => {
    const first = await alternate(6);
    await expect(app.deletions.destroy(Ping, first)).resolves.toMatchObject({ status: 'completed' });
    expect(await scalar(app, 'select count(*) from ping') + (await scalar(app, 'select count(*) from pong'))).toBe(0);
  });

  it('refuses a chain deeper than the tree is unrolled with DeletionValidationDepthError, and deletes nothing', async () => {
    const first = await alternate(20);
    const error = await app.deletions.destroy(Ping, first).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DeletionValidationDepthError);
    expect(error).toMatchObject({ code: 'DELETION_VALIDATION_DEPTH_EXCEEDED', maxDepth: 12 });
    expect(await scalar(app, 'select count(*) from ping') + (await scalar(app, 'select count(*) from pong'))).toBe(21);
  });
});
