import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { DeletionBlockedError, DeletionValidationBudgetError, definePolicy } from '../../lib/index.js';
import { Product, Shop, VALIDATED_ENTITIES } from '../fixtures/validated.entities.js';
import { createDeletionTestApp, type DeletionTestApp } from '../support/deletion-test-app.js';
import { QueryLog } from '../support/query-log.js';
import { waitForState } from '../support/wait.js';
import { whilePaused } from '../support/worker-control.js';

let app: DeletionTestApp;

beforeAll(async () => {
  app = await createDeletionTestApp({
    database: 'deletion_validation',
    entities: VALIDATED_ENTITIES,
    deletion: {
      batchSize: 20,
      validation: { maxInstances: 500, maxBlockers: 5 },
      queue: { attempts: 3, backoffMs: 10 },
      policies: [definePolicy(Shop, { products: 'destroyAsync', ledgers: 'deleteAllAsync' }), definePolicy(Product, { reviews: 'deleteAllAsync' })],
    },
  });
});
afterAll(() => app?.close());

const sql = (query: string, params: unknown[] = []) => app.em().getConnection().execute<Record<string, unknown>[]>(query, params);
const count = async (table: string, where = 'true') => Number((await sql(`select count(*) as n from ${table} where ${where}`))[0]!.n);

async function seedShop(shape: { products: number; reviewsPerProduct?: number; ledgers?: number }): Promise<number> {
  const [{ id }] = (await sql(`insert into shop (name) values ('shop') returning id`)) as { id: number }[];
  await sql(`insert into product (name, shop_id) select 'product ' || g, ? from generate_series(1, ?) g`, [id, shape.products]);
  if (shape.reviewsPerProduct) {
    await sql(`insert into product_review (product_id) select p.id from product p cross join generate_series(1, ?) g where p.shop_id = ?`, [shape.reviewsPerProduct, id]);
  }
  if (shape.ledgers) {
    await sql(`insert into ledger (shop_id) select ? from generate_series(1, ?) g`, [id, shape.ledgers]);
  }
  return id!;
}

/** Rows, request rows and queued jobs: everything a refused deletion must leave unchanged. */
async function footprint(shop: number) {
  return {
    shop: await count('shop', `id = ${shop}`),
    products: await count('product', `shop_id = ${shop}`),
    reviews: await count('product_review', `product_id in (select id from product where shop_id = ${shop})`),
    ledgers: await count('ledger', `shop_id = ${shop}`),
    requests: await count('deletion_request'),
    jobs: await app.queue.getJobCountByTypes('waiting', 'active', 'delayed', 'prioritized', 'completed', 'failed'),
  };
}

describe('in the request', () => {
  it('an instance validator on a child blocks the parent’s destroyAsync: 409 with the blocker, nothing written, no job', async () => {
    const shop = await seedShop({ products: 6, reviewsPerProduct: 1 });
    const [published] = (await sql(`update product set published = true where id = (select min(id) from product where shop_id = ?) returning id`, [shop])) as { id: number }[];
    const before = await footprint(shop);
    const error = await app.deletions.destroy(Shop, shop).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DeletionBlockedError);
    expect((error as DeletionBlockedError).getStatus()).toBe(409);
    expect((error as DeletionBlockedError).getResponse()).toMatchObject({
      statusCode: 409,
      code: 'DELETION_BLOCKED',
      entity: 'Shop',
      id: shop,
      total: 1,
      blockers: [{ entity: 'Product', id: published!.id, path: 'Shop.products', reason: 'published products cannot be deleted' }],
    });
    expect(await footprint(shop)).toEqual(before);
  });

  it('a set-based validator on a grandchild blocks the root through two levels of queued policies', async () => {
    const shop = await seedShop({ products: 4, reviewsPerProduct: 3 });
    await sql(`update product_review set pinned = true where product_id in (select id from product where shop_id = ?)`, [shop]);
    const before = await footprint(shop);
    await expect(app.deletions.destroy(Shop, shop)).rejects.toMatchObject({
      code: 'DELETION_BLOCKED',
      total: 12,
      blockers: expect.arrayContaining([expect.objectContaining({ entity: 'ProductReview', path: 'Shop.products.reviews', reason: 'pinned reviews are kept' })]),
    });
    const refused = (await app.deletions.destroy(Shop, shop).catch((e: DeletionBlockedError) => e)) as DeletionBlockedError;
    expect(refused.blockers).toHaveLength(5); // capped sample, full total
    expect(await footprint(shop)).toEqual(before);
  });

  it('also refuses em.remove() + flush(): the flush rejects and nothing is deleted', async () => {
    const shop = await seedShop({ products: 2 });
    await sql(`update product set published = true where shop_id = ?`, [shop]);
    const em = app.em();
    em.remove(await em.findOneOrFail(Shop, shop));
    await expect(em.flush()).rejects.toBeInstanceOf(DeletionBlockedError);
    expect(await count('shop', `id = ${shop}`)).toBe(1);
    expect(await count('product', `shop_id = ${shop}`)).toBe(2);
  });

  it('answers a set-based validator over 100,000 children with as many statements as over 10', async () => {
    const deleteAndCount = async (ledgers: number) => {
      const shop = await seedShop({ products: 0, ledgers });
      await sql(`update ledger set locked = true where id = (select max(id) from ledger where shop_id = ?)`, [shop]);
      const { result, statements } = await app.queries.record(() => app.deletions.destroy(Shop, shop).catch((e: unknown) => e));
      expect(result).toMatchObject({ code: 'DELETION_BLOCKED', total: 1 });
      return statements;
    };
    const small = await deleteAndCount(10);
    const large = await deleteAndCount(100_000);
    expect(large.length).toBe(small.length);
    // One statement per validated path: the ledger query is a single select with a window count and a LIMIT.
    expect(QueryLog.matching(large, /from "ledger"/)).toHaveLength(1);
    expect(QueryLog.matching(large, /from "ledger"/)[0]).toMatch(/count\(\*\) over\(\).*limit/i);
  });

  it('refuses a deletion whose instance validators would load more than validation.maxInstances rows', async () => {
    const shop = await seedShop({ products: 501 });
    const error = (await app.deletions.destroy(Shop, shop).catch((e: unknown) => e)) as DeletionValidationBudgetError;
    expect(error).toBeInstanceOf(DeletionValidationBudgetError);
    expect(error).toMatchObject({ code: 'DELETION_VALIDATION_BUDGET_EXCEEDED', entity: 'Product', path: 'Shop.products', maxInstances: 500 });
    expect(error.message).toContain('@ValidateBeforeDestroy({ where, message }) on Product');
    expect(await count('product', `shop_id = ${shop}`)).toBe(501);
    // Within the budget the same shape passes.
    await sql(`delete from product where id = (select max(id) from product where shop_id = ?)`, [shop]);
    const receipt = await app.deletions.destroy(Shop, shop);
    expect((await waitForState(app.deletions, receipt.requestId!)).state).toBe('completed');
  });
});

describe('in the queue', () => {
  it('a child that became invalid after the request fails its batch visibly; retry() completes once it is fixed', async () => {
    const shop = await seedShop({ products: 50 });
    const receipt = await whilePaused(app, async () => {
      const receipt = await app.deletions.destroy(Shop, shop);
      // Changed directly in the database after the request: the 30th product (second batch) is published.
      await sql(`update product set published = true where id = (select id from product where shop_id = ? order by id offset 29 limit 1)`, [shop]);
      return receipt;
    });
    const failed = await waitForState(app.deletions, receipt.requestId!);
    expect(failed.state).toBe('failed');
    expect(failed.errors).toEqual([
      {
        requestId: receipt.requestId,
        path: 'Shop',
        state: 'failed',
        error: expect.objectContaining({
          code: 'DELETION_BLOCKED',
          total: 1,
          blockers: [expect.objectContaining({ entity: 'Product', path: 'Shop.products', reason: 'published products cannot be deleted' })],
        }),
      },
    ]);
    // The first batch (20) committed; the second was refused whole; not retried blindly.
    expect(await count('product', `shop_id = ${shop}`)).toBe(30);
    const request = await sql(`select attempts from deletion_request where id = ?`, [receipt.requestId]);
    expect(request).toEqual([{ attempts: 1 }]);

    await sql(`update product set published = false where shop_id = ?`, [shop]);
    await app.deletions.retry(receipt.requestId!);
    expect((await waitForState(app.deletions, receipt.requestId!)).state).toBe('completed');
    expect(await count('product', `shop_id = ${shop}`)).toBe(0);
  });
});

describe('plan()', () => {
  it('reports counts and blockers per path on a three-level tree, and writes nothing', async () => {
    const shop = await seedShop({ products: 3, reviewsPerProduct: 2, ledgers: 4 });
    await sql(`update product set published = true where id = (select min(id) from product where shop_id = ?)`, [shop]);
    await sql(`update product_review set pinned = true where id in (select r.id from product_review r join product p on p.id = r.product_id where p.shop_id = ? order by r.id limit 2)`, [shop]);
    const before = await footprint(shop);

    const plan = await app.deletions.plan(Shop, shop);

    expect(plan).toMatchObject({ entity: 'Shop', id: shop, allowed: false, blockedTotal: 3 });
    expect(plan.paths.map(({ path, entity, policy, timing, rows, effect, blockedTotal }) => ({ path, entity, policy, timing, rows, effect, blockedTotal }))).toEqual([
      { path: 'Shop', entity: 'Shop', policy: 'root', timing: 'now', rows: 1, effect: 'delete', blockedTotal: 0 },
      { path: 'Shop.products', entity: 'Product', policy: 'destroyAsync', timing: 'later', rows: 3, effect: 'delete', blockedTotal: 1 },
      { path: 'Shop.products.reviews', entity: 'ProductReview', policy: 'deleteAllAsync', timing: 'later', rows: 6, effect: 'delete', blockedTotal: 2 },
      { path: 'Shop.ledgers', entity: 'Ledger', policy: 'deleteAllAsync', timing: 'later', rows: 4, effect: 'delete', blockedTotal: 0 },
    ]);
    expect(plan.paths[1]!.blockers).toEqual([expect.objectContaining({ entity: 'Product', reason: 'published products cannot be deleted' })]);
    expect(await footprint(shop)).toEqual(before);

    await sql(`update product set published = false where shop_id = ?`, [shop]);
    await sql(`update product_review set pinned = false`);
    expect((await app.deletions.plan(Shop, shop)).allowed).toBe(true);
    expect(await footprint(shop)).toEqual(before);
  });

  it('rejects an unknown id with a 404 error', async () => {
    await expect(app.deletions.plan(Shop, 987654)).rejects.toMatchObject({ code: 'DELETION_TARGET_NOT_FOUND' });
  });
});
