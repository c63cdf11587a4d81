import { ForeignKeyConstraintViolationException } from '@mikro-orm/core';
import { describe, expect, it } from '@jest/globals';
import { definePolicy } from '../../lib/index.js';
import { useLibraryApp } from '../fixtures/library-app.js';
import { Author } from '../fixtures/library.entities.js';
import { authorIdsOf, countTree, fullCounts, intactState, seedAuthor, seedBystander, treeState, useNoActionForeignKeys } from '../fixtures/library.seed.js';
import { TRIGGERS } from '../fixtures/triggers.js';
import { QueryLog } from '../support/query-log.js';

/**
 * DESIGN 2: `nullify` keeps the children and sets their foreign key to NULL, in one UPDATE per
 * relation. The foreign keys are plain (NO ACTION) here, so a NULL the database set by itself
 * cannot pass for the policy's work.
 */
describe('nullify policy', () => {
  const app = useLibraryApp('deletion_sync_nullify', { policies: [definePolicy(Author, { articles: 'nullify', avatar: 'nullify' })] }, (booted) => useNoActionForeignKeys(booted.em(), ['article', 'avatar']));

  it('runs against foreign keys that refuse the delete when nothing nulls the children (control)', async () => {
    const victim = await seedAuthor(app().em(), { articles: 1 });

    await expect(app().em().nativeDelete(Author, { id: victim.authorId })).rejects.toBeInstanceOf(ForeignKeyConstraintViolationException);
    expect(await countTree(app().em(), victim)).toEqual(fullCounts(victim));
  });

  describe.each(TRIGGERS)('through %s', (_name, trigger) => {
    it('keeps the articles (one-to-many) with a NULL author_id, and another author’s articles untouched', async () => {
      const victim = await seedAuthor(app().em(), { name: 'victim', articles: 3 });
      const bystander = await seedAuthor(app().em(), { name: 'bystander', books: 1, reviews: 1, articles: 2, profile: true, avatar: true });

      await expect(trigger.run(app(), Author, victim.authorId)).resolves.toEqual(trigger.expected('Author', victim.authorId));

      expect(await countTree(app().em(), victim)).toEqual({ ...fullCounts(victim), author: 0 });
      expect(await authorIdsOf(app().em(), 'article', victim.articleIds)).toEqual([null, null, null]);
      expect(await countTree(app().em(), bystander)).toEqual(fullCounts(bystander));
      expect(await authorIdsOf(app().em(), 'article', bystander.articleIds)).toEqual([bystander.authorId, bystander.authorId]);
      expect(await authorIdsOf(app().em(), 'avatar', bystander.avatarIds)).toEqual([bystander.authorId]);
    });

    it('keeps the avatar (inverse one-to-one) with a NULL author_id, and another author’s avatar untouched', async () => {
      const victim = await seedAuthor(app().em(), { name: 'victim', avatar: true });
      const bystander = await seedAuthor(app().em(), { name: 'bystander', articles: 1, avatar: true });

      await expect(trigger.run(app(), Author, victim.authorId)).resolves.toEqual(trigger.expected('Author', victim.authorId));

      expect(await countTree(app().em(), victim)).toEqual({ ...fullCounts(victim), author: 0 });
      expect(await authorIdsOf(app().em(), 'avatar', victim.avatarIds)).toEqual([null]);
      expect(await countTree(app().em(), bystander)).toEqual(fullCounts(bystander));
      expect(await authorIdsOf(app().em(), 'avatar', bystander.avatarIds)).toEqual([bystander.authorId]);
      expect(await authorIdsOf(app().em(), 'article', bystander.articleIds)).toEqual([bystander.authorId]);
    });

    it('nullifies both relations with one UPDATE each, whatever the number of children', async () => {
      const victim = await seedAuthor(app().em(), { name: 'victim', articles: 40, avatar: true });
      const bystander = await seedAuthor(app().em(), { name: 'bystander', articles: 5, avatar: true });

      const { statements } = await app().queries.record(() => trigger.run(app(), Author, victim.authorId));

      expect(QueryLog.matching(statements, /^update "article"/i)).toHaveLength(1);
      expect(QueryLog.matching(statements, /^update "avatar"/i)).toHaveLength(1);
      expect(QueryLog.matching(statements, /^select .* from "article"/i)).toHaveLength(0);
      expect(await authorIdsOf(app().em(), 'article', victim.articleIds)).toEqual(victim.articleIds.map(() => null));
      expect(await authorIdsOf(app().em(), 'avatar', victim.avatarIds)).toEqual([null]);
      expect(await countTree(app().em(), victim)).toEqual({ ...fullCounts(victim), author: 0 });
      expect(await authorIdsOf(app().em(), 'article', bystander.articleIds)).toEqual(bystander.articleIds.map(() => bystander.authorId));
    });
  });

  it('nullifies children already loaded in the flushing entity manager', async () => {
    const victim = await seedAuthor(app().em(), { name: 'victim', articles: 2, avatar: true });
    const bystander = await seedBystander(app().em());
    const em = app().em();
    const author = await em.findOneOrFail(Author, victim.authorId, { populate: ['articles', 'avatar'] });

    em.remove(author);
    await em.flush();

    expect(await countTree(app().em(), victim)).toEqual({ ...fullCounts(victim), author: 0 });
    expect(await authorIdsOf(app().em(), 'article', victim.articleIds)).toEqual([null, null]);
    expect(await authorIdsOf(app().em(), 'avatar', victim.avatarIds)).toEqual([null]);
    expect(await treeState(app().em(), bystander)).toEqual(intactState(bystander));
  });
});
