import { describe, expect, it } from '@jest/globals';
import { DeletionConfigurationError, definePolicy, type DeletionModuleOptions, type PolicyDefinition } from '../../lib/index.js';
import { Author, Book, LIBRARY_ENTITIES, Profile } from '../fixtures/library.entities.js';
import { Post, TAGGING_ENTITIES, Tag } from '../fixtures/tagging.entities.js';
import { createDeletionTestApp } from '../support/deletion-test-app.js';

/** A class MikroORM was never told about. */
class Ghost {
  id!: number;
  pages: Author[] = [];
}

let boots = 0;

/** Boots the module with `deletion` and returns why it refused to start (or fails if it started). */
async function bootError(deletion: DeletionModuleOptions): Promise<DeletionConfigurationError> {
  const app = await createDeletionTestApp({
    database: `deletion_sync_config_${++boots}`,
    entities: [...LIBRARY_ENTITIES, ...TAGGING_ENTITIES],
    deletion,
  }).catch((error: unknown) => error);
  if (!(app instanceof Error)) {
    await (app as { close(): Promise<void> }).close();
    throw new Error('the application started although its deletion configuration is invalid');
  }
  expect(app).toBeInstanceOf(DeletionConfigurationError);
  return app as DeletionConfigurationError;
}

const policies = (...definitions: PolicyDefinition<never>[]): DeletionModuleOptions => ({ policies: definitions as PolicyDefinition[] });

/** DESIGN 2.1: every declaration is checked at bootstrap; a bad one stops the boot, naming the entity, the relation and the fix. */
describe('configuration errors stop the boot', () => {
  it('a policy on a class that is not a MikroORM entity', async () => {
    const error = await bootError(policies(definePolicy(Ghost, { pages: 'destroy' })));

    expect(error).toMatchObject({ code: 'DELETION_CONFIG_UNKNOWN_ENTITY', entity: 'Ghost' });
    expect(error.message).toMatch(/^Ghost: .*not an entity known to MikroORM.* Fix: add Ghost to the `entities`/);
  });

  it('a relation the entity does not have', async () => {
    const error = await bootError(policies(definePolicy(Author, { chapters: 'destroy' } as never)));

    expect(error).toMatchObject({ code: 'DELETION_CONFIG_UNKNOWN_RELATION', entity: 'Author', relation: 'chapters' });
    expect(error.message).toMatch(/^Author\.chapters: .* Fix: .*books, articles, profile, avatar/);
  });

  it('a property that is a column, not a relation', async () => {
    const error = await bootError(policies(definePolicy(Author, { name: 'destroy' } as never)));

    expect(error).toMatchObject({ code: 'DELETION_CONFIG_NOT_A_RELATION', entity: 'Author', relation: 'name' });
    expect(error.message).toMatch(/^Author\.name: .* Fix: /);
  });

  it.each([
    ['the many-to-one Book.author', definePolicy(Book, { author: 'destroy' }), 'Book', 'Author.books'],
    ['the owning one-to-one Profile.author', definePolicy(Profile, { author: 'deleteAll' }), 'Profile', 'Author.profile'],
  ])('a policy on the owning side (%s)', async (_side, definition, entity, parentSide) => {
    const error = await bootError(policies(definition as PolicyDefinition<never>));

    expect(error).toMatchObject({ code: 'DELETION_CONFIG_OWNING_SIDE', entity, relation: 'author' });
    expect(error.message).toMatch(new RegExp(`^${entity}\\.author: .*owning.* Fix: declare it on the parent side instead \\(${parentSide}\\)`));
  });

  it.each([
    ['books', 'Book.author'],
    ['profile', 'Profile.author'],
  ])('nullify on a NOT NULL foreign key (Author.%s)', async (relation, fk) => {
    const error = await bootError(policies(definePolicy(Author, { [relation]: 'nullify' })));

    expect(error).toMatchObject({ code: 'DELETION_CONFIG_NOT_NULLABLE', entity: 'Author', relation });
    expect(error.message).toContain(`Author.${relation}: "nullify" sets ${fk} to NULL`);
    expect(error.message).toContain(`Fix: make ${fk} nullable`);
  });

  it('a policy name that does not exist', async () => {
    const error = await bootError(policies(definePolicy(Author, { books: 'cascade' as never })));

    expect(error).toMatchObject({ code: 'DELETION_CONFIG_UNKNOWN_POLICY', entity: 'Author', relation: 'books' });
    expect(error.message).toMatch(/^Author\.books: "cascade" is not a deletion policy\. Fix: use one of destroy, deleteAll, nullify, restrict/);
  });

  it.each(['destroy', 'deleteAll', 'nullify'] as const)('"%s" on a many-to-many (both sides)', async (policy) => {
    const owning = await bootError(policies(definePolicy(Post, { tags: policy })));
    const inverse = await bootError(policies(definePolicy(Tag, { posts: policy })));

    expect(owning).toMatchObject({ code: 'DELETION_CONFIG_MANY_TO_MANY', entity: 'Post', relation: 'tags' });
    expect(inverse).toMatchObject({ code: 'DELETION_CONFIG_MANY_TO_MANY', entity: 'Tag', relation: 'posts' });
    expect(owning.message).toMatch(/^Post\.tags: .* Fix: use "restrict"/);
  });

  it.each([0, -5, 2.5, Number.NaN])('a relation batchSize of %p', async (batchSize) => {
    const error = await bootError(policies(definePolicy(Author, { books: { policy: 'destroy', batchSize } })));

    expect(error).toMatchObject({ code: 'DELETION_CONFIG_INVALID_OPTION', entity: 'Author', relation: 'books' });
    expect(error.message).toMatch(/^Author\.books: batchSize .* Fix: /);
  });

  it.each([0, -1, 1.5])('a module batchSize of %p', async (batchSize) => {
    const error = await bootError({ batchSize, policies: [definePolicy(Author, { books: 'destroy' })] });

    expect(error).toMatchObject({ code: 'DELETION_CONFIG_INVALID_OPTION', option: 'batchSize' });
    expect(error.message).toMatch(/^batchSize: .* Fix: /);
  });

  it('several mistakes at once are all reported in one error', async () => {
    const error = await bootError(policies(definePolicy(Author, { books: 'nullify', chapters: 'destroy' } as never), definePolicy(Ghost, { pages: 'destroy' })));

    expect(error.code).toBe('DELETION_CONFIG_INVALID');
    expect(error.message).toMatch(/^3 deletion policy errors:/);
    expect(error.message).toContain('[DELETION_CONFIG_NOT_NULLABLE] Author.books: ');
    expect(error.message).toContain('[DELETION_CONFIG_UNKNOWN_RELATION] Author.chapters: ');
    expect(error.message).toContain('[DELETION_CONFIG_UNKNOWN_ENTITY] Ghost: ');
    // Each inner error is kept, with its own code and subject.
    expect(error.errors.map((e) => [e.code, e.entity, e.relation])).toEqual(
      expect.arrayContaining([
        ['DELETION_CONFIG_NOT_NULLABLE', 'Author', 'books'],
        ['DELETION_CONFIG_UNKNOWN_RELATION', 'Author', 'chapters'],
        ['DELETION_CONFIG_UNKNOWN_ENTITY', 'Ghost', undefined],
      ]),
    );
    expect(error.errors).toHaveLength(3);
  });

  it('a valid configuration on the same schema boots (control), and the service refuses an unknown class', async () => {
    const app = await createDeletionTestApp({
      database: 'deletion_sync_config_valid',
      entities: [...LIBRARY_ENTITIES, ...TAGGING_ENTITIES],
      deletion: {
        batchSize: 1,
        policies: [
          definePolicy(Author, { books: { policy: 'destroy', batchSize: 1 }, articles: 'nullify', profile: 'deleteAll', avatar: 'nullify' }),
          definePolicy(Post, { tags: 'restrict' }),
          definePolicy(Tag, { posts: 'restrict' }),
        ],
      },
    });
    try {
      // Asked at run time for a class MikroORM does not know, the service names it.
      const error = await app.deletions.destroy(Ghost, 1).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(DeletionConfigurationError);
      expect(error).toMatchObject({ entity: 'Ghost', message: expect.stringMatching(/^Ghost: .*not an entity known to MikroORM/) });
    } finally {
      await app.close();
    }
  });
});
