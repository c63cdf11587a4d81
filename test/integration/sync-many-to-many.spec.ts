import { afterAll, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import { DeletionRestrictedError, definePolicy } from '../../lib/index.js';
import { Post, TAGGING_ENTITIES, Tag } from '../fixtures/tagging.entities.js';
import { TRIGGERS } from '../fixtures/triggers.js';
import { createDeletionTestApp, type DeletionTestApp } from '../support/deletion-test-app.js';

/** DESIGN 2: on a many-to-many only `restrict` applies; it counts the pivot rows of the deleted row only. */
describe('restrict on a many-to-many', () => {
  let app: DeletionTestApp;

  beforeAll(async () => {
    app = await createDeletionTestApp({
      database: 'deletion_sync_many_to_many',
      entities: TAGGING_ENTITIES,
      deletion: { policies: [definePolicy(Post, { tags: 'restrict' }), definePolicy(Tag, { posts: 'restrict' })] },
    });
  });

  afterAll(async () => {
    await app?.close();
  });

  beforeEach(async () => {
    await app.em().getConnection().execute('truncate table "post_tags", "post", "tag" restart identity cascade');
  });

  /** Three tags; `tagged` holds tags 1 and 2, `shared` holds all three, `bare` none, `lonely` tag none. */
  async function seed() {
    const em = app.em();
    const [one, two, three] = ['one', 'two', 'three'].map((label) => em.create(Tag, { label }));
    const tagged = em.create(Post, { title: 'tagged' });
    tagged.tags.add(one!, two!);
    const shared = em.create(Post, { title: 'shared' });
    shared.tags.add(one!, two!, three!);
    const bare = em.create(Post, { title: 'bare' });
    const lonely = em.create(Tag, { label: 'lonely' });
    await em.flush();
    return { tagged: tagged.id, bare: bare.id, tagOne: one!.id, lonely: lonely.id };
  }

  const count = async (table: string) => {
    const rows: { count: string }[] = await app.em().getConnection().execute(`select count(*) as count from "${table}"`);
    return Number(rows[0]!.count);
  };
  const counts = async () => ({ post: await count('post'), tag: await count('tag'), pivot: await count('post_tags') });

  describe.each(TRIGGERS)('through %s', (_name, trigger) => {
    it('refuses to delete a post that has tags, counting only its own pivot rows', async () => {
      const { tagged } = await seed();

      const error = await trigger.run(app, Post, tagged).catch((e: unknown) => e);

      expect(error).toBeInstanceOf(DeletionRestrictedError);
      expect(error).toMatchObject({ code: 'DELETION_RESTRICTED', entity: 'Post', id: tagged, relation: 'tags', childEntity: 'Tag', count: 2 });
      expect(await counts()).toEqual({ post: 3, tag: 4, pivot: 5 });
    });

    it('refuses to delete a tag used by posts, from the inverse side', async () => {
      const { tagOne } = await seed();

      await expect(trigger.run(app, Tag, tagOne)).rejects.toMatchObject({ code: 'DELETION_RESTRICTED', entity: 'Tag', relation: 'posts', childEntity: 'Post', count: 2 });

      expect(await counts()).toEqual({ post: 3, tag: 4, pivot: 5 });
    });

    it('deletes a post or a tag without links, and nothing else', async () => {
      const { bare, lonely } = await seed();

      await expect(trigger.run(app, Post, bare)).resolves.toEqual(trigger.expected('Post', bare));
      await expect(trigger.run(app, Tag, lonely)).resolves.toEqual(trigger.expected('Tag', lonely));

      expect(await counts()).toEqual({ post: 2, tag: 3, pivot: 5 });
    });
  });
});
