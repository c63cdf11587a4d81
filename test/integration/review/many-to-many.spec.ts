import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Collection, type Rel } from '@mikro-orm/core';
import { Entity, ManyToMany, ManyToOne, OneToMany, PrimaryKey, Property } from '@mikro-orm/decorators/legacy';
import { DeletionRequest, DeletionRestrictedError, definePolicy, type PolicyName } from '../../../lib/index.js';
import { createDeletionTestApp, type DeletionTestApp } from '../../support/deletion-test-app.js';
import { waitUntil } from '../../support/wait.js';

/** A row as `execute()` returns it, untyped. */
type Row = Record<string, unknown>;

/**
 * Many-to-many `restrict` reached below a queued policy: owning side, inverse side, and declared on
 * a single-table-inheritance subclass reached through a relation typed to the base.
 */

@Entity()
class Library {
  @PrimaryKey({ autoincrement: false }) id!: number;
  @OneToMany(() => Item, (i) => i.library) items = new Collection<Item>(this);
}

@Entity({ discriminatorColumn: 'kind', discriminatorMap: { book: 'Book', disc: 'Disc' } })
class Item {
  @PrimaryKey({ autoincrement: false }) id!: number;
  @Property({ nullable: true }) kind?: string;
  @ManyToOne(() => Library, { nullable: true, createForeignKeyConstraint: false, index: true }) library?: Rel<Library> | null;
}

@Entity()
class Writer {
  @PrimaryKey({ autoincrement: false }) id!: number;
}

@Entity()
class Genre {
  @PrimaryKey({ autoincrement: false }) id!: number;
  @ManyToMany(() => Book, (b) => b.genres, { owner: true, pivotTable: 'genre_book' }) books = new Collection<Book>(this);
}

@Entity({ discriminatorValue: 'book' })
class Book extends Item {
  @ManyToMany(() => Writer, undefined, { pivotTable: 'book_writer' }) writers = new Collection<Writer>(this);
  @ManyToMany(() => Genre, (g) => g.books) genres = new Collection<Genre>(this);
}

@Entity({ discriminatorValue: 'disc' })
class Disc extends Item {}

const OUTER: PolicyName[] = ['destroy', 'destroyAsync', 'nullifyThenPurge'];

/**
 * Shape: many-to-many `restrict` (owning and inverse side) declared on a single-table-inheritance
 * subclass and reached below a queued or synchronous policy through a relation typed to the base.
 * From the adversarial review of issue 11.
 */
describe.each(OUTER)('Library.items under %s; Book.writers (owning) and Book.genres (inverse) under restrict', (policy) => {
  let app: DeletionTestApp;
  const sql = (q: string): Promise<Row[]> => app.em().getConnection().execute(q);
  const snapshot = async () => ({
    library: (await sql('select id from library order by id')).map((r: Row) => r.id),
    item: (await sql('select id, library_id from item order by id')).map((r: Row) => `${r.id}@${r.library_id}`),
    bw: (await sql('select * from book_writer order by 1, 2')).length,
    gb: (await sql('select * from genre_book order by 1, 2')).length,
  });
  beforeAll(async () => {
    app = await createDeletionTestApp({
      database: `deletion_review_m2m_${policy.toLowerCase()}`,
      entities: [Library, Item, Book, Disc, Writer, Genre],
      deletion: { doctor: 'off', queue: { attempts: 1, backoffMs: 10 }, policies: [definePolicy(Library, { items: policy }), definePolicy(Book, { writers: 'restrict', genres: 'restrict' })] },
    });
    await sql(`insert into writer (id) values (1)`);
    await sql(`insert into genre (id) values (1)`);
  });
  afterAll(() => app?.close());

  it.each([
    ['a writer', `insert into book_writer (item_id, writer_id) values (11, 1)`],
    ['a genre', `insert into genre_book (genre_id, item_id) values (1, 11)`],
  ])('refuses in the request (409) while a book of the library has %s; plan() says not allowed; nothing changes', async (_label, link) => {
    await sql(`delete from book_writer; delete from genre_book; delete from item; delete from library`);
    await sql(`insert into library (id) values (1), (2)`);
    // disc 12 has the id space of a book but is a disc; book 21 is in another library
    await sql(`insert into item (id, kind, library_id) values (11, 'book', 1), (12, 'disc', 1), (21, 'book', 2)`);
    await sql(link);
    const before = await snapshot();
    const plan = await app.deletions.plan(Library, 1);
    const error = await app.deletions.destroy(Library, 1).then(
      () => undefined,
      (e: unknown) => e,
    );
    await waitUntil(async () => (await app.em().count(DeletionRequest, { state: { $in: ['pending', 'running'] } })) === 0, 10_000);
    expect({ allowed: plan.allowed, error: error?.constructor.name, after: await snapshot() }).toEqual({ allowed: false, error: DeletionRestrictedError.name, after: before });
  });

  it('deletes a library whose books have no links, while another library’s book keeps its links', async () => {
    await sql(`delete from book_writer; delete from genre_book; delete from item; delete from library`);
    await sql(`insert into library (id) values (1), (2)`);
    await sql(`insert into item (id, kind, library_id) values (11, 'book', 1), (12, 'disc', 1), (21, 'book', 2)`);
    await sql(`insert into book_writer (item_id, writer_id) values (21, 1)`);
    await sql(`insert into genre_book (genre_id, item_id) values (1, 21)`);
    expect((await app.deletions.plan(Library, 1)).allowed).toBe(true);
    await app.deletions.destroy(Library, 1);
    await waitUntil(async () => (await app.em().count(DeletionRequest, { state: { $in: ['pending', 'running'] } })) === 0, 10_000);
    expect(await app.em().count(DeletionRequest, { state: 'failed' })).toBe(0);
    const after = await snapshot();
    expect(after).toEqual({ library: [2], item: policy === 'nullifyThenPurge' ? ['21@2'] : ['21@2'], bw: 1, gb: 1 });
  });
});
