import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { EntityClass } from '@mikro-orm/core';
import { Logger } from '@nestjs/common';
import * as fc from 'fast-check';
import { Redis } from 'ioredis';
import {
  DeletionBlockedError,
  DeletionConfigurationError,
  DeletionRestrictedError,
  DeletionTargetNotFoundError,
  POLICY_NAMES,
  definePolicy,
  type PolicyDefinition,
  type PolicyName,
} from '../../lib/index.js';
import { createDeletionTestApp, type DeletionTestApp } from '../support/deletion-test-app.js';
import { REDIS_URL, databaseUrl } from '../support/services.js';
import { waitForState, waitUntil } from '../support/wait.js';
import {
  ANIMAL_CLASSES,
  CLASS_OF_KIND,
  TABLES,
  createLanes,
  type EntityName,
  type InheritanceLane,
  type Kind,
  type LaneShape,
  type Table,
} from './fixtures/inheritance-lanes.js';
import {
  COMPOSITE_POLICIES,
  TABLE_LABEL,
  describeConfig,
  describeExpected,
  describeScenario,
  describeTarget,
  diffRows,
  entityNamesOf,
  expectedSteps,
  isSynchronous,
  key,
  relationsOf,
  syncCounterpart,
  type Deletion,
  type Expected,
  type InheritanceConfig,
  type RelationConfig,
  type RelationName,
  type Row,
  type Scenario,
  type Target,
} from './inheritance-model.js';
import { InheritanceDatabase, type StoredRow } from './support/inheritance-database.js';

/**
 * Property-based tests of the deletion policies on single-table inheritance and composite keys
 * (issue 11, "The suites must find these"), in the manner of deletion-invariants.spec.ts: random
 * kennels of animals (dogs, puppies, cats, one table with a discriminator) with their toys and
 * bones, composite-key children, random policies on every relation, validators declared on the
 * base class or on a subclass, tombstone mode on some kennels, and random rows deleted one after
 * the other through any of their classes (`destroy(Animal, id)`, `destroy(Dog, id)`, also a class
 * the row is not an instance of), the queue drained after each. After each deletion, on the real
 * database:
 *
 *  - the rows are exactly the model's (inheritance-model.ts): no under-deletion, no over-deletion
 *    (`Kennel.dogs` never touches a cat, `Dog.bones` never acts for a cat), no other change;
 *  - a refused deletion (validator, `restrict`, not found) changes nothing, writes no deletion
 *    request or orphan record, and enqueues nothing;
 *  - plan() agrees with the deletion and writes nothing;
 *  - the queued policies end in the same rows as their synchronous counterparts (a lane of its own).
 *
 * Two applications, one after the other: the inheritance lanes, then lanes that add the
 * composite-key children (Kennel.slots: deleteAll/nullify/restrict, Kennel.runs: deleteAll/restrict,
 * both with validators, deleted directly too with `destroy(Slot, [a, b])`). A last group checks that
 * the policies composite keys do not support fail the boot with advice that works.
 *
 * Environment, as deletion-invariants.spec.ts: PROPERTY_RUNS (default 200), PROPERTY_SEED,
 * PROPERTY_PATH (with -t to select the property), PROPERTY_CONFIGS (random configurations added to
 * the seven covering ones, default 5), PROPERTY_CONCURRENCY (default 1), PROPERTY_DATABASE (the
 * databases are `<PROPERTY_DATABASE>_inh*`; default deletion_prop_inheritance*).
 */
const RUNS = intFromEnv('PROPERTY_RUNS', 200);
const SEED = process.env.PROPERTY_SEED ? intFromEnv('PROPERTY_SEED', 0) : Math.floor(Math.random() * 0x7fffffff);
const PATH = process.env.PROPERTY_PATH || undefined;
const RANDOM_CONFIGS = intFromEnv('PROPERTY_CONFIGS', 5);
const CONCURRENCY = intFromEnv('PROPERTY_CONCURRENCY', 1);
const DATABASE = process.env.PROPERTY_DATABASE ? `${process.env.PROPERTY_DATABASE}_inh` : 'deletion_prop_inheritance';
if (!DATABASE.startsWith('deletion_prop_')) {
  throw new Error(`PROPERTY_DATABASE must start with deletion_prop_, got "${process.env.PROPERTY_DATABASE}"`);
}
const MAX_BLOCKERS = 20;

// ---------------------------------------------------------------------------------------------
// Generation
// ---------------------------------------------------------------------------------------------

const MAX_FAN_OUT = 3;
const MAX_TREES = 3;
const MAX_DELETIONS = 3;
const BATCH_SIZES = [1, 2, 3, 1000] as const;

/** An animal's other foreign key: none, its own kennel, or the kennel of another tree (counted from the last). */
type OtherKennel = null | 'own' | number;
interface GenAnimal {
  kind: Kind;
  other: OtherKennel;
  toys: number;
  /** For a cat: stray bones whose dog_id is the cat's id. */
  bones: number;
}
interface GenKennel {
  animals: GenAnimal[];
  dogs: GenAnimal[];
  /** Cats whose home_id names this kennel: in the column `Kennel.dogs` reads, but not dogs. */
  strays: GenAnimal[];
  slots: number;
  runs: number;
}
type GenTree = { root: 'kennel'; node: GenKennel } | { root: 'animal'; node: GenAnimal } | { root: 'slot' };

/** A row of a tree (`tree` counted from the last tree, `row` its rows depth-first). */
interface RowRef {
  tree: number;
  row: number;
}

interface GeneratedCase {
  configIndex: number;
  others: GenTree[];
  main: GenTree;
  /**
   * The rows a validator refuses: `blocked` (the set-based validators) or `held` (the instance
   * validators of Run and of the animal family; another row gets `blocked`). A few rows per case
   * whatever its size: more would refuse most deletions.
   */
  flags: (RowRef & { held: boolean; animal: boolean })[];
  interleaveIds: boolean;
  /** The rows to delete, run last-first; `cls` picks the class named for an animal. */
  targets: (RowRef & { cls: number })[];
}

const rowRef = { tree: fc.nat(MAX_TREES - 1), row: fc.oneof({ weight: 3, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.nat(1000) }) };
const other: fc.Arbitrary<OtherKennel> = fc.oneof(
  { weight: 2, arbitrary: fc.constant(null) },
  { weight: 2, arbitrary: fc.constant('own' as const) },
  { weight: 1, arbitrary: fc.nat(MAX_TREES - 1) },
);
const animalOf = (kinds: readonly Kind[]): fc.Arbitrary<GenAnimal> => fc.record({ kind: fc.constantFrom(...kinds), other, toys: fc.nat(2), bones: fc.nat(2) });
const anyAnimal = animalOf(['cat', 'dog', 'puppy']);
const dogAnimal = animalOf(['dog', 'puppy']);
const catAnimal = animalOf(['cat']);

/**
 * A tree, mostly a kennel. Each kind of children is left out of a quarter of the kennels: else most
 * kennels would have a child under some `restrict` relation, and few of their deletions would go through.
 */
function treeArbitrary(composite: boolean): fc.Arbitrary<GenTree> {
  const some = <T>(arb: fc.Arbitrary<T[]>, none: T[]) => fc.oneof({ weight: 1, arbitrary: fc.constant(none) }, { weight: 3, arbitrary: arb });
  const kennel: fc.Arbitrary<GenKennel> = fc.record({
    animals: some(fc.array(anyAnimal, { maxLength: MAX_FAN_OUT }), []),
    dogs: some(fc.array(dogAnimal, { maxLength: MAX_FAN_OUT }), []),
    strays: some(fc.array(catAnimal, { maxLength: 2 }), []),
    slots: composite ? fc.nat(2) : fc.constant(0),
    runs: composite ? fc.nat(2) : fc.constant(0),
  });
  return fc.oneof(
    { weight: 8, arbitrary: kennel.map((node) => ({ root: 'kennel' as const, node })) },
    { weight: 2, arbitrary: anyAnimal.map((node) => ({ root: 'animal' as const, node })) },
    ...(composite ? [{ weight: 1, arbitrary: fc.constant({ root: 'slot' as const }) }] : []),
  );
}

function generatedCase(configIndexes: readonly number[], composite: boolean): fc.Arbitrary<GeneratedCase> {
  const tree = treeArbitrary(composite);
  return fc.record({
    configIndex: fc.constantFrom(...configIndexes),
    others: fc.array(tree, { maxLength: MAX_TREES - 1 }),
    main: tree,
    // Mostly an animal's row (`animal`: counted among the tree's animals), for the family's validators.
    flags: fc.array(fc.record({ tree: rowRef.tree, row: fc.nat(1000), held: fc.boolean(), animal: fc.nat(2).map((n) => n > 0) }), { maxLength: 3 }),
    interleaveIds: fc.boolean(),
    targets: fc.array(
      // For an animal, `cls` 0-2: the base class, 3-5: its own class, 6: Dog, 7: Cat (maybe not its class: not found).
      fc.record({ ...rowRef, cls: fc.nat(7) }),
      { minLength: 1, maxLength: MAX_DELETIONS },
    ),
  });
}

/** Turns a generated case into rows with keys, and picks the rows to delete (see arbitraries.ts). */
function toScenario(generated: GeneratedCase, pool: readonly InheritanceConfig[]): Scenario & { configIndex: number } {
  interface Pending {
    table: Table;
    animal?: GenAnimal;
    parent: Pending | null;
    /** How the row hangs from its parent: for an animal, `home` when by its home_id. */
    via: 'animals' | 'home' | 'child' | null;
    position: number;
    tree: number;
    order: number;
    id?: number[];
  }
  const pending: Pending[] = [];
  const add = (entry: Omit<Pending, 'order'>) => {
    const full = { ...entry, order: pending.length };
    pending.push(full);
    return full;
  };
  const visitAnimal = (animal: GenAnimal, parent: Pending | null, via: Pending['via'], position: number, tree: number) => {
    const row = add({ table: 'animal', animal, parent, via, position, tree });
    for (let i = 0; i < animal.toys; i++) {
      add({ table: 'toy', parent: row, via: 'child', position: i, tree });
    }
    for (let i = 0; i < animal.bones; i++) {
      add({ table: 'bone', parent: row, via: 'child', position: i, tree });
    }
  };
  const trees = [...generated.others, generated.main];
  trees.forEach((t, tree) => {
    if (t.root === 'kennel') {
      const kennel = add({ table: 'kennel', parent: null, via: null, position: tree, tree });
      t.node.animals.forEach((a, i) => visitAnimal(a, kennel, 'animals', i, tree));
      // Dogs and stray cats alike sit in the home_id column, which `Kennel.dogs` reads.
      [...t.node.dogs, ...t.node.strays].forEach((a, i) => visitAnimal(a, kennel, 'home', i, tree));
      for (let i = 0; i < t.node.slots; i++) {
        add({ table: 'slot', parent: kennel, via: 'child', position: i, tree });
      }
      for (let i = 0; i < t.node.runs; i++) {
        add({ table: 'run', parent: kennel, via: 'child', position: i, tree });
      }
    } else if (t.root === 'animal') {
      visitAnimal(t.node, null, null, tree, tree);
    } else {
      add({ table: 'slot', parent: null, via: null, position: tree, tree });
    }
  });

  // Keys, table by table (a parent has its key before its children are ordered by it).
  for (const table of TABLES) {
    const atTable = pending.filter((p) => p.table === table);
    const ordered = generated.interleaveIds
      ? [...atTable].sort((x, y) => x.position - y.position || (x.parent?.id?.[0] ?? x.tree) - (y.parent?.id?.[0] ?? y.tree) || x.order - y.order)
      : atTable;
    ordered.forEach((p, i) => {
      p.id = table === 'slot' ? [(i % 3) + 1, Math.floor(i / 3) + 1] : table === 'run' ? [p.parent!.id![0]!, p.position + 1] : [i + 1];
    });
  }
  const treeIndex = (ref: number) => trees.length - 1 - (ref % trees.length);
  const rowOf = ({ tree, row }: RowRef, table?: Table): number | undefined => {
    const inTree = pending.flatMap((p, i) => (p.tree === treeIndex(tree) && (!table || p.table === table) ? [i] : []));
    return inTree.length === 0 ? undefined : inTree[row % inTree.length]!;
  };
  const kennelOfTree = (ref: number): number | null => {
    const root = pending.find((p) => p.tree === treeIndex(ref) && p.parent === null);
    return root?.table === 'kennel' ? root.id![0]! : null;
  };
  const flags = new Map(generated.flags.map((f) => [(f.animal ? rowOf(f, 'animal') : undefined) ?? rowOf(f)!, f.held]));
  const rows: Row[] = pending.map((p, i) => {
    const id = p.id!;
    const flag = flags.get(i);
    const held = flag === true && (p.table === 'animal' || p.table === 'run');
    const common = { id, tag: tagOf(p.table, id), blocked: flag !== undefined && !held, held };
    if (p.table === 'animal') {
      const animal = p.animal!;
      const own = p.parent ? p.parent.id![0]! : null;
      let second = animal.other === null ? null : animal.other === 'own' ? own : kennelOfTree(animal.other);
      // Two relations of one kennel never reach the same row (see the model): a dog's two keys differ.
      if (animal.kind !== 'cat' && second === own) {
        second = null;
      }
      const [parent, home] = p.via === 'home' ? [second, own] : p.via === 'animals' ? [own, second] : [null, second];
      return { table: 'animal', kind: animal.kind, parent, home, ...common };
    }
    return { table: p.table, kind: null, parent: p.parent ? p.parent.id![0]! : null, home: null, ...common };
  });
  const targets = generated.targets
    .map((ref): Target => {
      const chosen = rows[rowOf(ref)!]!;
      if (chosen.table !== 'animal') {
        return { entity: TABLE_LABEL[chosen.table] as EntityName, id: chosen.id };
      }
      const entity: EntityName = ref.cls <= 2 ? 'Animal' : ref.cls <= 5 ? CLASS_OF_KIND[chosen.kind!] : ref.cls === 6 ? 'Dog' : 'Cat';
      return { entity, id: chosen.id };
    })
    .reverse();
  const scenario = { configIndex: generated.configIndex, config: pool[generated.configIndex]!, rows, targets };
  return Object.assign(scenario, { [fc.toStringMethod]: () => `\nconfiguration #${scenario.configIndex} of the pool\n${describeScenario(scenario)}\n` });
}

function tagOf(table: Table, id: readonly number[]): number {
  return (id.reduce((sum, v, i) => sum + v * (37 + i * 101), 0) + TABLES.indexOf(table) * 11) % 1000;
}

const relationConfig = (policies: readonly PolicyName[]): fc.Arbitrary<RelationConfig> =>
  fc.record({ policy: fc.constantFrom(...policies), batchSize: fc.constantFrom(...BATCH_SIZES) });

function configArbitrary(composite: boolean): fc.Arbitrary<InheritanceConfig> {
  return fc.record({
    composite: fc.constant(composite),
    relations: fc.record({
      animals: relationConfig(POLICY_NAMES),
      dogs: relationConfig(POLICY_NAMES),
      toys: relationConfig(POLICY_NAMES),
      bones: relationConfig(POLICY_NAMES),
      ...(composite ? { slots: relationConfig(COMPOSITE_POLICIES), runs: relationConfig(['deleteAll', 'restrict']) } : {}),
    }),
    tombstone: fc.boolean(),
    setValidatorOn: fc.constantFrom(...ANIMAL_CLASSES),
    instanceValidatorOn: fc.constantFrom(...ANIMAL_CLASSES),
  });
}

/**
 * Seven configurations in which each of animals, dogs, toys and bones takes every policy once (a
 * Latin square), slots and runs every policy they support, with batch sizes, tombstone mode and the
 * validators' classes varied.
 */
function coverageConfigs(composite: boolean): InheritanceConfig[] {
  return POLICY_NAMES.map((_, i) => {
    const relations: Partial<Record<RelationName, RelationConfig>> = {};
    (['animals', 'dogs', 'toys', 'bones'] as const).forEach((name, k) => {
      relations[name] = { policy: POLICY_NAMES[(i + 2 * k) % POLICY_NAMES.length]!, batchSize: BATCH_SIZES[(i + k) % BATCH_SIZES.length]! };
    });
    if (composite) {
      relations.slots = { policy: COMPOSITE_POLICIES[i % COMPOSITE_POLICIES.length]!, batchSize: BATCH_SIZES[i % BATCH_SIZES.length]! };
      relations.runs = { policy: i % 2 === 0 ? 'deleteAll' : 'restrict', batchSize: 1000 };
    }
    return {
      composite,
      relations,
      tombstone: i % 2 === 1,
      setValidatorOn: ANIMAL_CLASSES[i % ANIMAL_CLASSES.length]!,
      instanceValidatorOn: ANIMAL_CLASSES[(i + 1) % ANIMAL_CLASSES.length]!,
    };
  });
}

// ---------------------------------------------------------------------------------------------
// One application over a pool of configurations
// ---------------------------------------------------------------------------------------------

interface PoolEntry {
  readonly config: InheritanceConfig;
  readonly lane: InheritanceLane;
  readonly counterpart?: { readonly config: InheritanceConfig; readonly lane: InheritanceLane };
}

const shapeOf = (config: InheritanceConfig): LaneShape => ({
  composite: config.composite,
  setValidatorOn: config.setValidatorOn,
  instanceValidatorOn: config.instanceValidatorOn,
});

function buildPool(composite: boolean, seed: number): PoolEntry[] {
  const configs = [...coverageConfigs(composite), ...(RANDOM_CONFIGS > 0 ? fc.sample(configArbitrary(composite), { seed, numRuns: RANDOM_CONFIGS }) : [])];
  const counterparts = configs.map((c) => (isSynchronous(c) ? undefined : syncCounterpart(c)));
  const lanes = createLanes([...configs, ...counterparts.filter((c) => c !== undefined)].map(shapeOf));
  let next = configs.length;
  return configs.map((config, i) => ({
    config,
    lane: lanes[i]!,
    ...(counterparts[i] ? { counterpart: { config: counterparts[i], lane: lanes[next++]! } } : {}),
  }));
}

function policiesOf(lane: InheritanceLane, config: InheritanceConfig): PolicyDefinition[] {
  const r = config.relations;
  return [
    definePolicy(lane.Kennel, { animals: r.animals, dogs: r.dogs, ...(config.composite ? { slots: r.slots, runs: r.runs } : {}) }, config.tombstone ? { tombstone: 'deletedAt' } : {}),
    definePolicy(lane.Animal, { toys: r.toys }),
    definePolicy(lane.Dog, { bones: r.bones }),
  ];
}

/** What one lane did with one deletion: its outcome and its rows afterwards. */
interface Observation {
  outcome: 'missing' | 'blocked' | 'restricted' | 'completed' | 'queued' | 'failed' | 'error';
  rows: StoredRow[];
  detail: string;
}

const asRows = (rows: readonly StoredRow[]): Row[] => rows.map(({ table, id, kind, parent, home, tag, blocked, held }) => ({ table, id, kind, parent, home, tag, blocked, held }));
const tombstoned = (rows: readonly StoredRow[]) => rows.filter((r) => r.tombstoned).map((r) => `changed: ${key(r)} is left tombstoned`);
const REFUSALS = [
  [DeletionTargetNotFoundError, 'missing'],
  [DeletionBlockedError, 'blocked'],
  [DeletionRestrictedError, 'restricted'],
] as const;

/** A key as `destroy()` takes it: the value for a single-column key, the components in key order for a composite one. */
const primary = (id: readonly number[]): number | number[] => (id.length === 1 ? id[0]! : [...id]);

/** An id as an error reports it, in the form `key()` uses: `3`, `1,2`. */
function idText(id: unknown): string {
  if (Array.isArray(id)) {
    return id.map(idText).join(',');
  }
  if (typeof id === 'object' && id !== null) {
    return Object.values(id).map(idText).join(',');
  }
  return String(id);
}

class PropertySuite {
  app!: DeletionTestApp;
  db!: InheritanceDatabase;
  redis!: Redis;
  /** Deletions per outcome, and per class named (`destroy(Dog, …)`). */
  readonly tally = new Map<string, number>();
  readonly named = new Map<string, number>();

  constructor(
    readonly name: string,
    readonly database: string,
    readonly pool: readonly PoolEntry[],
  ) {}

  get lanes(): InheritanceLane[] {
    return this.pool.flatMap((p) => [p.lane, ...(p.counterpart ? [p.counterpart.lane] : [])]);
  }

  async start(): Promise<void> {
    console.log(
      [
        `${this.name}: seed ${SEED} (PROPERTY_SEED=${SEED} replays), ${RUNS} runs, worker concurrency ${CONCURRENCY}, ${this.pool.length} configurations on ${this.lanes.length} lanes:`,
        ...this.pool.map((p, i) => `  #${i} ${describeConfig(p.config)}${p.counterpart ? '' : ' (synchronous)'}`),
      ].join('\n'),
    );
    this.app = await createDeletionTestApp({
      database: this.database,
      entities: this.lanes.flatMap((lane) => lane.schemas),
      deletion: {
        batchSize: 2,
        policies: this.pool.flatMap((p) => [...policiesOf(p.lane, p.config), ...(p.counterpart ? policiesOf(p.counterpart.lane, p.counterpart.config) : [])]),
        queue: { attempts: 2, backoffMs: 10 },
        worker: { concurrency: CONCURRENCY },
        validation: { maxBlockers: MAX_BLOCKERS },
        doctor: 'off',
      },
    });
    Logger.overrideLogger(['fatal']);
    this.db = await InheritanceDatabase.connect(databaseUrl(this.database));
    this.redis = new Redis(REDIS_URL, { maxRetriesPerRequest: null });
    this.redis.on('error', () => undefined);
  }

  async stop(): Promise<void> {
    if (this.tally.size > 0) {
      const list = (counts: Map<string, number>) => [...counts].map(([k, n]) => `${k} ${n}`).join(', ');
      console.log(`${this.name}: deletions (all lanes, shrinking included) per outcome: ${list(this.tally)}; per class named: ${list(this.named)}`);
    }
    await this.db?.close();
    this.redis?.disconnect();
    await this.app?.close();
  }

  /** The queue's job counts and the last entry of its event stream: unchanged means nothing was enqueued. */
  private async queueMark(): Promise<string> {
    const counts = await this.app.queue.getJobCounts('waiting', 'active', 'delayed', 'prioritized', 'waiting-children', 'completed', 'failed');
    const [last] = await this.redis.xrevrange(this.app.queue.keys.events, '+', '-', 'COUNT', 1);
    return `jobs ${JSON.stringify(counts)}, last queue event ${last?.[0] ?? 'none'}`;
  }

  private async waitForIdleQueue(): Promise<void> {
    await waitUntil(
      async () => {
        const counts = await this.app.queue.getJobCounts('waiting', 'active', 'delayed', 'prioritized', 'waiting-children');
        return Object.values(counts).every((n) => n === 0);
      },
      20_000,
      'an idle deletion queue',
    );
  }

  /** Runs one deletion on one lane and checks it against the model; problems go to `fail`. */
  private async deleteOnLane(lane: InheritanceLane, deletion: Deletion, expected: Expected, fail: (text: string) => void): Promise<Observation> {
    const { db, app } = this;
    const before = await db.dump(lane);
    const queueBefore = await this.queueMark();
    const bookkeepingBefore = await db.bookkeeping();
    const entity = lane.classes[deletion.target.entity] as EntityClass<object>;
    const id = primary(deletion.target.id);

    // plan() previews the deletion (DESIGN 5): allowed exactly when it goes through, not found when
    // the row is not one of the class named (a cat's id for Dog), and it writes nothing.
    const plan = await app.deletions.plan(entity, id as never).then(
      (value) => ({ value }),
      (error: unknown) => ({ error: error as Error }),
    );
    if (expected.kind === 'missing') {
      if (!('error' in plan && plan.error instanceof DeletionTargetNotFoundError)) {
        fail(`plan() ${'error' in plan ? `threw ${plan.error?.name}: ${plan.error?.message}` : `returned allowed: ${plan.value.allowed}`}, but the row is ${describeExpected(expected)}`);
      }
    } else if ('error' in plan) {
      fail(`plan() threw ${plan.error?.name}: ${plan.error?.message}`);
    } else if (plan.value.allowed !== (expected.kind === 'deleted')) {
      fail(`plan() says allowed: ${plan.value.allowed} (blockers ${JSON.stringify(plan.value.blockers)}), but the deletion is ${describeExpected(expected)}`);
    }
    const afterPlan = diffRows(asRows(before), asRows(await db.dump(lane)));
    if (afterPlan.length > 0) {
      fail(`plan() changed rows:\n    ${afterPlan.join('\n    ')}`);
    }

    const result = await app.deletions.destroy(entity, id as never).then(
      (receipt) => ({ receipt }),
      (error: unknown) => ({ error }),
    );

    if ('error' in result) {
      const error = result.error as Error;
      const refused = REFUSALS.find(([type]) => error instanceof type)?.[1];
      const after = await db.dump(lane);
      const observation: Observation = { outcome: refused ?? 'error', rows: after, detail: `${error?.name}: ${error?.message}` };
      if (!refused) {
        fail(`destroy() threw ${observation.detail}`);
      } else if (refused !== expected.kind && !(refused === 'restricted' && expected.kind === 'blocked' && expected.restricted.length > 0)) {
        // (When both a validator and a `restrict` refuse, either error will do.)
        fail(`destroy() was refused (${observation.detail}), but the deletion is ${describeExpected(expected)}`);
      } else if (error instanceof DeletionBlockedError && expected.kind === 'blocked') {
        checkBlockers(error, lane, expected, fail);
      } else if (error instanceof DeletionRestrictedError && expected.kind === 'restricted') {
        checkRestricted(error, lane, expected, fail);
      }
      // A refused (or failed) deletion changes nothing and enqueues nothing.
      const changes = [...diffRows(asRows(before), asRows(after)), ...tombstoned(after)];
      if (changes.length > 0) {
        fail(`the refused deletion changed rows:\n    ${changes.join('\n    ')}`);
      }
      const bookkeepingAfter = await db.bookkeeping();
      if (JSON.stringify(bookkeepingAfter) !== JSON.stringify(bookkeepingBefore)) {
        fail(`the refused deletion wrote deletion requests or orphan records: ${JSON.stringify(bookkeepingBefore)} -> ${JSON.stringify(bookkeepingAfter)}`);
      }
      const queueAfter = await this.queueMark();
      if (queueAfter !== queueBefore) {
        fail(`the refused deletion enqueued something: ${queueBefore} -> ${queueAfter}`);
      }
      return observation;
    }

    const { receipt } = result;
    const observation: Observation = { outcome: receipt.status === 'pending' ? 'queued' : 'completed', rows: [], detail: `receipt ${receipt.status}` };
    if (receipt.status === 'pending') {
      const status = await waitForState(app.deletions, receipt.requestId!, ['completed', 'failed'], 20_000);
      await this.waitForIdleQueue();
      if (status.state !== 'completed') {
        observation.outcome = 'failed';
        observation.detail = `queued cascade ${status.state}: ${JSON.stringify(status.errors.map((e) => ({ path: e.path, ...e.error })))}`;
      }
    }
    observation.rows = await db.dump(lane);
    if (expected.kind !== 'deleted') {
      const differences = diffRows(asRows(before), asRows(observation.rows));
      fail(
        `destroy() went through (${observation.detail}), but the deletion is ${describeExpected(expected)}` +
          (differences.length > 0 ? `; it changed:\n    ${differences.join('\n    ')}` : ''),
      );
      return observation;
    }
    if (observation.outcome === 'failed') {
      fail(observation.detail);
    }
    if (expected.queue === 'required' && receipt.status !== 'pending') {
      fail(`the receipt is ${receipt.status}, but part of the cascade is queued`);
    }
    if (expected.queue === 'forbidden' && receipt.status !== 'completed') {
      fail(`the receipt is ${receipt.status}, but nothing is queued`);
    }
    const differences = [...diffRows(expected.rows, asRows(observation.rows)), ...tombstoned(observation.rows)];
    if (differences.length > 0) {
      fail(`the rows after the deletion differ from the model's:\n    ${differences.join('\n    ')}`);
    }
    const bookkeepingAfter = await db.bookkeeping();
    const open = Object.entries(bookkeepingAfter.requests).filter(([state, n]) => state !== 'completed' && n !== (bookkeepingBefore.requests[state] ?? 0));
    if (observation.outcome !== 'failed' && (open.length > 0 || bookkeepingAfter.orphans !== bookkeepingBefore.orphans)) {
      fail(`after completion, deletion requests and orphan records went from ${JSON.stringify(bookkeepingBefore)} to ${JSON.stringify(bookkeepingAfter)}`);
    }
    return observation;
  }

  /** One case on the configuration's lane, then on its synchronous counterpart's, compared deletion by deletion. */
  async checkCase(scenario: Scenario & { configIndex: number }): Promise<void> {
    const entry = this.pool[scenario.configIndex]!;
    const problems: string[] = [];
    const runs = [{ lane: entry.lane, config: entry.config, name: `lane ${entry.lane.index}` }];
    if (entry.counterpart) {
      runs.push({ lane: entry.counterpart.lane, config: entry.counterpart.config, name: `lane ${entry.counterpart.lane.index}, synchronous counterpart` });
    }
    await this.db.clear(runs.map((r) => r.lane));
    const observed: Observation[][] = [];
    for (const run of runs) {
      const steps = expectedSteps({ ...scenario, config: run.config });
      await this.db.insert(run.lane, scenario.rows);
      const observations: Observation[] = [];
      const problemsBefore = problems.length;
      for (const [i, { deletion, expected }] of steps.entries()) {
        const where = `[${run.name}, deletion ${i + 1} of ${describeTarget(deletion.target)}]`;
        const observation = await this.deleteOnLane(run.lane, deletion, expected, (text) => problems.push(`${where} ${text}`));
        this.tally.set(observation.outcome, (this.tally.get(observation.outcome) ?? 0) + 1);
        this.named.set(deletion.target.entity, (this.named.get(deletion.target.entity) ?? 0) + 1);
        observations.push(observation);
        if (problems.length > problemsBefore) {
          break; // the next deletions would start from other rows than the model's
        }
      }
      observed.push(observations);
    }
    if (observed.length === 2) {
      const [queued, synchronous] = observed as [Observation[], Observation[]];
      const alike = (o: Observation) => (o.outcome === 'queued' ? 'completed' : o.outcome);
      for (let i = 0; i < Math.min(queued.length, synchronous.length); i++) {
        const differences = diffRows(asRows(synchronous[i]!.rows), asRows(queued[i]!.rows));
        if (alike(queued[i]!) !== alike(synchronous[i]!) || differences.length > 0) {
          problems.push(
            `[deletion ${i + 1}] queued and synchronous policies disagree: queued ${queued[i]!.outcome} (${queued[i]!.detail}), synchronous ${synchronous[i]!.outcome} (${synchronous[i]!.detail})` +
              (differences.length > 0 ? `; the queued lane's rows against the synchronous lane's:\n    ${differences.join('\n    ')}` : ''),
          );
          break;
        }
      }
    }
    if (problems.length > 0) {
      const steps = expectedSteps(scenario);
      throw new Error(
        [
          `${problems.length} invariant(s) broken on configuration #${scenario.configIndex} (${describeConfig(entry.config)}):`,
          ...problems.map((p) => `  - ${p}`),
          'model:',
          ...steps.map(({ deletion, expected }, i) => `  deletion ${i + 1} of ${describeTarget(deletion.target)}: ${describeExpected(expected)}`),
        ].join('\n'),
      );
    }
  }
}

function checkBlockers(error: DeletionBlockedError, lane: InheritanceLane, expected: Extract<Expected, { kind: 'blocked' }>, fail: (text: string) => void): void {
  // The entity named may be any class the row is an instance of (a puppy: Animal, Dog or Puppy).
  const allowed = new Set(expected.blockers.flatMap((r) => entityNamesOf(r).map((name) => `${lane.classes[name]!.name}#${r.id.join(',')}`)));
  if (error.code !== 'DELETION_BLOCKED') {
    fail(`DeletionBlockedError code ${error.code}`);
  }
  if (error.total !== expected.blockers.length) {
    fail(`DeletionBlockedError total ${error.total}, expected ${expected.blockers.length} (${expected.blockers.map(key).join(', ')}); it lists ${describeBlockers(error)}`);
  }
  if (error.blockers.length !== Math.min(expected.blockers.length, MAX_BLOCKERS)) {
    fail(`DeletionBlockedError lists ${error.blockers.length} blockers, expected ${Math.min(expected.blockers.length, MAX_BLOCKERS)}`);
  }
  const strangers = error.blockers.filter((b) => !allowed.has(`${b.entity}#${idText(b.id)}`));
  if (strangers.length > 0) {
    fail(`DeletionBlockedError names rows that are not blocked or not deleted: ${JSON.stringify(strangers)}`);
  }
}

function describeBlockers(error: DeletionBlockedError): string {
  return error.blockers.map((b) => `${b.entity}#${idText(b.id)} at ${b.path}`).join(', ');
}

function checkRestricted(error: DeletionRestrictedError, lane: InheritanceLane, expected: Extract<Expected, { kind: 'restricted' }>, fail: (text: string) => void): void {
  if (error.code !== 'DELETION_RESTRICTED') {
    fail(`DeletionRestrictedError code ${error.code}`);
  }
  const parents = expected.violations.flatMap((v) => entityNamesOf(v.parent).map((name) => `${lane.classes[name]!.name}.${v.relation}`));
  if (!parents.includes(`${error.entity}.${error.relation}`)) {
    fail(`DeletionRestrictedError names ${error.entity}.${error.relation}, expected one of ${[...new Set(parents)].join(', ')}`);
  }
}

const parameters = (): fc.Parameters<[Scenario & { configIndex: number }]> => ({ numRuns: RUNS, seed: SEED, ...(PATH ? { path: PATH } : {}) });
const TIMEOUT = Math.max(600_000, RUNS * 3_000);

/** The property suite over one pool: its own application and database. */
function describeProperties(title: string, composite: boolean, database: string, seed: number): void {
  const suite = new PropertySuite(title, database, buildPool(composite, seed));
  describe(title, () => {
    beforeAll(() => suite.start(), 180_000);
    afterAll(() => suite.stop());

    it('the pool covers every supported policy on every relation and every class for each validator, and the doctor finds no error', async () => {
      const { pool } = suite;
      for (const relation of relationsOf(pool[0]!.config)) {
        expect(new Set(pool.map((p) => p.config.relations[relation.name]!.policy))).toEqual(new Set(relation.policies));
      }
      expect(new Set(pool.map((p) => p.config.setValidatorOn))).toEqual(new Set(ANIMAL_CLASSES));
      expect(new Set(pool.map((p) => p.config.instanceValidatorOn))).toEqual(new Set(ANIMAL_CLASSES));
      const errors = (await suite.app.deletions.doctor()).filter((f) => f.severity === 'error');
      expect(errors).toEqual([]);
    });

    it(
      `every deletion, through any class of the row, ends as the model says and as its synchronous counterpart (${RUNS} runs)`,
      async () => {
        const configs = suite.pool.map((p) => p.config);
        await fc.assert(
          fc.asyncProperty(
            generatedCase(
              configs.map((_, i) => i),
              composite,
            ).map((generated) => toScenario(generated, configs)),
            (scenario) => suite.checkCase(scenario),
          ),
          parameters(),
        );
      },
      TIMEOUT,
    );
  });
}

describeProperties('deletion policies on single-table inheritance (fast-check)', false, DATABASE, SEED);
describeProperties('deletion policies on single-table inheritance and composite-key children (fast-check)', true, `${DATABASE}_keys`, SEED + 1);

/*
 * Composite-key children support deleteAll, nullify and restrict only (issue 11): any other policy
 * fails the boot, naming the entity and relation and recommending only what works.
 */
describe('composite-key children: the policies they do not support fail the boot', () => {
  const unsupported: [RelationName, PolicyName][] = [
    ['slots', 'destroy'],
    ['slots', 'destroyAsync'],
    ['slots', 'deleteAllAsync'],
    ['slots', 'nullifyThenPurge'],
    ['runs', 'destroy'],
    ['runs', 'destroyAsync'],
    ['runs', 'deleteAllAsync'],
  ];
  // Slot and Run without validators: the declared policy is the only problem of the configuration.
  const lanes = createLanes(unsupported.map(() => ({ composite: true, setValidatorOn: 'Animal', instanceValidatorOn: 'Animal', compositeValidators: false })));

  it.each(unsupported.map(([relation, policy], i) => ({ relation, policy, lane: lanes[i]! })))(
    'Kennel.$relation = $policy fails with DELETION_CONFIG_COMPOSITE_KEY and recommends deleteAll, nullify or restrict only',
    async ({ relation, policy, lane }) => {
      const boot = createDeletionTestApp({
        database: `${DATABASE}_boot`,
        entities: [...lane.schemas],
        deletion: { policies: [definePolicy(lane.Kennel, { [relation]: policy })], doctor: 'off' },
      });
      const error = await boot.then(
        async (app) => {
          await app.close();
          return undefined;
        },
        (thrown: unknown) => thrown,
      );
      expect(error).toBeInstanceOf(DeletionConfigurationError);
      const { code, message } = error as DeletionConfigurationError;
      expect(code).toBe('DELETION_CONFIG_COMPOSITE_KEY');
      expect(message).toContain(lane.classes.Kennel!.name);
      expect(message).toContain(relation);
      // What works: all three named…
      for (const works of COMPOSITE_POLICIES) {
        expect(message).toMatch(new RegExp(`\\b${works}\\b`));
      }
      // …and nothing else: no other policy named, but the one declared (a queued one by its name,
      // "destroy" when quoted, as policies are in messages, not as a verb).
      const named = POLICY_NAMES.filter((p) => p !== policy && !COMPOSITE_POLICIES.includes(p)).filter((p) =>
        new RegExp(p === 'destroy' ? `["'\`]destroy["'\`]` : `\\b${p}\\b`).test(message),
      );
      expect(named).toEqual([]);
    },
    60_000,
  );
});

function intFromEnv(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') {
    return fallback;
  }
  const value = Number(raw);
  if (!Number.isSafeInteger(value)) {
    throw new Error(`${name} must be an integer, got "${raw}"`);
  }
  return value;
}
