import { describe, expect, it } from '@jest/globals';
import { definePolicy } from '../../lib/index.js';
import { HookJournal } from '../fixtures/hook-journal.js';
import { useLibraryApp } from '../fixtures/library-app.js';
import { Author, Book } from '../fixtures/library.entities.js';
import { authorIdsOf, countTree, fullCounts, seedAuthor, tableCount } from '../fixtures/library.seed.js';
import { TRIGGERS } from '../fixtures/triggers.js';
import { QueryLog } from '../support/query-log.js';

const journalBookIds = () =>
  HookJournal.entries
    .filter((e) => e.hook === 'Book.beforeDelete')
    .map((e) => e.id as number)
    .sort((a, b) => a - b);

/**
 * DESIGN 2: policies compose down the tree. Author.books destroy -> Book.reviews deleteAll,
 * Author.articles nullify, Author.profile destroy, Author.avatar deleteAll.
 */
describe('a three-level tree mixing policies', () => {
  const app = useLibraryApp('deletion_sync_tree', {
    batchSize: 2,
    policies: [
      definePolicy(Author, { books: 'destroy', articles: 'nullify', profile: 'destroy', avatar: 'deleteAll' }),
      definePolicy(Book, { reviews: 'deleteAll' }),
    ],
  });

  describe.each(TRIGGERS)('through %s', (_name, trigger) => {
    it('ends with exactly the expected rows', async () => {
      const victim = await seedAuthor(app().em(), { name: 'victim', books: 5, reviews: 3, articles: 4, profile: true, avatar: true });
      const bystander = await seedAuthor(app().em(), { name: 'bystander', books: 2, reviews: 2, articles: 2, profile: true, avatar: true });

      await expect(trigger.run(app(), Author, victim.authorId)).resolves.toEqual(trigger.expected('Author', victim.authorId));

      expect(await countTree(app().em(), victim)).toEqual({ author: 0, book: 0, review: 0, article: 4, profile: 0, avatar: 0 });
      expect(await authorIdsOf(app().em(), 'article', victim.articleIds)).toEqual([null, null, null, null]);
      expect(await countTree(app().em(), bystander)).toEqual(fullCounts(bystander));
      expect(await authorIdsOf(app().em(), 'article', bystander.articleIds)).toEqual([bystander.authorId, bystander.authorId]);
      expect(await tableCount(app().em(), 'author')).toBe(1);
      expect(await tableCount(app().em(), 'book')).toBe(2);
      expect(await tableCount(app().em(), 'review')).toBe(4);
      expect(await tableCount(app().em(), 'article')).toBe(6);
      expect(await tableCount(app().em(), 'profile')).toBe(1);
      expect(await tableCount(app().em(), 'avatar')).toBe(1);
    });

    it('runs the books’ hooks but not the reviews’, and deletes reviews set-based per batch of books', async () => {
      const victim = await seedAuthor(app().em(), { name: 'victim', books: 5, reviews: 3 });

      const { statements } = await app().queries.record(() => trigger.run(app(), Author, victim.authorId));

      expect(HookJournal.count('Book.beforeDelete')).toBe(5);
      expect(HookJournal.count('Book.afterDelete')).toBe(5);
      expect(HookJournal.count('Review.beforeDelete')).toBe(0);
      // 5 books in batches of 2: one reviews DELETE per batch, never one per review.
      expect(QueryLog.matching(statements, /^delete from "review"/i)).toHaveLength(3);
      expect(QueryLog.matching(statements, /^select .* from "review"/i)).toEqual([]);
      expect(await countTree(app().em(), victim)).toEqual({ author: 0, book: 0, review: 0, article: 0, profile: 0, avatar: 0 });
    });
  });

  it('applies Book’s own policy when a book alone is deleted', async () => {
    const victim = await seedAuthor(app().em(), { name: 'victim', books: 2, reviews: 3 });

    await expect(app().deletions.destroy(Book, victim.bookIds[0]!)).resolves.toEqual({ entity: 'Book', id: victim.bookIds[0], status: 'completed' });

    expect(await countTree(app().em(), victim)).toEqual({ ...fullCounts(victim), book: 1, review: 3 });
    expect(await tableCount(app().em(), 'review')).toBe(3);
  });

  it('deletes several authors removed in one flush, each with its own tree', async () => {
    const first = await seedAuthor(app().em(), { name: 'first', books: 3, reviews: 1, articles: 1, profile: true });
    const second = await seedAuthor(app().em(), { name: 'second', books: 2, reviews: 2, articles: 2, avatar: true });
    const bystander = await seedAuthor(app().em(), { name: 'bystander', books: 1, reviews: 1, articles: 1, profile: true, avatar: true });
    const em = app().em();
    em.remove(await em.find(Author, { id: { $in: [first.authorId, second.authorId] } }));

    await em.flush();

    expect(await countTree(app().em(), first)).toEqual({ author: 0, book: 0, review: 0, article: 1, profile: 0, avatar: 0 });
    expect(await countTree(app().em(), second)).toEqual({ author: 0, book: 0, review: 0, article: 2, profile: 0, avatar: 0 });
    expect(await authorIdsOf(app().em(), 'article', [...first.articleIds, ...second.articleIds])).toEqual([null, null, null]);
    expect(await countTree(app().em(), bystander)).toEqual(fullCounts(bystander));
    expect(HookJournal.count('Book.beforeDelete')).toBe(5);
  });

  it('deletes an author and one of its books removed together in one flush', async () => {
    const victim = await seedAuthor(app().em(), { name: 'victim', books: 3, reviews: 2, articles: 1 });
    const em = app().em();
    em.remove(await em.findOneOrFail(Author, victim.authorId));
    em.remove(await em.findOneOrFail(Book, victim.bookIds[1]!));

    await em.flush();

    expect(await countTree(app().em(), victim)).toEqual({ author: 0, book: 0, review: 0, article: 1, profile: 0, avatar: 0 });
    expect(journalBookIds()).toEqual(victim.bookIds);
  });
});
