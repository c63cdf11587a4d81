import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Collection, type Rel } from '@mikro-orm/core';
import { Entity, ManyToOne, OneToMany, PrimaryKey, Property } from '@mikro-orm/decorators/legacy';
import { DeletionError, definePolicy } from '../../../lib/index.js';
import { createDeletionTestApp, type DeletionTestApp } from '../../support/deletion-test-app.js';

/** A row as `execute()` returns it, untyped. */
type Row = Record<string, unknown>;

/** A smallint key: the codec accepts the int4 range for it. */

@Entity()
class Shelf {
  @PrimaryKey({ type: 'smallint', autoincrement: false }) id!: number;
  @Property() name!: string;
  @OneToMany(() => Book, (b) => b.shelf) books = new Collection<Book>(this);
}

@Entity()
class Book {
  @PrimaryKey({ autoincrement: false }) id!: number;
  @ManyToOne(() => Shelf, { nullable: true, createForeignKeyConstraint: false, index: true }) shelf?: Rel<Shelf> | null;
}

/**
 * Shape: a smallint primary key addressed with ids outside its range (number and string), which must
 * be a DeletionError (400/404) from destroy() and plan(), never a 500. From the adversarial review of
 * issue 11.
 */
describe('key shapes', () => {
  let app: DeletionTestApp;
  const sql = (q: string): Promise<Row[]> => app.em().getConnection().execute(q);
  beforeAll(async () => {
    app = await createDeletionTestApp({
      database: 'deletion_review_keys',
      entities: [Shelf, Book],
      deletion: { doctor: 'off', policies: [definePolicy(Shelf, { books: 'deleteAll' })] },
    });
  });
  afterAll(() => app?.close());

  it.each([40000, '40000', -40000])('smallint key: destroy(Shelf, %p), out of the column’s range, is a DeletionError (400/404), not a 500', async (id) => {
    await sql(`insert into shelf (id, name) values (7, 'seven') on conflict do nothing`);
    const error = await app.deletions.destroy(Shelf, id as number).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(DeletionError);
    expect([400, 404]).toContain((error as DeletionError).getStatus?.() ?? (error as { status?: number }).status);
  });

  it('smallint key: plan(Shelf, 40000) is a DeletionError, not a 500', async () => {
    const error = await app.deletions.plan(Shelf, 40000).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(DeletionError);
  });
});
