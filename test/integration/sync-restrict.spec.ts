import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import request from 'supertest';
import { DeletionRestrictedError, DeletionService, DeletionTargetNotFoundError, definePolicy } from '../../lib/index.js';
import { AuthorDeletionController } from '../fixtures/author-deletion.controller.js';
import { useLibraryApp } from '../fixtures/library-app.js';
import { Author } from '../fixtures/library.entities.js';
import { authorIdsOf, countTree, fullCounts, intactState, seedAuthor, seedBystander, treeState, type AuthorSeed } from '../fixtures/library.seed.js';
import { TRIGGERS } from '../fixtures/triggers.js';

/** DESIGN 2 and 3: `restrict` refuses the deletion while children exist (DeletionRestrictedError, HTTP 409). */
describe('restrict policy', () => {
  const app = useLibraryApp('deletion_sync_restrict', { policies: [definePolicy(Author, { books: 'restrict', articles: 'restrict', profile: 'restrict', avatar: 'restrict' })] });

  const cases: [string, AuthorSeed, string, number][] = [
    ['books', { books: 3, reviews: 2 }, 'Book', 3],
    ['articles', { articles: 2 }, 'Article', 2],
    ['profile', { profile: true }, 'Profile', 1],
    ['avatar', { avatar: true }, 'Avatar', 1],
  ];

  describe.each(TRIGGERS)('through %s', (_name, trigger) => {
    it.each(cases)('refuses while %s exist, with the exact count, and deletes nothing', async (relation, seed, childEntity, count) => {
      const victim = await seedAuthor(app().em(), { name: 'victim', ...seed });
      const bystander = await seedBystander(app().em());

      const error = await trigger.run(app(), Author, victim.authorId).then(
        () => undefined,
        (e: unknown) => e,
      );

      expect(error).toBeInstanceOf(DeletionRestrictedError);
      expect(error).toMatchObject({ code: 'DELETION_RESTRICTED', entity: 'Author', id: victim.authorId, relation, childEntity, count });
      expect((error as DeletionRestrictedError).getStatus()).toBe(409);
      expect(await treeState(app().em(), victim)).toEqual(intactState(victim));
      expect(await treeState(app().em(), bystander)).toEqual(intactState(bystander));
    });

    it('names one restricted relation with its exact count when several have children, and keeps every row and foreign key', async () => {
      const victim = await seedAuthor(app().em(), { name: 'victim', articles: 4, avatar: true });
      const bystander = await seedBystander(app().em());

      const error = await trigger.run(app(), Author, victim.authorId).catch((e: DeletionRestrictedError) => e);

      expect(error).toBeInstanceOf(DeletionRestrictedError);
      const { relation, count } = error as DeletionRestrictedError;
      expect([['articles', 4], ['avatar', 1]]).toContainEqual([relation, count]);

      expect(await countTree(app().em(), victim)).toEqual(fullCounts(victim));
      expect(await authorIdsOf(app().em(), 'article', victim.articleIds)).toEqual(victim.articleIds.map(() => victim.authorId));
      expect(await authorIdsOf(app().em(), 'avatar', victim.avatarIds)).toEqual([victim.authorId]);
      expect(await treeState(app().em(), bystander)).toEqual(intactState(bystander));
    });

    it('lets an author without children go, and leaves another author’s children alone', async () => {
      const victim = await seedAuthor(app().em(), { name: 'victim' });
      const bystander = await seedAuthor(app().em(), { name: 'bystander', books: 2, reviews: 1, articles: 1, profile: true, avatar: true });

      await expect(trigger.run(app(), Author, victim.authorId)).resolves.toEqual(trigger.expected('Author', victim.authorId));

      expect(await countTree(app().em(), victim)).toEqual({ ...fullCounts(victim), author: 0 });
      expect(await countTree(app().em(), bystander)).toEqual(fullCounts(bystander));
    });
  });

  it.each<[string, AuthorSeed, number]>([
    ['books', { books: 2 }, 2],
    ['avatar', { avatar: true }, 1],
  ])('refuses while the %s are loaded in the flushing entity manager', async (relation, seed, count) => {
    const victim = await seedAuthor(app().em(), { name: 'victim', ...seed });
    const bystander = await seedBystander(app().em());
    const em = app().em();
    const author = await em.findOneOrFail(Author, victim.authorId, { populate: ['books', 'articles', 'avatar'] });
    em.remove(author);

    await expect(em.flush()).rejects.toMatchObject({ code: 'DELETION_RESTRICTED', relation, count });
    expect(await treeState(app().em(), victim)).toEqual(intactState(victim));
    expect(await treeState(app().em(), bystander)).toEqual(intactState(bystander));
  });

  it('refuses while the articles (nullable FK) are loaded in the flushing entity manager', async () => {
    const victim = await seedAuthor(app().em(), { name: 'victim', articles: 2 });
    const em = app().em();
    const author = await em.findOneOrFail(Author, victim.authorId, { populate: ['articles'] });
    em.remove(author);

    await expect(em.flush()).rejects.toMatchObject({ code: 'DELETION_RESTRICTED', relation: 'articles', count: 2 });
    expect(await countTree(app().em(), victim)).toEqual(fullCounts(victim));
    expect(await authorIdsOf(app().em(), 'article', victim.articleIds)).toEqual([victim.authorId, victim.authorId]);
  });

  describe('over HTTP', () => {
    let http: INestApplication;

    beforeAll(async () => {
      const module = await Test.createTestingModule({
        controllers: [AuthorDeletionController],
        providers: [{ provide: DeletionService, useValue: app().deletions }],
      }).compile();
      http = module.createNestApplication({ logger: false });
      await http.init();
    });

    afterAll(async () => {
      await http?.close();
    });

    it('answers 409 with the restriction in the JSON body, and deletes nothing', async () => {
      const victim = await seedAuthor(app().em(), { name: 'victim', books: 2, reviews: 3 });
      const bystander = await seedBystander(app().em());

      const response = await request(http.getHttpServer()).delete(`/authors/${victim.authorId}`);

      expect(response.status).toBe(409);
      expect(response.body).toEqual({
        statusCode: 409,
        error: 'Conflict',
        code: 'DELETION_RESTRICTED',
        entity: 'Author',
        id: victim.authorId,
        relation: 'books',
        childEntity: 'Book',
        count: 2,
        message: expect.stringContaining('"books" is restricted and still has 2 Book rows'),
      });
      expect(await treeState(app().em(), victim)).toEqual(intactState(victim));
      expect(await treeState(app().em(), bystander)).toEqual(intactState(bystander));
    });

    it('answers 404 with DELETION_TARGET_NOT_FOUND for an unknown id', async () => {
      const response = await request(http.getHttpServer()).delete('/authors/987654');

      expect(response.status).toBe(404);
      expect(response.body).toMatchObject({ statusCode: 404, code: DeletionTargetNotFoundError.CODE, entity: 'Author', id: 987654 });
      expect(response.body.message).toEqual(expect.stringContaining('Author 987654 does not exist'));
    });

    it('answers 200 with a completed receipt when nothing restricts the deletion', async () => {
      const victim = await seedAuthor(app().em(), { name: 'victim' });

      const response = await request(http.getHttpServer()).delete(`/authors/${victim.authorId}`);

      expect(response.status).toBe(200);
      expect(response.body).toEqual({ entity: 'Author', id: victim.authorId, status: 'completed' });
      expect(await countTree(app().em(), victim)).toEqual({ ...fullCounts(victim), author: 0 });
    });
  });
});
