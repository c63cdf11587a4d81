import { afterAll, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import { DeletionConfigurationError, PolicyRegistry, definePolicy, type DeletionModuleOptions } from '../../lib/index.js';
import { Imprint, Issue, Magazine, PUBLISHING_ENTITIES, Publisher } from '../fixtures/dependent.entities.js';
import { HookJournal } from '../fixtures/hook-journal.js';
import { TRIGGERS } from '../fixtures/triggers.js';
import { createDeletionTestApp, type DeletionTestApp } from '../support/deletion-test-app.js';
import { QueryLog } from '../support/query-log.js';

/** Seeds a publisher with `magazines` magazines of `issues` issues each, and `imprints` imprints. */
async function seedPublisher(app: DeletionTestApp, magazines: number, issues: number, imprints: number) {
  const em = app.em();
  const publisher = em.create(Publisher, { name: 'publisher' });
  for (let m = 0; m < magazines; m++) {
    const magazine = em.create(Magazine, { title: `magazine ${m}`, publisher });
    for (let i = 0; i < issues; i++) {
      em.create(Issue, { number: i, magazine });
    }
  }
  for (let i = 0; i < imprints; i++) {
    em.create(Imprint, { label: `imprint ${i}`, publisher });
  }
  await em.flush();
  return publisher.id;
}

async function rows(app: DeletionTestApp, publisherId: number) {
  const em = app.em();
  return {
    publisher: await em.count(Publisher, { id: publisherId }),
    magazine: await em.count(Magazine, { publisher: publisherId }),
    issue: await em.count(Issue, { magazine: { publisher: publisherId } }),
    imprint: await em.count(Imprint, { publisher: publisherId }),
    orphanImprint: await em.count(Imprint, { publisher: null }),
  };
}

/** DESIGN 2.1: @Dependent() declares the same policies as definePolicy(), and both are checked together. */
describe('@Dependent declarations', () => {
  describe('without any definePolicy()', () => {
    let app: DeletionTestApp;

    beforeAll(async () => {
      app = await createDeletionTestApp({ database: 'deletion_sync_dependent', entities: PUBLISHING_ENTITIES });
    });

    afterAll(async () => {
      await app?.close();
    });

    beforeEach(async () => {
      await app.em().getConnection().execute('truncate table "issue", "magazine", "imprint", "publisher" restart identity cascade');
      HookJournal.clear();
    });

    it('resolves into the registry with their options', () => {
      const registry = app.module.get(PolicyRegistry);
      const summary = (entity: object) =>
        registry.forMeta(app.orm.getMetadata().get(entity as never))?.relations.map((r) => [r.relation, r.policy, r.batchSize, r.childMeta.className]);

      expect(summary(Publisher)).toEqual(
        expect.arrayContaining([
          ['magazines', 'destroy', 2, 'Magazine'],
          ['imprints', 'nullify', 1000, 'Imprint'],
        ]),
      );
      expect(summary(Magazine)).toEqual([['issues', 'deleteAll', 1000, 'Issue']]);
      expect(summary(Issue)).toBeUndefined();
    });

    describe.each(TRIGGERS)('through %s', (_name, trigger) => {
      it('destroys, deletes and nullifies down the tree, in keyset batches of 2', async () => {
        const victim = await seedPublisher(app, 5, 2, 2);
        const bystander = await seedPublisher(app, 2, 3, 1);

        const { result, statements } = await app.queries.record(() => trigger.run(app, Publisher, victim));

        expect(result).toEqual(trigger.expected('Publisher', victim));
        expect(await rows(app, victim)).toEqual({ publisher: 0, magazine: 0, issue: 0, imprint: 0, orphanImprint: 2 });
        expect(await rows(app, bystander)).toEqual({ publisher: 1, magazine: 2, issue: 6, imprint: 1, orphanImprint: 2 });
        expect(HookJournal.count('Magazine.beforeDelete')).toBe(5);
        expect(QueryLog.matching(statements, /^select .* from "magazine"/i)).toHaveLength(3);
        expect(QueryLog.matching(statements, /^delete from "issue"/i)).toHaveLength(3);
        expect(QueryLog.matching(statements, /^update "imprint"/i)).toHaveLength(1);
      });
    });
  });

  describe('together with definePolicy()', () => {
    let boots = 0;
    const boot = (deletion: DeletionModuleOptions) => createDeletionTestApp({ database: `deletion_sync_dependent_${++boots}`, entities: PUBLISHING_ENTITIES, deletion });

    it('a conflicting declaration for the same relation stops the boot', async () => {
      const error = await boot({ policies: [definePolicy(Publisher, { magazines: 'deleteAll' })] }).catch((e: unknown) => e);

      expect(error).toBeInstanceOf(DeletionConfigurationError);
      expect(error).toMatchObject({ code: 'DELETION_CONFIG_CONFLICT', entity: 'Publisher', relation: 'magazines' });
      const { message } = error as DeletionConfigurationError;
      expect(message).toMatch(/^Publisher\.magazines: conflicting policies/);
      expect(message).toContain('definePolicy() says "deleteAll"');
      expect(message).toContain('@Dependent() says "destroy"');
      expect(message).toContain('Fix: keep a single declaration for this relation.');
    });

    it('a declaration that differs only in batchSize says so', async () => {
      const error = await boot({ policies: [definePolicy(Publisher, { magazines: 'destroy' })] }).catch((e: unknown) => e);

      expect(error).toMatchObject({ code: 'DELETION_CONFIG_CONFLICT', entity: 'Publisher', relation: 'magazines' });
      expect((error as Error).message).toContain('batchSize');
    });

    it('an identical declaration is accepted, and definePolicy() adds to the decorated relations', async () => {
      const app = await boot({
        policies: [definePolicy(Publisher, { magazines: { policy: 'destroy', batchSize: 2 } }), definePolicy(Issue, {})],
      });
      try {
        const registry = app.module.get(PolicyRegistry);
        expect(registry.forMeta(app.orm.getMetadata().get(Publisher))?.relations).toHaveLength(2);
        expect(registry.has(app.orm.getMetadata().get(Issue))).toBe(true);
        const victim = await seedPublisher(app, 3, 1, 1);
        await app.deletions.destroy(Publisher, victim);
        expect(await rows(app, victim)).toEqual({ publisher: 0, magazine: 0, issue: 0, imprint: 0, orphanImprint: 1 });
      } finally {
        await app.close();
      }
    });
  });
});
