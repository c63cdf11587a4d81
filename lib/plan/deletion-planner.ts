import { MikroORM, ReferenceKind, type EntityManager, type EntityMetadata, type FilterQuery } from '@mikro-orm/core';
import { EntityKeys } from '../sql/entity-keys.js';
import { countPivotRows } from '../sql/relation-statements.js';
import { Inject, Injectable } from '@nestjs/common';
import { RESOLVED_DELETION_OPTIONS } from '../deletion.constants.js';
import type { DeletionBlocker } from '../errors/deletion-blocked.error.js';
import { DeletionTargetNotFoundError } from '../errors/deletion-target-not-found.error.js';
import type { ResolvedDeletionOptions } from '../interfaces/deletion-module-options.interface.js';
import { PolicyRegistry } from '../registry/policy-registry.js';
import { count } from '../sql/execute.js';
import { rowsUnder } from '../sql/rows-under.js';
import { semanticsOf } from '../policies/policy-semantics.js';
import { deletionTree, type DeletionNode } from '../validation/deletion-tree.js';
import { ValidationHoister } from '../validation/validation-hoister.js';
import type { DeletionPlan, PlannedPath } from './deletion-plan.js';

/**
 * Previews a deletion without writing anything: the same relation tree and the same validators as
 * a real deletion, plus a row count per path. One count per path, one query per set-based
 * validator, and instance validators within their budget.
 */
@Injectable()
export class DeletionPlanner {
  constructor(
    @Inject(MikroORM) private readonly orm: MikroORM,
    @Inject(PolicyRegistry) private readonly registry: PolicyRegistry,
    @Inject(ValidationHoister) private readonly hoister: ValidationHoister,
    @Inject(RESOLVED_DELETION_OPTIONS) private readonly options: ResolvedDeletionOptions,
  ) {}

  async plan(meta: EntityMetadata, id: unknown): Promise<DeletionPlan> {
    const em = this.orm.em.fork();
    const root = await em.findOne(meta.class as new () => object, id as FilterQuery<object>);
    if (!root) {
      throw DeletionTargetNotFoundError.create(meta.className, id);
    }
    // A row of a base class may be a subclass's: its own policies and validators apply.
    const rowMeta = em.getMetadata().find(root.constructor) ?? meta;
    const nodes = deletionTree(this.registry, rowMeta, meta.className);
    const verdict = await this.hoister.evaluate(em, { meta: rowMeta, ids: [id], entities: [root] }, nodes);
    const cap = this.options.validation.maxBlockers;
    const blockers: DeletionBlocker[] = [...verdict.blockers];
    let blockedTotal = verdict.total;
    const paths: PlannedPath[] = [];
    for (const node of nodes) {
      const rows = node.hops.length === 0 && !node.owner ? 1 : await this.countRows(em, node, id);
      const found = verdict.byPath.get(node.path) ?? { blockers: [], total: 0 };
      const planned: PlannedPath = {
        path: node.path,
        entity: node.meta.className,
        policy: node.relation?.policy ?? 'root',
        ...this.effectOf(node),
        rows,
        blockers: found.blockers,
        blockedTotal: found.total,
      };
      if (planned.effect === 'refuse' && rows > 0) {
        // Only the direct children of the deleted row can refuse it; deeper `restrict`s refuse their own parent.
        const blocker = { entity: node.meta.className, id: null, path: node.path, reason: `restricted: ${rows} ${node.meta.className} row(s) still reference it` };
        planned.blockers = [blocker];
        planned.blockedTotal = rows;
        if (blockers.length < cap) {
          blockers.push(blocker);
        }
        blockedTotal += rows;
      }
      paths.push(planned);
    }
    paths.push(...(await this.pivotRows(em, rowMeta, meta.className, id, paths[0]!.timing === 'now' && paths[0]!.effect === 'mark' ? 'later' : 'now')));
    return { entity: meta.className, id, allowed: blockedTotal === 0, paths, blockers, blockedTotal };
  }

  /**
   * When and how a path's rows go: a tombstoned row is marked now and deleted later; a
   * `nullifyThenPurge` child is detached now and deleted later.
   */
  private effectOf(node: DeletionNode): Pick<PlannedPath, 'timing' | 'effect' | 'later'> {
    const semantics = node.relation && semanticsOf(node.relation.policy);
    if (semantics?.refuses) {
      return { timing: node.timing, effect: 'refuse' };
    }
    if (semantics?.detaches && semantics.queued) {
      return node.parentTiming === 'now' ? { timing: 'now', effect: 'detach', later: 'delete' } : { timing: 'later', effect: 'delete' };
    }
    if (!node.relation && this.registry.forMeta(node.meta)?.tombstone !== undefined) {
      return { timing: 'now', effect: 'mark', later: 'delete' };
    }
    return { timing: node.timing, effect: node.deleted ? 'delete' : 'detach' };
  }

  /**
   * The pivot rows of the deleted row's many-to-many relations that carry no policy: MikroORM (or
   * the database) removes them with the row, when the row itself goes.
   */
  private async pivotRows(em: EntityManager, meta: EntityMetadata, basePath: string, id: unknown, timing: 'now' | 'later'): Promise<PlannedPath[]> {
    const declared = new Set((this.registry.forMeta(meta)?.relations ?? []).map((r) => r.relation));
    const paths: PlannedPath[] = [];
    let keys: EntityKeys;
    try {
      keys = EntityKeys.of(meta);
    } catch {
      return paths; // a key the codec does not type: an entity without policies, which MikroORM deletes alone
    }
    for (const prop of meta.relations.filter((p) => p.kind === ReferenceKind.MANY_TO_MANY && !declared.has(p.name))) {
      const relation = { entity: meta.className, relation: prop.name, policy: 'restrict', batchSize: 1, kind: 'm:n', parentMeta: meta, childMeta: prop.targetMeta!, childProperty: prop.mappedBy ?? prop.inversedBy } as const;
      const rows = await countPivotRows(em, relation, { sql: keys.composite ? `(${keys.columns.map(() => '?').join(', ')})` : '?', params: keys.bind(id) });
      paths.push({ path: `${basePath}.${prop.name}`, entity: prop.targetMeta!.className, policy: 'none', timing, rows, effect: 'unlink', blockers: [], blockedTotal: 0 });
    }
    return paths;
  }

  /** Rows on a path today (pivot rows for a many-to-many `restrict`). */
  private async countRows(em: EntityManager, node: DeletionNode, id: unknown): Promise<number> {
    if (node.owner) {
      return this.hoister.countRestricted(em, node, [id]);
    }
    const { from, where } = rowsUnder(em, node.meta, node.hops, [id]);
    return count(em, `select count(*) as n from ${from} where ${where.sql}`, where.params);
  }
}


