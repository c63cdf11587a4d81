import { ReferenceKind, type EntityMetadata, type EntityProperty, type MetadataStorage } from '@mikro-orm/core';
import { dependentDeclarationsOf } from '../decorators/dependent.decorator.js';
import { ownValidatorsOf, validatorsOf, type SetValidatorOptions } from '../decorators/validate-before-destroy.decorator.js';
import { DeletionConfigurationError } from '../errors/deletion-configuration.error.js';
import type { RelationPolicyInput } from '../interfaces/policy-options.interface.js';
import type { PolicyDefinition } from '../policies/define-policy.js';
import { POLICY_NAMES, isPolicyName, type PolicyName } from '../policies/policy-names.js';
import { policiesWhere, semanticsOf } from '../policies/policy-semantics.js';
import { EntityKeys } from '../sql/entity-keys.js';
import { isSameOrSubclass } from '../sql/entity-table.js';
import { propertyOf } from '../sql/metadata.js';
import { PolicyRegistry, type EntityPolicy, type RelationPolicy } from './policy-registry.js';

/** Where a declaration came from, for error messages. */
type Source = 'definePolicy()' | '@Dependent()';

interface Declaration {
  source: Source;
  input: RelationPolicyInput;
}

export interface ResolverInput {
  metadata: MetadataStorage;
  definitions: readonly PolicyDefinition[];
  defaultBatchSize: number;
}

const config = DeletionConfigurationError.create;

/**
 * Turns `definePolicy()` and `@Dependent()` declarations into one {@link PolicyRegistry}, checking
 * each against MikroORM's metadata. Every problem found is reported at once, each naming the
 * entity, the relation and the fix.
 */
export function resolvePolicies(input: ResolverInput): PolicyRegistry {
  const errors: DeletionConfigurationError[] = [];
  const metas = [...input.metadata.getAll().values()].filter((m) => !m.embeddable && !m.virtual && !m.pivotTable);
  const metaByClass = new Map<unknown, EntityMetadata>(metas.map((m) => [m.class, m]));

  /** Per entity class: relation name -> declarations; plus the entity-wide options. */
  const declared = new Map<EntityMetadata, Map<string, Declaration[]>>();
  const entityOptions = new Map<EntityMetadata, { tombstone?: string }>();
  const declare = (meta: EntityMetadata, relation: string, declaration: Declaration) => {
    const relations = declared.get(meta) ?? new Map<string, Declaration[]>();
    relations.set(relation, [...(relations.get(relation) ?? []), declaration]);
    declared.set(meta, relations);
  };

  for (const definition of input.definitions) {
    const meta = metaByClass.get(definition.entity);
    if (!meta) {
      errors.push(unknownEntity(definition.entity));
      continue;
    }
    for (const [relation, policy] of Object.entries(definition.relations)) {
      declare(meta, relation, { source: 'definePolicy()', input: policy as RelationPolicyInput });
    }
    if (definition.options.tombstone) {
      entityOptions.set(meta, { ...entityOptions.get(meta), tombstone: definition.options.tombstone });
    }
    declared.set(meta, declared.get(meta) ?? new Map());
  }

  // `@Dependent()` on the ORM's entities only (a decorated class the ORM does not use is ignored):
  // an entity's own, and those of plain (non-entity) base classes between it and its entity ancestor.
  const entityClasses = new Set(metas.map((m) => m.class));
  for (const meta of metas) {
    for (let cls = meta.class; typeof cls === 'function' && cls !== Function.prototype; cls = Object.getPrototypeOf(cls)) {
      if (cls !== meta.class && entityClasses.has(cls)) {
        break; // inherited through that entity's own declarations
      }
      for (const [relation, policy] of dependentDeclarationsOf(cls)) {
        declare(meta, relation, { source: '@Dependent()', input: policy });
      }
    }
  }

  /** The tombstone property of `meta`'s rows: its own declaration, or its nearest base class's. */
  const tombstoneOf = (target: EntityMetadata): string | undefined =>
    metas
      .filter((m) => isSameOrSubclass(target.class, m.class))
      .sort((a, b) => depth(a) - depth(b))
      .map((m) => entityOptions.get(m)?.tombstone)
      .filter((t) => t !== undefined)
      .at(-1);

  // Each declaring entity's relations are resolved once; an entity inherits its ancestors' policies.
  const resolved = new Map<EntityMetadata, RelationPolicy[]>();
  for (const [meta, relations] of declared) {
    const list: RelationPolicy[] = [];
    for (const [relation, declarations] of relations) {
      const policy = resolveRelation(meta, relation, declarations, input.defaultBatchSize, errors, tombstoneOf);
      if (policy) {
        list.push(policy);
      }
    }
    resolved.set(meta, list);
  }

  const policies: EntityPolicy[] = [];
  for (const meta of metas) {
    const lineage = metas.filter((m) => isSameOrSubclass(meta.class, m.class)).sort((a, b) => depth(a) - depth(b));
    const relations = inherit(meta, lineage, resolved, errors);
    const tombstone = lineage.map((m) => entityOptions.get(m)?.tombstone).filter((t) => t !== undefined).at(-1);
    const validators = validatorsOf(meta.class);
    const declares = lineage.some((m) => declared.has(m));
    if (!declares && validators.methods.length + validators.sets.length === 0) {
      continue;
    }
    const ownTombstone = entityOptions.get(meta)?.tombstone;
    if (ownTombstone !== undefined) {
      checkTombstone(meta, ownTombstone, errors);
    }
    checkShape(meta, lineage.flatMap((m) => [...(declared.get(m)?.keys() ?? [])]), tombstone, errors);
    if (declared.has(meta)) {
      checkOverlaps(meta, relations, errors);
    }
    for (const set of ownValidatorsOf(meta.class).sets) {
      checkValidatorWhere(meta, set, errors);
    }
    policies.push({ meta, relations, tombstone, validators });
  }

  if (errors.length > 0) {
    throw DeletionConfigurationError.many(errors);
  }
  return new PolicyRegistry(policies);
}

function resolveRelation(
  meta: EntityMetadata,
  relation: string,
  declarations: Declaration[],
  defaultBatchSize: number,
  errors: DeletionConfigurationError[],
  tombstoneOf: (meta: EntityMetadata) => string | undefined,
): RelationPolicy | undefined {
  const subject = { entity: meta.className, relation };
  const options = declarations.map((d) => normalize(d.input));
  const distinct = new Set(options.map((o) => `${o.policy}/${o.batchSize ?? ''}`));
  if (distinct.size > 1) {
    const describe = ({ policy, batchSize }: { policy: PolicyName; batchSize?: number }) =>
      batchSize === undefined ? `"${policy}"` : `"${policy}" with batchSize ${batchSize}`;
    const list = declarations.map((d, i) => `${d.source} says ${describe(options[i]!)}`).join(', ');
    errors.push(config('DELETION_CONFIG_CONFLICT', subject, `conflicting policies are declared (${list}).`, 'keep a single declaration for this relation.'));
    return undefined;
  }
  const { policy, batchSize } = options[0]!;
  if (!isPolicyName(policy)) {
    errors.push(config('DELETION_CONFIG_UNKNOWN_POLICY', subject, `"${String(policy)}" is not a deletion policy.`, `use one of ${POLICY_NAMES.join(', ')}.`));
    return undefined;
  }
  if (batchSize !== undefined && (!Number.isInteger(batchSize) || batchSize < 1)) {
    errors.push(config('DELETION_CONFIG_INVALID_OPTION', subject, `batchSize ${String(batchSize)} is not a positive integer.`, 'give a batchSize of 1 or more.'));
    return undefined;
  }

  const prop = meta.properties[relation as keyof typeof meta.properties] as EntityProperty | undefined;
  if (!prop) {
    const known = meta.relations.map((r) => r.name).join(', ') || 'none';
    errors.push(config('DELETION_CONFIG_UNKNOWN_RELATION', subject, `${meta.className} has no property "${relation}".`, `declare the policy on one of its relations (${known}).`));
    return undefined;
  }
  if (prop.kind === ReferenceKind.SCALAR || prop.kind === ReferenceKind.EMBEDDED) {
    errors.push(config('DELETION_CONFIG_NOT_A_RELATION', subject, `"${relation}" is a scalar or embedded (${prop.kind}) property, not a relation.`, 'declare policies on @OneToMany collections or the inverse side of @OneToOne.'));
    return undefined;
  }
  if (prop.kind === ReferenceKind.MANY_TO_ONE || (prop.kind === ReferenceKind.ONE_TO_ONE && prop.owner)) {
    const inverse = prop.inversedBy ? `${prop.targetMeta?.className ?? prop.type}.${prop.inversedBy}` : `the inverse collection on ${prop.targetMeta?.className ?? prop.type}`;
    errors.push(
      config('DELETION_CONFIG_OWNING_SIDE', subject, `"${relation}" is the owning (${prop.kind}) side: a policy says what happens to children when their parent is deleted.`, `declare it on the parent side instead (${inverse}).`),
    );
    return undefined;
  }
  const childMeta = prop.targetMeta!;
  const semantics = semanticsOf(policy);
  if (prop.kind === ReferenceKind.MANY_TO_MANY) {
    if (!semantics.manyToMany) {
      const allowed = policiesWhere((s) => s.manyToMany).map((p) => `"${p}"`).join(' or ');
      errors.push(
        config('DELETION_CONFIG_MANY_TO_MANY', subject, `"${policy}" cannot apply to a many-to-many relation: its targets are shared with other owners.`, `use ${allowed}, or no policy (MikroORM removes the pivot rows).`),
      );
      return undefined;
    }
    return { ...subject, policy, batchSize: batchSize ?? defaultBatchSize, kind: 'm:n', parentMeta: meta, childMeta, childProperty: prop.mappedBy ?? prop.inversedBy };
  }

  const childProp = childMeta.properties[prop.mappedBy as keyof typeof childMeta.properties] as EntityProperty;
  if (childMeta.primaryKeys.length !== 1 && !semantics.compositeChildren) {
    const allowed = policiesWhere((s) => s.compositeChildren).map((p) => `"${p}"`);
    errors.push(
      config(
        'DELETION_CONFIG_COMPOSITE_KEY',
        subject,
        `${childMeta.className} has a composite primary key: "${policy}" walks children one key at a time, which composite keys do not support.`,
        `use ${allowed.slice(0, -1).join(', ')} or ${allowed.at(-1)}, which act on the children by their foreign key.`,
      ),
    );
    return undefined;
  }
  if (childProp.fieldNames.length !== 1) {
    return undefined; // a composite-key parent: refused once, by checkShape()
  }
  if (childProp.targetKey !== undefined && !meta.primaryKeys.includes(childProp.targetKey)) {
    errors.push(
      config(
        'DELETION_CONFIG_TARGET_KEY',
        subject,
        `${childMeta.className}.${childProp.name} references ${meta.className}.${childProp.targetKey} (targetKey), not its primary key, which deletions compare foreign keys with.`,
        `point ${childMeta.className}.${childProp.name} at ${meta.className}'s primary key, or declare no policy on this relation.`,
      ),
    );
    return undefined;
  }
  if (childMeta.schema === '*') {
    errors.push(wildcardSchema(childMeta, relation));
    return undefined;
  }
  if (semantics.recurses || semantics.queued) {
    // These walk, store and compare the children's own keys.
    try {
      EntityKeys.of(childMeta);
    } catch (error) {
      errors.push(error as DeletionConfigurationError);
      return undefined;
    }
  }
  if (semantics.detaches && !childProp.nullable) {
    errors.push(
      config(
        'DELETION_CONFIG_NOT_NULLABLE',
        subject,
        `"${policy}" sets ${childMeta.className}.${childProp.name} to NULL, but that foreign key is NOT NULL.`,
        `make ${childMeta.className}.${childProp.name} nullable ({ nullable: true }), or choose "destroy" or "deleteAll".`,
      ),
    );
    return undefined;
  }
  const kind = prop.kind === ReferenceKind.ONE_TO_ONE ? '1:1' : '1:m';
  const childTombstone = tombstoneOf(childMeta);
  return { ...subject, policy, batchSize: batchSize ?? defaultBatchSize, kind, parentMeta: meta, childMeta, childProperty: childProp.name, ...(childTombstone ? { childTombstone } : {}) };
}

function checkTombstone(meta: EntityMetadata, tombstone: string, errors: DeletionConfigurationError[]): void {
  const prop = meta.properties[tombstone as keyof typeof meta.properties] as EntityProperty | undefined;
  if (!prop || prop.kind !== ReferenceKind.SCALAR || !prop.nullable) {
    errors.push(
      config('DELETION_CONFIG_TOMBSTONE', { entity: meta.className, option: 'tombstone' }, `tombstone property "${tombstone}" must be a nullable scalar column.`, `add @Property({ type: 'datetime', nullable: true }) ${tombstone}?: Date | null to ${meta.className}.`),
    );
  }
}

/** How many entity ancestors `meta` has: base classes first. */
function depth(meta: EntityMetadata): number {
  let n = 0;
  for (let c = Object.getPrototypeOf(meta.class); typeof c === 'function' && c !== Function.prototype; c = Object.getPrototypeOf(c)) {
    n++;
  }
  return n;
}

/**
 * The relations of `meta`: its ancestors' (base first), then its own. A subclass may not change the
 * policy its base declared on the same relation: one relation, one meaning, whatever class a
 * deletion starts from.
 */
function inherit(meta: EntityMetadata, lineage: readonly EntityMetadata[], resolved: ReadonlyMap<EntityMetadata, RelationPolicy[]>, errors: DeletionConfigurationError[]): RelationPolicy[] {
  const byName = new Map<string, RelationPolicy>();
  for (const ancestor of lineage) {
    for (const relation of resolved.get(ancestor) ?? []) {
      const earlier = byName.get(relation.relation);
      if (earlier && (earlier.policy !== relation.policy || earlier.batchSize !== relation.batchSize)) {
        if (ancestor === meta) {
          errors.push(
            config(
              'DELETION_CONFIG_CONFLICT',
              { entity: meta.className, relation: relation.relation },
              `it declares "${relation.policy}", but its base class ${earlier.entity} declares "${earlier.policy}" on the same relation.`,
              `declare the policy once, on ${earlier.entity}.`,
            ),
          );
        }
        continue;
      }
      byName.set(relation.relation, earlier ?? relation);
    }
  }
  return [...byName.values()];
}

/**
 * Shapes the queue and the hand-written statements cannot walk are refused here, with what works
 * instead: key types they cannot bind and store, table-per-type inheritance, and policies on an
 * entity with a composite key (which may still have validators).
 */
function checkShape(meta: EntityMetadata, relations: readonly string[], tombstone: string | undefined, errors: DeletionConfigurationError[]): void {
  try {
    EntityKeys.of(meta);
  } catch (error) {
    errors.push(error as DeletionConfigurationError);
    return;
  }
  if (meta.schema === '*') {
    errors.push(wildcardSchema(meta));
  }
  if (meta.root.inheritanceType === 'tpt') {
    errors.push(
      config(
        'DELETION_CONFIG_INHERITANCE',
        { entity: meta.className },
        'table-per-type inheritance spreads each row over several tables, which the deletion statements do not join.',
        'use single-table inheritance, or declare no deletion policy or validator on this entity.',
      ),
    );
  }
  if (meta.primaryKeys.length > 1 && (relations.length > 0 || tombstone !== undefined)) {
    errors.push(
      config(
        'DELETION_CONFIG_COMPOSITE_KEY',
        { entity: meta.className, relation: relations[0] },
        `${meta.className} has a composite primary key: its children's foreign keys span several columns, which deletion requests and batches do not walk.`,
        'declare no relation policy or tombstone on it (its @ValidateBeforeDestroy() validators still run), and let MikroORM or the database handle its children.',
      ),
    );
  }
}

function normalize(input: RelationPolicyInput): { policy: PolicyName; batchSize?: number } {
  return typeof input === 'string' ? { policy: input } : { policy: input?.policy, batchSize: input?.batchSize };
}

function unknownEntity(cls: unknown): DeletionConfigurationError {
  const name = typeof cls === 'function' ? cls.name : String(cls);
  return config('DELETION_CONFIG_UNKNOWN_ENTITY', { entity: name }, `${name} is not an entity known to MikroORM.`, `add ${name} to the \`entities\` of your MikroORM configuration, or remove its deletion policy.`);
}

/**
 * A set-based validator's `where` must name properties of its entity (or of the entities its
 * relations lead to): one that names a missing property would never match, and its rows would be
 * deleted unchecked. Whatever the doctor's mode, the boot stops.
 */
function checkValidatorWhere(meta: EntityMetadata, set: SetValidatorOptions, errors: DeletionConfigurationError[]): void {
  const missing: string[] = [];
  const visit = (current: EntityMetadata | undefined, where: unknown, path: string) => {
    if (Array.isArray(where)) {
      where.forEach((item) => visit(current, item, path));
      return;
    }
    if (where === null || typeof where !== 'object' || where instanceof Date) {
      return;
    }
    for (const [key, value] of Object.entries(where)) {
      if (key.startsWith('$')) {
        if (key === '$and' || key === '$or' || key === '$not') {
          visit(current, value, path);
        }
        continue;
      }
      if (!current) {
        continue; // an operator object on a scalar, or an embedded value
      }
      const prop = propertyOf(current, key);
      if (!prop) {
        missing.push(`${path}${key}`);
        continue;
      }
      visit(prop.kind === ReferenceKind.SCALAR || prop.kind === ReferenceKind.EMBEDDED ? undefined : prop.targetMeta, value, `${path}${key}.`);
    }
  };
  visit(meta, set.where, '');
  if (missing.length > 0) {
    errors.push(
      config(
        'DELETION_CONFIG_VALIDATOR',
        { entity: meta.className },
        `the set-based validator "${set.message}" names ${missing.map((m) => `"${m}"`).join(', ')}, which ${meta.className} has no property for: it would never refuse.`,
        `name properties of ${meta.className} in the validator's where (${meta.props.filter((p) => p.kind === ReferenceKind.SCALAR).map((p) => p.name).join(', ')}).`,
      ),
    );
  }
}

/**
 * `schema: '*'`: each row lives in the schema its entity manager chose, which a deletion's later
 * statements (and its queued batches) would not know.
 */
function wildcardSchema(meta: EntityMetadata, relation?: string): DeletionConfigurationError {
  return config(
    'DELETION_CONFIG_SCHEMA',
    { entity: meta.className, relation },
    `${meta.className} has schema: '*' (a schema per entity manager), and deletions resolve every table once, from the entity's metadata.`,
    `give ${meta.className} its schema, or declare no deletion policy or validator over it.`,
  );
}

/**
 * Two relations of one entity over the same foreign-key column whose targets share rows (one typed
 * to a subclass of the other's): with different policies, which one a row gets would depend on the
 * order they run in, and differ between a synchronous and a queued cascade.
 */
function checkOverlaps(meta: EntityMetadata, relations: readonly RelationPolicy[], errors: DeletionConfigurationError[]): void {
  const column = (r: RelationPolicy) => `${r.childMeta.root.className}:${propertyOf(r.childMeta, r.childProperty)!.fieldNames.join(',')}`;
  relations.forEach((a, i) => {
    for (const b of relations.slice(i + 1)) {
      const shared = isSameOrSubclass(a.childMeta.class, b.childMeta.class) || isSameOrSubclass(b.childMeta.class, a.childMeta.class);
      if (a.kind !== 'm:n' && b.kind !== 'm:n' && shared && column(a) === column(b) && (a.policy !== b.policy || a.batchSize !== b.batchSize)) {
        errors.push(
          config(
            'DELETION_CONFIG_OVERLAP',
            { entity: meta.className, relation: b.relation },
            `"${a.relation}" ("${a.policy}") and "${b.relation}" ("${b.policy}") reach the same ${b.childMeta.className} rows through the same foreign key, so a row would get whichever policy runs first.`,
            `declare the same policy on both, or a policy on one of them only.`,
          ),
        );
      }
    }
  });
}
