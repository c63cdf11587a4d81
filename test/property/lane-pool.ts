import { coverageConfigs } from './arbitraries.js';
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
 */
export interface LaneKind {
  /** Short name, in the pool listing and the tally: `bigintString`, `schema`. */
  readonly name: string;
  /** For the property names: `bigint keys mapped as string`. */
  readonly title: string;
  /** The lane shape of the kind's `i`-th configuration. */
  shapeOf(i: number): LaneShape;
}

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
];

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
 * Every kind gets the seven covering configurations, then the `random` ones dealt round-robin
 * over the kinds. Lanes 0 … n-1 carry the pool's configurations, the next ones their counterparts.
 */
export function buildPool(random: readonly PolicyConfig[]): { pool: PoolEntry[]; lanes: readonly Lane[] } {
  const planned = LANE_KINDS.flatMap((kind, k) =>
    [...coverageConfigs(), ...random.filter((_, j) => j % LANE_KINDS.length === k)].map((config, i) => ({ kind, config, shape: kind.shapeOf(i) })),
  );
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
