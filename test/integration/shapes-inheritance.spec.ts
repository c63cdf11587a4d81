import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import type { EntityClass } from '@mikro-orm/core';
import {
  DeletionBlockedError,
  DeletionRequest,
  DeletionRestrictedError,
  OrphanSweeper,
  definePolicy,
  type DeletionModuleOptions,
  type DeletionReceipt,
  type DeletionStatus,
  type PolicyName,
} from '../../lib/index.js';
import { ANIMAL_HELD, Animal, CAT_SLEEPING, Cat, DOG_FLAGGED, Dog, INHERITANCE_ENTITIES, Kennel, Puppy } from '../fixtures/shapes/inheritance.entities.js';
import { inheritanceTables, seedAnimal, seedKennelWorld, type InheritanceTables, type KennelWorld } from '../fixtures/shapes/inheritance.seed.js';
import { createDeletionTestApp, type DeletionTestApp } from '../support/deletion-test-app.js';
import { waitForState, waitUntil } from '../support/wait.js';
import { whilePaused } from '../support/worker-control.js';

/**
 * Single-table inheritance (issue 11, DESIGN 7): a relation typed to a subclass touches only that
 * subclass's rows; a policy declared on the base applies to every subclass, one declared on a
 * subclass to that subclass (and its own subclasses) only; validators follow the same rule, by any
 * path. Every test compares whole tables, a bystander kennel included.
 */

const DATABASE = 'deletion_shapes_inheritance';
const QUEUED: readonly PolicyName[] = ['destroyAsync', 'deleteAllAsync', 'nullifyThenPurge'];

/** Queued work a failed test left running would change the next test's tables: wait for it. */
const settled = (app: DeletionTestApp | undefined) =>
  app && waitUntil(async () => (await app.em().count(DeletionRequest, { state: { $in: ['pending', 'running'] } })) === 0, 30_000, 'no open deletion request');

function boot(policies: DeletionModuleOptions['policies']): Promise<DeletionTestApp> {
  // batchSize 2: the kennel's three dogs span two keyset pages, with cats between them in key order.
  return createDeletionTestApp({ database: DATABASE, entities: INHERITANCE_ENTITIES, deletion: { batchSize: 2, doctor: 'off', policies } });
}

/** Runs a deletion through `destroy()`, or through `em.remove()` + `flush()`, and waits for its queued part. */
/** Every entity of the fixture has an integer key. */
type Keyed = { id: number };
type Trigger = 'destroy()' | 'em.remove() + flush()';
const TRIGGERS: readonly Trigger[] = ['destroy()', 'em.remove() + flush()'];

async function runDeletion(app: DeletionTestApp, trigger: Trigger, entity: EntityClass<Keyed>, id: number): Promise<DeletionStatus | undefined> {
  let requestId: string | undefined;
  const failedBefore = await app.em().count(DeletionRequest, { state: 'failed' });
  if (trigger === 'destroy()') {
    const receipt: DeletionReceipt = await app.deletions.destroy(entity, id);
    requestId = receipt.requestId;
  } else {
    const em = app.em();
    const before = await app.em().count(DeletionRequest, {});
    em.remove(await em.findOneOrFail(entity, id));
    await em.flush();
    if ((await app.em().count(DeletionRequest, {})) > before) {
      const [request] = await app.em().find(DeletionRequest, { parentId: null }, { orderBy: { createdAt: 'desc' }, limit: 1 });
      requestId = request!.id;
    }
  }
  if (!requestId) {
    return undefined;
  }
  const status = await waitForState(app.deletions, requestId);
  expect(status).toMatchObject({ state: 'completed', errors: [] });
  // A deletion may file more than one root request (one per entity reached): wait for all of them.
  await settled(app);
  expect(await app.em().count(DeletionRequest, { state: 'failed' })).toBe(failedBefore);
  return status;
}

const rowsOf = (tables: InheritanceTables) => ({
  withoutKennels: (ids: number[]): InheritanceTables => ({ ...tables, kennel: tables.kennel.filter((k) => !ids.includes(k.id)) }),
});
const without = <R extends { id: number }>(rows: R[], ids: readonly number[]) => rows.filter((r) => !ids.includes(r.id));

describe.each(['destroy', 'deleteAll', 'nullify', 'restrict', 'destroyAsync', 'deleteAllAsync', 'nullifyThenPurge'] as const)(
  'Kennel.dogs (typed to the subclass Dog) under %s touches dogs and puppies, never the cats that carry the same kennel id',
  (policy) => {
    let app: DeletionTestApp;
    beforeAll(async () => {
      app = await boot([definePolicy(Kennel, { dogs: policy })]);
    });
    afterEach(() => settled(app));
  afterAll(() => app?.close());

    /** The tables after deleting `world.kennel` through Kennel.dogs, as the contract says. */
    const expected = (before: InheritanceTables, world: KennelWorld): InheritanceTables => {
      const after = rowsOf(before).withoutKennels([world.kennel]);
      if (policy === 'nullify') {
        return { ...after, animal: before.animal.map((a) => (world.dogs.includes(a.id) ? { ...a, kennel_id: null } : a)) };
      }
      return { ...after, animal: without(before.animal, world.dogs) };
    };

    if (policy === 'restrict') {
      it.each(TRIGGERS)('refuses with %s while the kennel has dogs, counting only dogs and puppies (409), and changes nothing', async (trigger) => {
        await seedKennelWorld(app.em(), 'bystander');
        const world = await seedKennelWorld(app.em(), 'target');
        const before = await inheritanceTables(app.em());
        const error = await runDeletion(app, trigger, Kennel, world.kennel).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(DeletionRestrictedError);
        expect(error).toMatchObject({ entity: 'Kennel', relation: 'dogs', childEntity: 'Dog', count: 3 });
        expect(await inheritanceTables(app.em())).toEqual(before);
      });

      it.each(TRIGGERS)('lets a kennel whose only animals are cats be deleted with %s: a cat is not a dog', async (trigger) => {
        await seedKennelWorld(app.em(), 'bystander');
        const world = await seedKennelWorld(app.em(), 'cats only', { onlyCats: true, cats: { flagged: true, held: false } });
        const before = await inheritanceTables(app.em());
        const plan = await app.deletions.plan(Kennel, world.kennel);
        expect(plan).toMatchObject({ allowed: true, blockers: [], blockedTotal: 0 });
        expect(plan.paths.find((p) => p.path === 'Kennel.dogs')).toMatchObject({ entity: 'Dog', policy: 'restrict', rows: 0 });
        await runDeletion(app, trigger, Kennel, world.kennel);
        expect(await inheritanceTables(app.em())).toEqual(rowsOf(before).withoutKennels([world.kennel]));
      });
      return;
    }

    it.each(TRIGGERS)('deletes the kennel with %s: dogs and puppies go, cats keep their row and their kennel id', async (trigger) => {
      await seedKennelWorld(app.em(), 'bystander');
      const world = await seedKennelWorld(app.em(), 'target');
      const before = await inheritanceTables(app.em());
      const status = await runDeletion(app, trigger, Kennel, world.kennel);
      expect(await inheritanceTables(app.em())).toEqual(expected(before, world));
      expect(await app.em().getConnection().execute('select * from deletion_orphan')).toEqual([]);
      if (QUEUED.includes(policy)) {
        expect(status).toMatchObject({ entity: 'Kennel', ids: [world.kennel] });
        expect(status!.progress).toEqual([{ path: 'Kennel.dogs', entity: 'Dog', policy, processed: 3, done: true }]);
      }
    });

    it('plans only the dogs and puppies, and cats that would refuse (flagged, held, sleeping) do not block it', async () => {
      await seedKennelWorld(app.em(), 'bystander');
      const world = await seedKennelWorld(app.em(), 'target', { cats: { flagged: true, held: true, sleeping: true } });
      const before = await inheritanceTables(app.em());
      const plan = await app.deletions.plan(Kennel, world.kennel);
      expect(plan).toMatchObject({ entity: 'Kennel', allowed: true, blockers: [], blockedTotal: 0 });
      expect(plan.paths.find((p) => p.path === 'Kennel.dogs')).toMatchObject({
        entity: 'Dog',
        policy,
        timing: policy === 'destroyAsync' || policy === 'deleteAllAsync' ? 'later' : policy === 'nullifyThenPurge' ? expect.any(String) : 'now',
        rows: 3,
        blockers: [],
      });
      await runDeletion(app, 'destroy()', Kennel, world.kennel);
      expect(await inheritanceTables(app.em())).toEqual(expected(before, world));
    });

    if (policy !== 'nullify') {
      it.each([
        ['a flagged dog (validator declared on Dog)', 'dog', 'flagged', DOG_FLAGGED],
        ['a flagged puppy (Dog’s validator covers its subclass)', 'puppy', 'flagged', DOG_FLAGGED],
        ['a held puppy (validator declared on the base)', 'puppy', 'held', ANIMAL_HELD],
      ] as const)('refuses for %s reached through Kennel.dogs, in the request; plan() says so', async (_label, kind, column, reason) => {
        const world = await seedKennelWorld(app.em(), 'target');
        const id = kind === 'puppy' ? world.puppies[0]! : world.dogs.find((d) => !world.puppies.includes(d))!;
        await app.em().getConnection().execute(`update animal set ${column} = true where id = ?`, [id]);
        const before = await inheritanceTables(app.em());
        const blocker = expect.objectContaining({ id, path: 'Kennel.dogs', reason });
        const error = await app.deletions.destroy(Kennel, world.kennel).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(DeletionBlockedError);
        expect(error).toMatchObject({ total: 1, blockers: [blocker] });
        expect(await app.deletions.plan(Kennel, world.kennel)).toMatchObject({ allowed: false, blockedTotal: 1, blockers: [blocker] });
        expect(await inheritanceTables(app.em())).toEqual(before);
      });
    }

    if (QUEUED.includes(policy)) {
      it('the queue re-checks Dog’s validator over dogs only: cats flagged after the request do not fail it, a dog flagged after it does', async () => {
        const calm = await seedKennelWorld(app.em(), 'calm');
        const before = await inheritanceTables(app.em());
        const first = await whilePaused(app, async () => {
          const receipt = await app.deletions.destroy(Kennel, calm.kennel);
          await app.em().getConnection().execute('update animal set flagged = true, held = true, sleeping = true where id in (?, ?)', calm.cats);
          return receipt;
        });
        expect(await waitForState(app.deletions, first.requestId!)).toMatchObject({ state: 'completed', errors: [] });
        const flaggedCats = before.animal.map((a) => (calm.cats.includes(a.id) ? { ...a, flagged: true, held: true, sleeping: true } : a));
        expect(await inheritanceTables(app.em())).toEqual(expected({ ...before, animal: flaggedCats }, calm));

        const tense = await seedKennelWorld(app.em(), 'tense');
        const seeded = await inheritanceTables(app.em());
        const second = await whilePaused(app, async () => {
          const receipt = await app.deletions.destroy(Kennel, tense.kennel);
          await app.em().getConnection().execute('update animal set flagged = true where id = ?', [tense.puppies[0]]);
          return receipt;
        });
        const failed = await waitForState(app.deletions, second.requestId!);
        expect(failed.state).toBe('failed');
        expect(failed.errors).toEqual([
          expect.objectContaining({ error: expect.objectContaining({ code: 'DELETION_BLOCKED', blockers: [expect.objectContaining({ id: tense.puppies[0], reason: DOG_FLAGGED })] }) }),
        ]);
        const rows = await inheritanceTables(app.em());
        expect(rows.animal.find((a) => a.id === tense.puppies[0])).toBeDefined();
        // The batch that met the flagged puppy rolled back whole: it is still there, and the cats never moved.
        expect(rows.animal.filter((a) => tense.cats.includes(a.id))).toEqual(seeded.animal.filter((a) => tense.cats.includes(a.id)));

        await app.em().getConnection().execute('update animal set flagged = false where id = ?', [tense.puppies[0]]);
        await app.deletions.retry(second.requestId!);
        expect((await waitForState(app.deletions, second.requestId!)).state).toBe('completed');
        expect(await inheritanceTables(app.em())).toEqual(expected(seeded, tense));
      });
    }

    if (policy === 'nullifyThenPurge') {
      it('detaches only the dogs in the request, and purges only them', async () => {
        await seedKennelWorld(app.em(), 'bystander');
        const world = await seedKennelWorld(app.em(), 'target');
        const before = await inheritanceTables(app.em());
        const receipt = await whilePaused(app, async () => {
          const receipt = await app.deletions.destroy(Kennel, world.kennel);
          const detached = await inheritanceTables(app.em());
          const orphans = await app.em().getConnection().execute<{ row_id: string }[]>('select row_id from deletion_orphan where request_id = ?', [receipt.requestId]);
          expect(detached.animal).toEqual(before.animal.map((a) => (world.dogs.includes(a.id) ? { ...a, kennel_id: null } : a)));
          expect(orphans.map((o: { row_id: string }) => Number(o.row_id)).sort((a: number, b: number) => a - b)).toEqual(world.dogs);
          return receipt;
        });
        expect((await waitForState(app.deletions, receipt.requestId!)).state).toBe('completed');
        expect(await inheritanceTables(app.em())).toEqual(expected(before, world));
      });
    }

    if (policy === 'destroyAsync' || policy === 'deleteAllAsync') {
      it('the sweeper does not take the cats left with the deleted kennel’s id for orphans of Kennel.dogs', async () => {
        const world = await seedKennelWorld(app.em(), 'swept');
        await runDeletion(app, 'destroy()', Kennel, world.kennel);
        const before = await inheritanceTables(app.em());
        expect(before.animal.filter((a) => a.kennel_id === world.kennel).map((a) => a.id)).toEqual(world.cats);
        const report = await app.module.get(OrphanSweeper).sweep();
        expect(report.relations).toEqual([{ relation: 'Kennel.dogs', missingParents: 0 }]);
        expect(await inheritanceTables(app.em())).toEqual(before);
      });

      it('the sweeper removes a dog left behind for a deleted kennel, and keeps the cats beside it', async () => {
        const world = await seedKennelWorld(app.em(), 'bypassed');
        await app.em().nativeDelete(Kennel, { id: world.kennel });
        const before = await inheritanceTables(app.em());
        const report = await app.module.get(OrphanSweeper).sweep();
        expect(report.relations).toEqual([{ relation: 'Kennel.dogs', missingParents: 1, requestId: expect.any(String) }]);
        expect((await waitForState(app.deletions, report.relations[0]!.requestId!)).state).toBe('completed');
        expect(await inheritanceTables(app.em())).toEqual({ ...before, animal: without(before.animal, world.dogs) });
      });
    }
  },
);

const TOYS_AND_BONES = [
  { toys: 'destroy', bones: 'deleteAll' },
  { toys: 'deleteAllAsync', bones: 'destroyAsync' },
] as const;

describe.each(TOYS_AND_BONES)('Animal.toys ($toys) declared on the base, Dog.bones ($bones) on the subclass', (policies) => {
  let app: DeletionTestApp;
  beforeAll(async () => {
    app = await boot([definePolicy(Animal, { toys: policies.toys }), definePolicy(Dog, { bones: policies.bones }), definePolicy(Kennel, { animals: 'destroy' })]);
  });
  afterEach(() => settled(app));
  afterAll(() => app?.close());

  /** The tables after deleting `animals`: their rows, their toys, and the bones of those that are dogs. */
  const afterDeleting = (before: InheritanceTables, animals: readonly number[], dogs: readonly number[]): InheritanceTables => ({
    ...before,
    animal: without(before.animal, animals),
    toy: before.toy.filter((t) => !animals.includes(t.owner_id!)),
    bone: before.bone.filter((b) => !dogs.includes(b.dog_id!)),
  });

  const starts: { via: string; start: EntityClass<Keyed>; kind: 'dogs' | 'puppies' | 'cats'; trigger: Trigger }[] = [
    { via: 'destroy(Dog, dog)', start: Dog, kind: 'dogs', trigger: 'destroy()' },
    { via: 'destroy(Animal, dog)', start: Animal, kind: 'dogs', trigger: 'destroy()' },
    { via: 'em.remove(dog) + flush()', start: Dog, kind: 'dogs', trigger: 'em.remove() + flush()' },
    { via: 'em.remove(animal loaded as Animal, a dog) + flush()', start: Animal, kind: 'dogs', trigger: 'em.remove() + flush()' },
    { via: 'destroy(Puppy, puppy)', start: Puppy, kind: 'puppies', trigger: 'destroy()' },
    { via: 'destroy(Dog, puppy)', start: Dog, kind: 'puppies', trigger: 'destroy()' },
    { via: 'destroy(Animal, puppy)', start: Animal, kind: 'puppies', trigger: 'destroy()' },
    { via: 'em.remove(puppy) + flush()', start: Puppy, kind: 'puppies', trigger: 'em.remove() + flush()' },
    { via: 'destroy(Cat, cat)', start: Cat, kind: 'cats', trigger: 'destroy()' },
    { via: 'destroy(Animal, cat)', start: Animal, kind: 'cats', trigger: 'destroy()' },
    { via: 'em.remove(cat) + flush()', start: Cat, kind: 'cats', trigger: 'em.remove() + flush()' },
  ];

  it.each(starts)('$via: Animal.toys applies to every subclass, Dog.bones to dogs and puppies only', async ({ start, kind, trigger }) => {
    await seedKennelWorld(app.em(), 'bystander');
    const world = await seedKennelWorld(app.em(), 'target');
    const id = kind === 'dogs' ? world.dogs.find((d) => !world.puppies.includes(d))! : world[kind][0]!;
    const before = await inheritanceTables(app.em());
    await runDeletion(app, trigger, start, id);
    // A cat's stray bone (its dog_id holds the cat's key) is not reached: Dog.bones is not the cat's relation.
    expect(await inheritanceTables(app.em())).toEqual(afterDeleting(before, [id], kind === 'cats' ? [] : [id]));
  });

  it.each(TRIGGERS)('Kennel.animals (typed to the base) under destroy with %s applies both to each animal it reaches', async (trigger) => {
    await seedKennelWorld(app.em(), 'bystander');
    const world = await seedKennelWorld(app.em(), 'target');
    const before = await inheritanceTables(app.em());
    await runDeletion(app, trigger, Kennel, world.kennel);
    const after = afterDeleting(rowsOf(before).withoutKennels([world.kennel]), [...world.dogs, ...world.cats], world.dogs);
    expect(await inheritanceTables(app.em())).toEqual(after);
  });

  it('plan() of a kennel counts, under Kennel.animals, the toys of every animal and the bones of its dogs only', async () => {
    await seedKennelWorld(app.em(), 'bystander');
    const world = await seedKennelWorld(app.em(), 'planned');
    const plan = await app.deletions.plan(Kennel, world.kennel);
    expect(plan.allowed).toBe(true);
    const rows = (suffix: string) => plan.paths.filter((p) => p.path.endsWith(suffix)).map((p) => ({ policy: p.policy, rows: p.rows }));
    expect(rows('Kennel.animals')).toEqual([{ policy: 'destroy', rows: 5 }]);
    expect(rows('.toys')).toEqual([{ policy: policies.toys, rows: 10 }]);
    // Three dogs with two bones each; the cat's stray bone is not a dog's.
    expect(rows('.bones')).toEqual([{ policy: policies.bones, rows: 6 }]);
  });

  it('plan() of a dog lists the base’s toys and the subclass’s bones; plan() of a cat lists the toys only', async () => {
    const world = await seedKennelWorld(app.em(), 'planned');
    const dog = world.dogs[0]!;
    const dogPlan = await app.deletions.plan(Animal, dog);
    expect(dogPlan.allowed).toBe(true);
    expect(dogPlan.paths.map((p) => ({ path: p.path, policy: p.policy, rows: p.rows }))).toEqual(
      expect.arrayContaining([
        { path: expect.stringMatching(/\.toys$/), policy: policies.toys, rows: 2 },
        { path: expect.stringMatching(/\.bones$/), policy: policies.bones, rows: 2 },
      ]),
    );
    const catPlan = await app.deletions.plan(Animal, world.cats[0]!);
    expect(catPlan.paths.map((p) => p.path).filter((p) => p.endsWith('.toys'))).toHaveLength(1);
    expect(catPlan.paths.map((p) => p.path).filter((p) => p.endsWith('.bones'))).toEqual([]);
  });

  describe('validators, on a direct deletion', () => {
    it.each([
      ['destroy(Dog, flagged dog)', Dog, 'dog', { flagged: true }, DOG_FLAGGED],
      ['destroy(Animal, flagged dog)', Animal, 'dog', { flagged: true }, DOG_FLAGGED],
      ['destroy(Animal, flagged puppy)', Animal, 'puppy', { flagged: true }, DOG_FLAGGED],
      ['destroy(Cat, sleeping cat)', Cat, 'cat', { sleeping: true }, CAT_SLEEPING],
      ['destroy(Animal, sleeping cat)', Animal, 'cat', { sleeping: true }, CAT_SLEEPING],
      ['destroy(Animal, held cat)', Animal, 'cat', { held: true }, ANIMAL_HELD],
      ['destroy(Puppy, held puppy)', Puppy, 'puppy', { held: true }, ANIMAL_HELD],
    ] as const)('%s is refused (409) and plan() says so', async (_label, start, kind, flags, reason) => {
      const kennel = (await seedKennelWorld(app.em(), 'home')).kennel;
      const id = await seedAnimal(app.em(), { kind, kennel, home: kennel, toys: 1, bones: kind === 'cat' ? 0 : 1, ...flags });
      const before = await inheritanceTables(app.em());
      const error = await app.deletions.destroy(start as EntityClass<Keyed>, id).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(DeletionBlockedError);
      expect((error as DeletionBlockedError).blockers).toEqual([expect.objectContaining({ id, reason })]);
      const plan = await app.deletions.plan(start as EntityClass<Keyed>, id);
      expect(plan).toMatchObject({ allowed: false, blockedTotal: 1, blockers: [expect.objectContaining({ id, reason })] });
      expect(await inheritanceTables(app.em())).toEqual(before);
    });

    it('a flagged cat is not refused: the flag only matters to Dog’s validator', async () => {
      const id = await seedAnimal(app.em(), { kind: 'cat', flagged: true, toys: 1 });
      const before = await inheritanceTables(app.em());
      expect((await app.deletions.plan(Animal, id)).allowed).toBe(true);
      await runDeletion(app, 'destroy()', Animal, id);
      expect(await inheritanceTables(app.em())).toEqual(afterDeleting(before, [id], []));
    });
  });
});

describe.each(['destroy', 'deleteAll', 'destroyAsync', 'deleteAllAsync', 'nullifyThenPurge'] as const)(
  'validators of the subclasses and the base, reached through Kennel.animals (typed to the base) under %s',
  (policy) => {
    let app: DeletionTestApp;
    beforeAll(async () => {
      app = await boot([definePolicy(Kennel, { animals: policy })]);
    });
    afterEach(() => settled(app));
  afterAll(() => app?.close());

    async function expectRefused(world: KennelWorld, blocker: { id: number; reason: string; entity?: string }): Promise<void> {
      const before = await inheritanceTables(app.em());
      const requests = await app.em().count(DeletionRequest, {});
      const blockerShape = expect.objectContaining({ ...blocker, path: 'Kennel.animals' });
      const error = await app.deletions.destroy(Kennel, world.kennel).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(DeletionBlockedError);
      expect(error).toMatchObject({ code: 'DELETION_BLOCKED', entity: 'Kennel', id: world.kennel, total: 1, blockers: [blockerShape] });
      const plan = await app.deletions.plan(Kennel, world.kennel);
      expect(plan).toMatchObject({ allowed: false, blockedTotal: 1, blockers: [blockerShape] });
      expect(plan.paths.find((p) => p.path === 'Kennel.animals')).toMatchObject({ entity: 'Animal', policy, rows: 5, blockers: [blockerShape] });

      const em = app.em();
      em.remove(await em.findOneOrFail(Kennel, world.kennel));
      await expect(em.flush()).rejects.toBeInstanceOf(DeletionBlockedError);
      expect(await inheritanceTables(app.em())).toEqual(before);
      expect(await app.em().count(DeletionRequest, {})).toBe(requests);
    }

    it('a flagged dog refuses (set-based validator declared on Dog)', async () => {
      await seedKennelWorld(app.em(), 'bystander', { dogs: { flagged: true } });
      const world = await seedKennelWorld(app.em(), 'target');
      await app.em().getConnection().execute('update animal set flagged = true where id = ?', [world.dogs[0]]);
      await expectRefused(world, { entity: 'Dog', id: world.dogs[0]!, reason: DOG_FLAGGED });
    });

    it('a flagged puppy refuses (Dog’s validator covers its subclass)', async () => {
      const world = await seedKennelWorld(app.em(), 'target');
      await app.em().getConnection().execute('update animal set flagged = true where id = ?', [world.puppies[0]]);
      await expectRefused(world, { id: world.puppies[0]!, reason: DOG_FLAGGED });
    });

    it('a sleeping cat refuses (instance validator declared on Cat)', async () => {
      const world = await seedKennelWorld(app.em(), 'target');
      await app.em().getConnection().execute('update animal set sleeping = true where id = ?', [world.cats[1]]);
      await expectRefused(world, { entity: 'Cat', id: world.cats[1]!, reason: CAT_SLEEPING });
    });

    it.each(['dogs', 'puppies', 'cats'] as const)('a held animal among the %s refuses (validator declared on the base)', async (kind) => {
      const world = await seedKennelWorld(app.em(), 'target');
      const id = kind === 'dogs' ? world.dogs.find((d) => !world.puppies.includes(d))! : world[kind].at(-1)!;
      await app.em().getConnection().execute('update animal set held = true where id = ?', [id]);
      await expectRefused(world, { id, reason: ANIMAL_HELD });
    });

    it('flagged cats do not refuse: Dog’s validator does not apply to them, and the kennel’s animals all go', async () => {
      await seedKennelWorld(app.em(), 'bystander', { dogs: { flagged: true } });
      const world = await seedKennelWorld(app.em(), 'target', { cats: { flagged: true } });
      const before = await inheritanceTables(app.em());
      const plan = await app.deletions.plan(Kennel, world.kennel);
      expect(plan).toMatchObject({ allowed: true, blockers: [], blockedTotal: 0 });
      expect(plan.paths.find((p) => p.path === 'Kennel.animals')).toMatchObject({ policy, rows: 5, blockers: [] });
      await runDeletion(app, 'destroy()', Kennel, world.kennel);
      const after = rowsOf(before).withoutKennels([world.kennel]);
      expect(await inheritanceTables(app.em())).toEqual({ ...after, animal: without(before.animal, [...world.dogs, ...world.cats]) });
    });
  },
);
