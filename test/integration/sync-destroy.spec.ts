import { describe, expect, it } from '@jest/globals';
import { definePolicy } from '../../lib/index.js';
import { useLibraryApp } from '../fixtures/library-app.js';
import { Author } from '../fixtures/library.entities.js';
import { authorIdsOf, countTree, intactState, seedAuthor, seedBystander, treeState, type AuthorSeed } from '../fixtures/library.seed.js';
import { TRIGGERS } from '../fixtures/triggers.js';

/** DESIGN 2: `destroy` removes the children through the ORM, on one-to-many and inverse one-to-one relations. */
describe('destroy policy', () => {
  const app = useLibraryApp('deletion_sync_destroy', { policies: [definePolicy(Author, { books: 'destroy', articles: 'destroy', profile: 'destroy', avatar: 'destroy' })] });

  const cases: [string, AuthorSeed][] = [
    ['books (one-to-many)', { books: 3 }],
    ['articles (one-to-many, nullable FK)', { articles: 2 }],
    ['profile (inverse one-to-one, NOT NULL FK)', { profile: true }],
    ['avatar (inverse one-to-one, nullable FK)', { avatar: true }],
    ['every relation at once', { books: 4, articles: 3, profile: true, avatar: true }],
    ['no children at all', {}],
  ];

  describe.each(TRIGGERS)('through %s', (_name, trigger) => {
    it.each(cases)('deletes the author and its %s, and nothing of another author', async (_relation, seed) => {
      const victim = await seedAuthor(app().em(), { name: 'victim', ...seed });
      const bystander = await seedBystander(app().em());

      await expect(trigger.run(app(), Author, victim.authorId)).resolves.toEqual(trigger.expected('Author', victim.authorId));

      expect(await countTree(app().em(), victim)).toEqual({ author: 0, book: 0, review: 0, article: 0, profile: 0, avatar: 0 });
      expect(await treeState(app().em(), bystander)).toEqual(intactState(bystander));
    });
  });

  describe('when the relation is already loaded in the flushing entity manager', () => {
    const removeLoaded = async (authorId: number) => {
      const em = app().em();
      const author = await em.findOneOrFail(Author, authorId, { populate: ['books', 'articles', 'profile', 'avatar'] });
      em.remove(author);
      await em.flush();
    };

    it.each<[string, AuthorSeed]>([
      ['books', { books: 3 }],
      ['profile', { profile: true }],
      ['avatar', { avatar: true }],
    ])('destroys the loaded %s', async (_relation, seed) => {
      const victim = await seedAuthor(app().em(), { name: 'victim', ...seed });
      const bystander = await seedBystander(app().em());

      await removeLoaded(victim.authorId);

      expect(await countTree(app().em(), victim)).toEqual({ author: 0, book: 0, review: 0, article: 0, profile: 0, avatar: 0 });
      expect(await treeState(app().em(), bystander)).toEqual(intactState(bystander));
    });

    it('destroys the loaded articles (nullable FK) instead of orphaning them', async () => {
      const victim = await seedAuthor(app().em(), { name: 'victim', articles: 2 });

      await removeLoaded(victim.authorId);

      expect(await authorIdsOf(app().em(), 'article', victim.articleIds)).toEqual([]);
      expect(await countTree(app().em(), victim)).toEqual({ author: 0, book: 0, review: 0, article: 0, profile: 0, avatar: 0 });
    });
  });
});
