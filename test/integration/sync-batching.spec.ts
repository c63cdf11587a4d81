import { describe, expect, it } from '@jest/globals';
import { definePolicy } from '../../lib/index.js';
import { HookJournal } from '../fixtures/hook-journal.js';
import { useLibraryApp } from '../fixtures/library-app.js';
import { Author, Book } from '../fixtures/library.entities.js';
import { addReviews, countTree, fullCounts, intactState, seedAuthor, seedBystander, treeState } from '../fixtures/library.seed.js';
import { TRIGGERS } from '../fixtures/triggers.js';
import { QueryLog } from '../support/query-log.js';

const selectsFrom = (statements: string[], table: string) => QueryLog.matching(statements, new RegExp(`^select .* from "${table}"`, 'i'));
const NOTHING_LEFT = { author: 0, book: 0, review: 0, article: 0, profile: 0, avatar: 0 };

/**
 * DESIGN 2 and 6: `destroy` walks children in keyset batches of `batchSize` (module option, or per
 * relation); `deleteAll` is one statement whatever the number of children.
 */
describe('batching', () => {
  const app = useLibraryApp('deletion_sync_batching', {
    batchSize: 10,
    policies: [
      definePolicy(Author, { books: 'destroy', articles: 'deleteAll' }),
      definePolicy(Book, { reviews: { policy: 'destroy', batchSize: 4 } }),
    ],
  });

  describe.each(TRIGGERS)('through %s', (_name, trigger) => {
    it('destroys 25 books with the module batchSize of 10: exactly 3 keyset SELECTs', async () => {
      const victim = await seedAuthor(app().em(), { name: 'victim', books: 25 });
      const bystander = await seedAuthor(app().em(), { name: 'bystander', books: 12 });

      const { statements } = await app().queries.record(() => trigger.run(app(), Author, victim.authorId));

      const selects = selectsFrom(statements, 'book');
      expect(selects).toHaveLength(3);
      // Keyset, not offset: the first page starts at the beginning, the next ones after a key.
      expect(selects[0]).not.toMatch(/"id" > \?/);
      expect(selects.slice(1).every((sql) => /"id" > \?/.test(sql) && /order by "b0"\."id" asc/.test(sql))).toBe(true);
      expect(QueryLog.matching(statements, /offset/i)).toEqual([]);
      expect(QueryLog.matching(statements, /^delete from "book"/i)).toHaveLength(3);
      expect(HookJournal.count('Book.afterDelete')).toBe(25);
      expect(await countTree(app().em(), victim)).toEqual(NOTHING_LEFT);
      expect(await countTree(app().em(), bystander)).toEqual(fullCounts(bystander));
    });

    it('uses the per-relation batchSize of 4 for the reviews of a book', async () => {
      const victim = await seedAuthor(app().em(), { name: 'victim', books: 1 });
      await addReviews(app().em(), victim, victim.bookIds[0]!, 10);
      const bystander = await seedBystander(app().em());

      const { statements } = await app().queries.record(() => trigger.run(app(), Author, victim.authorId));

      expect(selectsFrom(statements, 'review')).toHaveLength(3); // 4 + 4 + 2
      expect(HookJournal.count('Review.beforeDelete')).toBe(10);
      expect(await countTree(app().em(), victim)).toEqual(NOTHING_LEFT);
      expect(await treeState(app().em(), bystander)).toEqual(intactState(bystander));
    });

    it('deleteAll removes 1000 articles with exactly one DELETE and loads none of them', async () => {
      const victim = await seedAuthor(app().em(), { name: 'victim', articles: 1000 });
      const bystander = await seedAuthor(app().em(), { name: 'bystander', articles: 3 });

      const { statements } = await app().queries.record(() => trigger.run(app(), Author, victim.authorId));

      expect(QueryLog.matching(statements, /^delete from "article"/i)).toHaveLength(1);
      expect(selectsFrom(statements, 'article')).toEqual([]);
      expect(await countTree(app().em(), victim)).toEqual(NOTHING_LEFT);
      expect(await countTree(app().em(), bystander)).toEqual(fullCounts(bystander));
    });
  });

  it.each([9, 10, 11, 20])('destroys %i books, around the batch boundary, all of them', async (books) => {
    const victim = await seedAuthor(app().em(), { name: 'victim', books });

    await app().deletions.destroy(Author, victim.authorId);

    expect(HookJournal.count('Book.afterDelete')).toBe(books);
    expect(await countTree(app().em(), victim)).toEqual(NOTHING_LEFT);
  });

  it('applies the books’ own policy once per batch of books, set-based', async () => {
    const victim = await seedAuthor(app().em(), { name: 'victim', books: 25, reviews: 1 });

    const { statements } = await app().queries.record(() => app().deletions.destroy(Author, victim.authorId));

    // Books in batches of 10, 10, 5; their reviews in pages of 4: (4, 4, 2) + (4, 4, 2) + (4, 1).
    expect(selectsFrom(statements, 'review')).toHaveLength(8);
    expect(HookJournal.count('Review.beforeDelete')).toBe(25);
    expect(await countTree(app().em(), victim)).toEqual(NOTHING_LEFT);
  });
});
