import { ForeignKeyConstraintViolationException, MikroORM, type EntityManager } from '@mikro-orm/core';
import { ReflectMetadataProvider } from '@mikro-orm/decorators/legacy';
import { PostgreSqlDriver } from '@mikro-orm/postgresql';
import { describe, expect, it } from '@jest/globals';
import { definePolicy, type DeletionModuleOptions } from '../../lib/index.js';
import { HookJournal } from '../fixtures/hook-journal.js';
import { Author, LIBRARY_ENTITIES, Shelf } from '../fixtures/library.entities.js';
import { authorIdsOf, countTree, fullCounts, seedAuthor, tableCount, type AuthorSeed } from '../fixtures/library.seed.js';
import { createDeletionTestApp, type DeletionTestApp } from '../support/deletion-test-app.js';
import { QueryLog } from '../support/query-log.js';
import { createTestDatabase, databaseUrl } from '../support/services.js';

/** What a scenario observed: compared between MikroORM alone and MikroORM with the module. */
interface Context {
  em: () => EntityManager;
  log: QueryLog;
}
type Scenario<C = Context> = (context: C) => Promise<unknown>;

/** Runs `scenario` on MikroORM alone, without the module: the reference behaviour. */
async function withoutModule(scenario: Scenario): Promise<unknown> {
  await createTestDatabase('deletion_sync_no_policy_plain');
  const log = new QueryLog();
  const orm = await MikroORM.init({
    driver: PostgreSqlDriver,
    clientUrl: databaseUrl('deletion_sync_no_policy_plain'),
    entities: LIBRARY_ENTITIES,
    metadataProvider: ReflectMetadataProvider,
    debug: ['query'],
    colors: false,
    logger: log.logger,
  });
  try {
    await orm.schema.refresh();
    return await scenario({ em: () => orm.em.fork(), log });
  } finally {
    await orm.close();
  }
}

/**
 * Runs `scenario` with the DeletionModule booted with `deletion`. One ORM at a time: two MikroORM
 * instances open on the same entity classes disturb each other.
 */
async function withModule(deletion: DeletionModuleOptions, scenario: Scenario<Context & { app: DeletionTestApp }>): Promise<unknown> {
  const app = await createDeletionTestApp({ database: 'deletion_sync_no_policy', entities: LIBRARY_ENTITIES, deletion });
  try {
    return await scenario({ em: () => app.em(), log: app.queries, app });
  } finally {
    await app.close();
  }
}

/** Removes one row with em.remove + em.flush and reports the error class, the SQL and what is left. */
function removal<T extends object>(seed: (em: EntityManager) => Promise<{ entity: new () => T; id: number; left: () => Promise<unknown> }>): Scenario {
  return async ({ em, log }) => {
    const { entity, id, left } = await seed(em());
    const { result: error, statements } = await log.record(async () => {
      const fork = em();
      fork.remove(await fork.findOneOrFail(entity, id as never));
      return fork.flush().then(
        () => undefined,
        (e: unknown) => e,
      );
    });
    // Only the library's tables: the module's own background work (its outbox relay runs at boot)
    // may log statements on its tables meanwhile.
    const library = statements.filter((sql) => /"(author|book|review|article|profile|avatar|shelf)"/.test(sql));
    return { error: error === undefined ? undefined : (error as object).constructor, statements: library, left: await left() };
  };
}

const removeAuthor = (seed: AuthorSeed) =>
  removal(async (em) => {
    const victim = await seedAuthor(em, seed);
    return {
      entity: Author,
      id: victim.authorId,
      left: async () => ({ rows: await countTree(em, victim), articleFks: await authorIdsOf(em, 'article', victim.articleIds), avatarFks: await authorIdsOf(em, 'avatar', victim.avatarIds) }),
    };
  });

/** DESIGN 2.1: no policy declared means MikroORM's own behaviour, unchanged. */
describe('relations and entities without a policy', () => {
  it.each<[string, AuthorSeed]>([
    ['books (NOT NULL FK)', { books: 2, articles: 1 }],
    ['a profile (NOT NULL one-to-one)', { profile: true }],
  ])('deleting an author with %s fails with the database’s FK violation, exactly as without the module', async (_what, seed) => {
    const reference = await withoutModule(removeAuthor(seed));
    const observed = await withModule({}, removeAuthor(seed));

    expect(observed).toEqual(reference);
    expect(observed).toMatchObject({ error: ForeignKeyConstraintViolationException, left: { rows: { author: 1 } } });
  });

  it('deleting an author with only nullable children lets the database null them, exactly as without the module', async () => {
    const seed = { articles: 2, avatar: true };
    const reference = await withoutModule(removeAuthor(seed));
    const observed = await withModule({}, removeAuthor(seed));

    expect(observed).toEqual(reference);
    expect(observed).toMatchObject({ error: undefined, left: { rows: { author: 0, article: 2, avatar: 1 }, articleFks: [null, null], avatarFks: [null] } });
  });

  it('deleting a Shelf, which no policy names, issues the same statements when Author has policies', async () => {
    const removeShelf = removal(async (em) => {
      const [shelf] = await em.getConnection().execute<{ id: number }[]>(`insert into "shelf" ("label") values ('a'), ('b') returning id`);
      return { entity: Shelf, id: shelf!.id, left: () => tableCount(em, 'shelf') };
    });
    const reference = await withoutModule(removeShelf);
    const observed = await withModule({ policies: [definePolicy(Author, { books: 'destroy' })] }, removeShelf);

    expect(observed).toEqual(reference);
    expect(observed).toMatchObject({ error: undefined, left: 1, statements: expect.arrayContaining([expect.stringMatching(/^delete from "shelf"/)]) });
  });

  it('DeletionService.destroy deletes a Shelf with a completed receipt', async () => {
    await withModule({ policies: [definePolicy(Author, { books: 'destroy' })] }, async ({ app }) => {
      const [shelf] = await app.em().getConnection().execute<{ id: number }[]>(`insert into "shelf" ("label") values ('a'), ('b') returning id`);

      await expect(app.deletions.destroy(Shelf, shelf!.id)).resolves.toEqual({ entity: 'Shelf', id: shelf!.id, status: 'completed' });

      expect(await tableCount(app.em(), 'shelf')).toBe(1);
    });
  });

  it('a relation left without a policy keeps MikroORM’s behaviour next to one that has a policy', async () => {
    // Author.books is destroyed by policy; Author.profile has none, so its NOT NULL FK still refuses.
    await withModule({ policies: [definePolicy(Author, { books: 'destroy' })] }, async ({ app }) => {
      HookJournal.clear();
      const victim = await seedAuthor(app.em(), { books: 2, profile: true });

      await expect(app.deletions.destroy(Author, victim.authorId)).rejects.toBeInstanceOf(ForeignKeyConstraintViolationException);

      expect(await countTree(app.em(), victim)).toEqual(fullCounts(victim));
      expect(HookJournal.count('Book.afterDelete')).toBe(2); // destroyed, then rolled back with the rest
    });
  });
});
