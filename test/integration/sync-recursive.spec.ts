import { afterAll, beforeAll, beforeEach, expect, it } from '@jest/globals';
import { PolicyRegistry as DeletionTestAppRegistry, definePolicy } from '../../lib/index.js';
import { Category } from '../fixtures/category.entities.js';
import { createDeletionTestApp, type DeletionTestApp } from '../support/deletion-test-app.js';

let app: DeletionTestApp;

beforeAll(async () => {
  app = await createDeletionTestApp({
    database: 'deletion_sync_recursive',
    entities: [Category],
    deletion: { batchSize: 3, doctor: 'warn', policies: [definePolicy(Category, { children: 'destroy' })] },
  });
});
afterAll(() => app?.close());
beforeEach(() => app.em().getConnection().execute('truncate category restart identity'));

const sql = (query: string, params: unknown[] = []) => app.em().getConnection().execute<{ id: number }[]>(query, params);
const remaining = async () => (await sql('select id from category order by id')).map((row: { id: number }) => row.id);

async function insert(name: string, parent: number | null): Promise<number> {
  const [row] = await sql('insert into category (name, parent_id) values (?, ?) returning id', [name, parent]);
  return row!.id;
}

it('knows the relation is recursive', () => {
  expect(app.module.get(DeletionTestAppRegistry).isRecursive(app.orm.getMetadata().get(Category))).toBe(true);
});

it('destroys a whole subtree, level by level, and nothing beside it', async () => {
  const root = await insert('root', null);
  const other = await insert('other root', null);
  const kept = await insert('kept child', other);
  const level = [root];
  for (let depth = 0; depth < 4; depth++) {
    const next: number[] = [];
    for (const parent of level) {
      for (let i = 0; i < 2; i++) {
        next.push(await insert(`d${depth}`, parent));
      }
    }
    level.splice(0, level.length, ...next);
  }
  expect(await app.deletions.destroy(Category, root)).toMatchObject({ status: 'completed' });
  expect(await remaining()).toEqual([other, kept]);
});

it('terminates on a cycle in the data and deletes every row of it exactly once', async () => {
  const a = await insert('a', null);
  const b = await insert('b', a);
  const c = await insert('c', b);
  await sql('update category set parent_id = ? where id = ?', [c, a]); // a -> b -> c -> a
  const outside = await insert('outside', null);
  expect(await app.deletions.destroy(Category, a)).toMatchObject({ status: 'completed' });
  expect(await remaining()).toEqual([outside]);
});
