import { ForeignKeyConstraintViolationException } from '@mikro-orm/core';
import { describe, expect, it } from '@jest/globals';
import { definePolicy } from '../../lib/index.js';
import { HookJournal } from '../fixtures/hook-journal.js';
import { useLibraryApp } from '../fixtures/library-app.js';
import { Author } from '../fixtures/library.entities.js';
import { authorIdsOf, countTree, fullCounts, intactState, seedAuthor, seedBystander, treeState, type AuthorSeed } from '../fixtures/library.seed.js';
import { TRIGGERS } from '../fixtures/triggers.js';
import { QueryLog } from '../support/query-log.js';

/** DESIGN 2: `deleteAll` removes the children with one set-based DELETE, without loading them or running their hooks. */
describe('deleteAll policy', () => {
  const app = useLibraryApp('deletion_sync_delete_all', { policies: [definePolicy(Author, { books: 'deleteAll', articles: 'deleteAll', profile: 'deleteAll', avatar: 'deleteAll' })] });

  const cases: [string, AuthorSeed, string][] = [
    ['books (one-to-many)', { books: 3 }, 'book'],
    ['articles (one-to-many, nullable FK)', { articles: 2 }, 'article'],
    ['profile (inverse one-to-one, NOT NULL FK)', { profile: true }, 'profile'],
    ['avatar (inverse one-to-one, nullable FK)', { avatar: true }, 'avatar'],
  ];

  describe.each(TRIGGERS)('through %s', (_name, trigger) => {
    it.each(cases)('deletes the author and its %s with one DELETE, and nothing of another author', async (_relation, seed, table) => {
      const victim = await seedAuthor(app().em(), { name: 'victim', ...seed });
      const bystander = await seedAuthor(app().em(), { name: 'bystander', books: 2, reviews: 1, articles: 2, profile: true, avatar: true });

      const { result, statements } = await app().queries.record(() => trigger.run(app(), Author, victim.authorId));

      expect(result).toEqual(trigger.expected('Author', victim.authorId));
      expect(QueryLog.matching(statements, new RegExp(`^delete from "${table}"`, 'i'))).toHaveLength(1);
      expect(QueryLog.matching(statements, new RegExp(`^select .* from "${table}"`, 'i'))).toEqual([]);
      expect(await countTree(app().em(), victim)).toEqual({ author: 0, book: 0, review: 0, article: 0, profile: 0, avatar: 0 });
      expect(await countTree(app().em(), bystander)).toEqual(fullCounts(bystander));
      expect(await authorIdsOf(app().em(), 'article', bystander.articleIds)).toEqual([bystander.authorId, bystander.authorId]);
    });

    it('deletes every relation at once and runs no child hook', async () => {
      const victim = await seedAuthor(app().em(), { name: 'victim', books: 4, articles: 3, profile: true, avatar: true });
      const bystander = await seedAuthor(app().em(), { name: 'bystander', books: 2, articles: 1, profile: true, avatar: true });

      await expect(trigger.run(app(), Author, victim.authorId)).resolves.toEqual(trigger.expected('Author', victim.authorId));

      expect(await countTree(app().em(), victim)).toEqual({ author: 0, book: 0, review: 0, article: 0, profile: 0, avatar: 0 });
      expect(await countTree(app().em(), bystander)).toEqual(fullCounts(bystander));
      expect(HookJournal.entries).toEqual([]);
    });

    it('fails as the database does when a child has children of its own, and deletes nothing', async () => {
      // deleteAll does not walk the tree: Book has no policy for its reviews, and review.book_id is NOT NULL.
      const victim = await seedAuthor(app().em(), { name: 'victim', books: 2, reviews: 2, articles: 2, profile: true, avatar: true });
      const bystander = await seedBystander(app().em());

      await expect(trigger.run(app(), Author, victim.authorId)).rejects.toBeInstanceOf(ForeignKeyConstraintViolationException);

      expect(await treeState(app().em(), victim)).toEqual(intactState(victim));
      expect(await treeState(app().em(), bystander)).toEqual(intactState(bystander));
    });
  });

  it('deletes children already loaded in the flushing entity manager (books, NOT NULL FK)', async () => {
    const victim = await seedAuthor(app().em(), { name: 'victim', books: 2 });
    const bystander = await seedBystander(app().em());
    const em = app().em();
    em.remove(await em.findOneOrFail(Author, victim.authorId, { populate: ['books'] }));
    await em.flush();

    expect(await countTree(app().em(), victim)).toEqual({ author: 0, book: 0, review: 0, article: 0, profile: 0, avatar: 0 });
    expect(await treeState(app().em(), bystander)).toEqual(intactState(bystander));
  });

  // em.remove() detaches loaded children of a nullable collection; the policy must still see them.
  it('deletes articles (nullable FK) already loaded in the flushing entity manager', async () => {
    const victim = await seedAuthor(app().em(), { name: 'victim', articles: 2 });
    const em = app().em();
    em.remove(await em.findOneOrFail(Author, victim.authorId, { populate: ['articles'] }));
    await em.flush();

    expect(await countTree(app().em(), victim)).toEqual({ author: 0, book: 0, review: 0, article: 0, profile: 0, avatar: 0 });
  });
});
