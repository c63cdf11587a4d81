import { describe, expect, it } from '@jest/globals';
import { DeletionRestrictedError, definePolicy } from '../../lib/index.js';
import { HookJournal } from '../fixtures/hook-journal.js';
import { useLibraryApp } from '../fixtures/library-app.js';
import { Author, Book } from '../fixtures/library.entities.js';
import { addReviews, authorIdsOf, countTree, fullCounts, intactState, seedAuthor, seedBystander, treeState } from '../fixtures/library.seed.js';
import { TRIGGERS } from '../fixtures/triggers.js';

/**
 * DESIGN 2 and 3: a failure anywhere in the tree rolls the whole deletion back. Books go in batches
 * of 2 and the failing review sits on the last of 5 books, so two batches of books, the articles'
 * nullify and the profile's destroy have already been written when the failure comes.
 */
const authorPolicy = definePolicy(Author, { articles: 'nullify', profile: 'destroy', books: 'destroy' });

describe('a failure deep in the tree', () => {
  describe('Author.books destroy -> Book.reviews restrict', () => {
    const app = useLibraryApp('deletion_sync_rollback_restrict', { batchSize: 2, policies: [authorPolicy, definePolicy(Book, { reviews: 'restrict' })] });

    describe.each(TRIGGERS)('through %s', (_name, trigger) => {
      it('one review on the last book: refused, nothing deleted anywhere', async () => {
        const victim = await seedAuthor(app().em(), { name: 'victim', books: 5, articles: 2, profile: true, avatar: true });
        const lastBook = victim.bookIds.at(-1)!;
        await addReviews(app().em(), victim, lastBook, 1);
        const bystander = await seedAuthor(app().em(), { name: 'bystander', books: 1, articles: 1, profile: true });

        const error = await trigger.run(app(), Author, victim.authorId).catch((e: unknown) => e);

        expect(error).toBeInstanceOf(DeletionRestrictedError);
        expect(error).toMatchObject({ code: 'DELETION_RESTRICTED', entity: 'Book', id: lastBook, relation: 'reviews', childEntity: 'Review', count: 1 });
        // The first two batches of books were deleted before the refusal, then rolled back.
        expect(HookJournal.count('Book.afterDelete')).toBe(4);
        expect(await countTree(app().em(), victim)).toEqual(fullCounts(victim));
        expect(await authorIdsOf(app().em(), 'article', victim.articleIds)).toEqual([victim.authorId, victim.authorId]);
        expect(await authorIdsOf(app().em(), 'book', victim.bookIds)).toEqual(victim.bookIds.map(() => victim.authorId));
        expect(await countTree(app().em(), bystander)).toEqual(fullCounts(bystander));
      });

      it('goes through once no book has a review (control)', async () => {
        const victim = await seedAuthor(app().em(), { name: 'victim', books: 5, articles: 2, profile: true });

        await trigger.run(app(), Author, victim.authorId);

        expect(await countTree(app().em(), victim)).toEqual({ author: 0, book: 0, review: 0, article: 2, profile: 0, avatar: 0 });
      });
    });

    it('the same entity manager can remove the author again once the obstacle is gone', async () => {
      const victim = await seedAuthor(app().em(), { name: 'victim', books: 3, articles: 1 });
      await addReviews(app().em(), victim, victim.bookIds[1]!, 2);
      const em = app().em();
      const author = await em.findOneOrFail(Author, victim.authorId);
      em.remove(author);

      // The refusal names the batch of books it checked (2 per batch here), with their reviews' count.
      await expect(em.flush()).rejects.toMatchObject({ code: 'DELETION_RESTRICTED', id: victim.bookIds.slice(0, 2), count: 2 });
      expect(await countTree(app().em(), victim)).toEqual(fullCounts(victim));
      await app().em().getConnection().execute('delete from "review"');
      em.remove(author); // MikroORM forgets a failed flush's removals
      await em.flush();

      expect(await countTree(app().em(), victim)).toEqual({ author: 0, book: 0, review: 0, article: 1, profile: 0, avatar: 0 });
    });
  });

  describe('Author.books destroy -> Book.reviews destroy, with a Review hook that throws', () => {
    const app = useLibraryApp('deletion_sync_rollback_hook', { batchSize: 2, policies: [authorPolicy, definePolicy(Book, { reviews: 'destroy' })] });

    describe.each(TRIGGERS)('through %s', (_name, trigger) => {
      it('the hook’s error comes out and nothing is deleted', async () => {
        const victim = await seedAuthor(app().em(), { name: 'victim', books: 5, reviews: 1, articles: 2, profile: true });
        const [bomb] = await addReviews(app().em(), victim, victim.bookIds.at(-1)!, 1, 'explode on delete');
        const bystander = await seedBystander(app().em());

        await expect(trigger.run(app(), Author, victim.authorId)).rejects.toThrow(`review ${bomb} refuses to be deleted`);

        expect(HookJournal.entries).toContainEqual({ hook: 'Review.beforeDelete', id: bomb });
        expect(HookJournal.count('Book.afterDelete')).toBe(4);
        expect(await countTree(app().em(), victim)).toEqual(fullCounts(victim));
        expect(await authorIdsOf(app().em(), 'article', victim.articleIds)).toEqual([victim.authorId, victim.authorId]);
        expect(await authorIdsOf(app().em(), 'profile', victim.profileIds)).toEqual([victim.authorId]);
        expect(await treeState(app().em(), bystander)).toEqual(intactState(bystander));
      });

      it('goes through when no review explodes (control)', async () => {
        const victim = await seedAuthor(app().em(), { name: 'victim', books: 5, reviews: 2, articles: 2, profile: true });

        await trigger.run(app(), Author, victim.authorId);

        expect(await countTree(app().em(), victim)).toEqual({ author: 0, book: 0, review: 0, article: 2, profile: 0, avatar: 0 });
        expect(HookJournal.count('Review.beforeDelete')).toBe(10);
      });
    });
  });
});
