import * as fc from 'fast-check';
import { POLICY_NAMES, type PolicyName } from '../../lib/index.js';
import { LEVELS, PARENT_LEVELS, RELATIONS, type Level, type RelationName } from './fixtures/node-lanes.js';
import { describeScenario, type PolicyConfig, type RelationConfig, type Row, type Scenario } from './model.js';

/**
 * fast-check arbitraries for the deletion properties. Everything is built from records, arrays and
 * small integers, so fast-check shrinks a failing case towards fewer rows, fewer levels with
 * validators, and the first configuration of the pool.
 */

/** Children per parent: 0 … MAX_FAN_OUT. */
export const MAX_FAN_OUT = 3;
/** Trees per case, each rooted at any level (mostly L0). */
export const MAX_TREES = 3;
/** Deletions per case, one after the other. */
export const MAX_DELETIONS = 3;
export const BATCH_SIZES = [1, 2, 3, 1000] as const;

// A generated tree: `flag` marks a row that its level's validator refuses, if the case gives that
// level a validator. Levels' children are named after the relation that links them.
interface GenL3 {
  flag: boolean;
}
interface GenL2 {
  flag: boolean;
  d: GenL3[];
}
interface GenL1a {
  flag: boolean;
  c: GenL2[];
}
interface GenL1b {
  flag: boolean;
}
interface GenL0 {
  flag: boolean;
  a: GenL1a[];
  b: GenL1b[];
}
type GenNode = GenL0 | GenL1a | GenL1b | GenL2 | GenL3;
type GenTree = { level: 'l0'; node: GenL0 } | { level: 'l1a'; node: GenL1a } | { level: 'l1b'; node: GenL1b } | { level: 'l2'; node: GenL2 } | { level: 'l3'; node: GenL3 };

export interface GeneratedCase {
  configIndex: number;
  /** The rows: `others` then `main`, each tree rooted at any level. */
  others: GenTree[];
  main: GenTree;
  /** Levels whose validator is "on" in this case: only their flagged rows get `blocked = true`. */
  validatorLevels: Level[];
  /** Row ids: depth-first (siblings contiguous) or round-robin over parents (siblings interleaved). */
  interleaveIds: boolean;
  /**
   * The rows to delete, run last-first (a later one may be gone already): `tree` counts from the
   * last tree (0: `main`), `row` counts the tree's rows depth-first (0: its root).
   */
  targets: { tree: number; row: number; child?: number | null }[];
  /**
   * Required lanes only: rows to hide, each a row of a filtered level (L0, L1a, L2) of a tree, the
   * root included (`row` counts them depth-first). `mark`: tombstone it instead, where the
   * configuration puts L0 in tombstone mode and the row is an L0.
   */
  hide?: { tree: number; row: number; mark: boolean }[];
}

/** What a lane kind's cases may hold beyond the rows and targets every kind has. */
export interface CaseOptions {
  /**
   * Hidden and tombstoned rows, and targets that are often a child of the row picked (a child of
   * a hidden row): for required lanes.
   */
  readonly hiding?: boolean;
}

/** About one row in five is flagged; shrinks towards unflagged. */
const flag = fc.nat(4).map((n) => n === 4);
const children = <T>(arb: fc.Arbitrary<T>) => fc.array(arb, { maxLength: MAX_FAN_OUT });

const l3: fc.Arbitrary<GenL3> = fc.record({ flag });
const l2: fc.Arbitrary<GenL2> = fc.record({ flag, d: children(l3) });
const l1a: fc.Arbitrary<GenL1a> = fc.record({ flag, c: children(l2) });
const l1b: fc.Arbitrary<GenL1b> = fc.record({ flag });
const l0: fc.Arbitrary<GenL0> = fc.record({ flag, a: children(l1a), b: children(l1b) });

/** A tree rooted at L0 `rootWeight` times in `rootWeight + 4`, else at any other level. */
const treeOf = (rootWeight: number): fc.Arbitrary<GenTree> =>
  fc.oneof(
    { weight: rootWeight, arbitrary: l0.map((node) => ({ level: 'l0' as const, node })) },
    { weight: 1, arbitrary: l1a.map((node) => ({ level: 'l1a' as const, node })) },
    { weight: 1, arbitrary: l1b.map((node) => ({ level: 'l1b' as const, node })) },
    { weight: 1, arbitrary: l2.map((node) => ({ level: 'l2' as const, node })) },
    { weight: 1, arbitrary: l3.map((node) => ({ level: 'l3' as const, node })) },
  );
const tree = treeOf(8);
/** On required lanes a tree rooted below L0 is an orphan, whose root is never found: fewer of them. */
const mostlyRootedTree = treeOf(16);

/** Mostly a tree's root; sometimes any row of it. */
const rowOfTree = fc.oneof({ weight: 3, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.nat(1000) });

/**
 * A case on one of the configurations `configIndexes` (indexes into the pool; shrinks towards the
 * first). Without options, exactly the cases the kinds always had (a seed replays them).
 */
export function generatedCase(configIndexes: readonly number[], options: CaseOptions = {}): fc.Arbitrary<GeneratedCase> {
  const trees = options.hiding ? mostlyRootedTree : tree;
  const common = {
    configIndex: fc.constantFrom(...configIndexes),
    others: fc.array(trees, { maxLength: MAX_TREES - 1 }),
    main: trees,
    validatorLevels: fc.subarray([...LEVELS]),
    interleaveIds: fc.boolean(),
  };
  if (!options.hiding) {
    return fc.record({ ...common, targets: fc.array(fc.record({ tree: fc.nat(MAX_TREES - 1), row: rowOfTree }), { minLength: 1, maxLength: MAX_DELETIONS }) });
  }
  return fc.record({
    ...common,
    targets: fc.array(
      fc.record({
        tree: fc.nat(MAX_TREES - 1),
        row: rowOfTree,
        // Half the time a child of the row picked (the row itself when it has none).
        child: fc.option(fc.nat(MAX_FAN_OUT * 2), { nil: null, freq: 2 }),
      }),
      { minLength: 1, maxLength: MAX_DELETIONS },
    ),
    // Any row of a filtered level, the root no more often than another: hidden rows under a deleted
    // row as well as hidden parents of a target.
    hide: fc.array(fc.record({ tree: fc.nat(MAX_TREES - 1), row: fc.nat(1000), mark: fc.boolean() }), { maxLength: 4 }),
  });
}

const relationConfigOf = (policies: readonly PolicyName[]): fc.Arbitrary<RelationConfig> =>
  fc.record({ policy: fc.constantFrom(...policies), batchSize: fc.constantFrom(...BATCH_SIZES) });

/** A configuration whose relations take the policies `policies` (all of them by default). */
export function policyConfigOf(policies: readonly PolicyName[] = POLICY_NAMES, required = false): fc.Arbitrary<PolicyConfig> {
  const relationConfig = relationConfigOf(policies);
  return fc.record({
    relations: fc.record({ a: relationConfig, b: relationConfig, c: relationConfig, d: relationConfig }),
    tombstone: fc.boolean(),
    ...(required ? { required: fc.constant(true) } : {}),
  });
}

export const policyConfig: fc.Arbitrary<PolicyConfig> = policyConfigOf();

/**
 * Configurations in which every relation takes every policy of `policies` once (a Latin square:
 * relation k of configuration i has policy (i + 2k) mod n; n is 7, or 5 for a required lane, both
 * prime to 2), with batch sizes and tombstone mode varied.
 */
export function coverageConfigs(policies: readonly PolicyName[] = POLICY_NAMES, required = false): PolicyConfig[] {
  return policies.map((_, i) => {
    const relations = {} as Record<RelationName, RelationConfig>;
    RELATIONS.forEach((r, k) => {
      relations[r.name] = { policy: policies[(i + 2 * k) % policies.length]!, batchSize: BATCH_SIZES[(i + k) % BATCH_SIZES.length]! };
    });
    return { relations, tombstone: i % 2 === 1, ...(required ? { required: true } : {}) };
  });
}

/** `count` configurations drawn from `seed`: the same seed gives the same pool. */
export function randomConfigs(seed: number, count: number, arbitrary: fc.Arbitrary<PolicyConfig> = policyConfig): PolicyConfig[] {
  return count > 0 ? fc.sample(arbitrary, { seed, numRuns: count }) : [];
}

/**
 * Turns a generated case into rows with ids, and picks the rows to delete. The result prints as
 * the readable diagram of `describeScenario` in fast-check's counterexample, under `header`
 * (by default `configuration #<i> of the pool`).
 */
export function toScenario(
  generated: GeneratedCase,
  pool: readonly PolicyConfig[],
  header: (scenario: Scenario & { configIndex: number }) => string = (scenario) => `configuration #${scenario.configIndex} of the pool`,
): Scenario & { configIndex: number } {
  interface Pending {
    level: Level;
    node: GenNode;
    parent: Pending | null;
    /** Position among its siblings, and the tree it belongs to, for id assignment. */
    position: number;
    tree: number;
    order: number;
    id?: number;
  }
  const pending: Pending[] = [];
  const visit = (level: Level, node: GenNode, parent: Pending | null, position: number, treeIndex: number): Pending => {
    const entry: Pending = { level, node, parent, position, tree: treeIndex, order: pending.length };
    pending.push(entry);
    for (const relation of RELATIONS.filter((r) => r.parent === level)) {
      const kids = (node as unknown as Record<string, GenNode[]>)[relation.name] ?? [];
      kids.forEach((kid, i) => visit(relation.child, kid, entry, i, treeIndex));
    }
    return entry;
  };
  const trees = [...generated.others, generated.main];
  trees.forEach((t, i) => visit(t.level, t.node, null, i, i));
  const config = pool[generated.configIndex]!;
  /** The row `row` of the tree `t` counted from the last tree (depth-first; wraps). */
  const pick = (t: number, row: number) => {
    const treeRows = pending.filter((p) => p.tree === trees.length - 1 - (t % trees.length));
    return treeRows[row % treeRows.length]!;
  };

  // Levels in LEVELS order, so a parent always has its id before its children are sorted by it.
  for (const level of LEVELS) {
    const atLevel = pending.filter((p) => p.level === level);
    const ordered = generated.interleaveIds
      ? [...atLevel].sort((x, y) => x.position - y.position || (x.parent?.id ?? x.tree) - (y.parent?.id ?? y.tree) || x.order - y.order)
      : atLevel;
    ordered.forEach((p, i) => (p.id = i + 1));
  }
  // Required lanes: rows hidden (their level's application filter) or tombstoned (L0 in tombstone
  // mode), each picked among a tree's rows of the filtered levels.
  const hidden = new Set<Pending>();
  const marked = new Set<Pending>();
  for (const { tree: t, row, mark } of config.required ? (generated.hide ?? []) : []) {
    const candidates = pending.filter((p) => p.tree === trees.length - 1 - (t % trees.length) && PARENT_LEVELS.includes(p.level));
    const chosen = candidates.length > 0 ? candidates[row % candidates.length]! : undefined;
    if (chosen) {
      (mark && config.tombstone && chosen.level === 'l0' ? marked : hidden).add(chosen);
    }
  }
  /** Required lanes: a tree rooted below L0 is an orphan, its parent key naming no row (as in the orphan window, DESIGN 2.2). */
  const danglingParent = (p: Pending) => pending.filter((q) => q.level === RELATIONS.find((r) => r.child === p.level)!.parent).length + 1 + p.tree;
  const rows: Row[] = pending.map((p) => ({
    level: p.level,
    id: p.id!,
    parent: p.parent ? p.parent.id! : config.required && p.level !== 'l0' ? danglingParent(p) : null,
    tag: tagOf(p.level, p.id!),
    blocked: p.node.flag && generated.validatorLevels.includes(p.level),
    ...(hidden.has(p) ? { hidden: true } : {}),
    ...(marked.has(p) ? { marked: true } : {}),
  }));
  // fast-check shrinks an array by dropping its first elements: counted from the last tree, a
  // target survives the removal of the other trees, and the deletions run last-first, so those
  // after a failing deletion are dropped while the ones it depends on stay.
  const targets = generated.targets
    .map(({ tree: t, row, child }) => {
      const chosen = pick(t, row);
      const children = child === undefined || child === null ? [] : pending.filter((p) => p.parent === chosen);
      const target = children.length > 0 ? children[child! % children.length]! : chosen;
      return { level: target.level, id: target.id! };
    })
    .reverse();
  const scenario = { configIndex: generated.configIndex, config, rows, targets };
  return Object.assign(scenario, { [fc.toStringMethod]: () => `\n${header(scenario)}\n${describeScenario(scenario)}\n` });
}

/** A row's `tag`: fixed per row, so any change to it shows in the comparison. */
export function tagOf(level: Level, id: number): number {
  return (id * 37 + LEVELS.indexOf(level) * 11) % 1000;
}
