import { POLICY_NAMES, type PolicyName } from '../../lib/index.js';
import { coverageConfigs, policyConfigOf, randomConfigs, type CaseOptions } from './arbitraries.js';
import { KEY_CODECS, KEY_TYPES } from './fixtures/lane-keys.js';
import { PROP_SCHEMA, getLanes, type Lane, type LaneShape } from './fixtures/node-lanes.js';
import { isSynchronous, syncCounterpart, type PolicyConfig } from './model.js';

/**
 * The pool of configurations the deletion properties run on, grouped in lane *kinds*: one kind
 * per key type (plain names, default schema); one with the tables in a non-default schema and one
 * with mixed-case and reserved-word identifiers, both on integer keys, so that their bugs show
 * apart from the key types'; and one that combines a non-integer key type with either naming.
 * Each kind has its own properties, so a bug of one kind cannot hide the others' behind its
 * counterexample, and its own copy of the seven configurations that put every policy on every
 * relation, so every kind sees every policy.
 *
 * The `required` kind's lanes have required (NOT NULL) parent keys and parent levels under an
 * application filter: their configurations take only the five policies such a key allows (the
 * module refuses `nullify` and `nullifyThenPurge` on it at boot), and their cases hide and
 * tombstone rows (arbitraries.ts, `CaseOptions.hiding`).
 */
export interface LaneKind {
  /** Short name, in the pool listing and the tally: `bigintString`, `schema`. */
  readonly name: string;
  /** For the property names: `bigint keys mapped as string`. */
  readonly title: string;
  /** The lane shape of the kind's `i`-th configuration. */
  shapeOf(i: number): LaneShape;
  /** The policies its configurations take; every policy when absent (such kinds share the random configurations). */
  readonly policies?: readonly PolicyName[];
  /** What its cases hold beyond the common ones. */
  readonly cases?: CaseOptions;
}

/** The policies a required (NOT NULL) foreign key allows: all but those that set it to NULL. */
export const REQUIRED_KEY_POLICIES: readonly PolicyName[] = POLICY_NAMES.filter((p) => p !== 'nullify' && p !== 'nullifyThenPurge');

const OTHER_KEYS = KEY_TYPES.filter((key) => key !== 'integer');

export const LANE_KINDS: readonly LaneKind[] = [
  ...KEY_TYPES.map((key) => ({ name: key, title: KEY_CODECS[key].label, shapeOf: (): LaneShape => ({ key, naming: 'plain' }) })),
  { name: 'schema', title: `integer keys, tables in schema ${PROP_SCHEMA}`, shapeOf: (): LaneShape => ({ key: 'integer', naming: 'schema' }) },
  { name: 'quoted', title: 'integer keys, mixed-case and reserved-word identifiers', shapeOf: (): LaneShape => ({ key: 'integer', naming: 'quoted' }) },
  // The others take the module's own statements wherever nothing observes a removal: this one
  // holds the same policies to the same model through MikroORM's flush.
  { name: 'observed', title: 'integer keys, removals observed by an application subscriber', shapeOf: (): LaneShape => ({ key: 'integer', naming: 'plain', observed: true }) },
  {
    name: 'combined',
    title: `the other key types, in schema ${PROP_SCHEMA} or with mixed-case and reserved-word identifiers`,
    // Consecutive configurations change both the key type and the naming: every key type meets both namings within ten.
    shapeOf: (i: number): LaneShape => ({ key: OTHER_KEYS[i % OTHER_KEYS.length]!, naming: i % 2 === 0 ? 'schema' : 'quoted' }),
  },
  // Required parent keys and filtered parents: `destroy()` of a row whose parent is hidden,
  // tombstoned or gone is "not found", as `findOne()` has it, on the module's lean path too.
  {
    name: 'required',
    title: 'integer keys, required parent keys, parents hidden by an application filter or tombstoned',
    shapeOf: (): LaneShape => ({ key: 'integer', naming: 'plain', required: true }),
    policies: REQUIRED_KEY_POLICIES,
    cases: { hiding: true },
  },
];

/** The kinds that take every policy: they share the random configurations. */
const SHARING_KINDS = LANE_KINDS.filter((kind) => !kind.policies);

/** The random configurations by default: two per kind that takes every policy. */
export const DEFAULT_RANDOM_CONFIGS = 2 * SHARING_KINDS.length;

export interface PoolEntry {
  /** Position in the pool (what a generated case's `configIndex` points at). */
  readonly index: number;
  readonly kind: LaneKind;
  readonly config: PolicyConfig;
  readonly lane: Lane;
  /** The all-synchronous counterpart's lane, of the same shape; absent when the configuration is synchronous already. */
  readonly counterpart?: { readonly config: PolicyConfig; readonly lane: Lane };
}

/**
 * Every kind gets the covering configurations of its policies (seven, or five), then random ones:
 * `count` configurations drawn from `seed` dealt round-robin over the kinds that take every policy
 * (as the pool always had them), and as many per kind drawn from the kind's own policies for each
 * other kind. Lanes 0 … n-1 carry the pool's configurations, the next ones their counterparts.
 */
export function buildPool(seed: number, count: number): { pool: PoolEntry[]; lanes: readonly Lane[] } {
  const random = randomConfigs(seed, count);
  const perKind = Math.ceil(count / SHARING_KINDS.length);
  const configsOf = (kind: LaneKind, k: number): PolicyConfig[] => {
    if (!kind.policies) {
      const sharing = SHARING_KINDS.indexOf(kind);
      return [...coverageConfigs(), ...random.filter((_, j) => j % SHARING_KINDS.length === sharing)];
    }
    const required = kind.shapeOf(0).required === true;
    return [...coverageConfigs(kind.policies, required), ...randomConfigs((seed + 1 + k) % 0x7fffffff, perKind, policyConfigOf(kind.policies, required))];
  };
  const planned = LANE_KINDS.flatMap((kind, k) => configsOf(kind, k).map((config, i) => ({ kind, config, shape: kind.shapeOf(i) })));
  const shapes = [...planned.map((p) => p.shape), ...planned.filter((p) => !isSynchronous(p.config)).map((p) => p.shape)];
  const lanes = getLanes(shapes.length, (i) => shapes[i]!);
  let next = planned.length;
  const pool = planned.map(({ kind, config }, index) => ({
    index,
    kind,
    config,
    lane: lanes[index]!,
    ...(isSynchronous(config) ? {} : { counterpart: { config: syncCounterpart(config), lane: lanes[next++]! } }),
  }));
  return { pool, lanes };
}
