import { MikroORM, type EntityManager } from '@mikro-orm/core';
import { Inject, Injectable, Logger } from '@nestjs/common';
import { fieldOf, qualifiedTable } from '../cascade/relation-queries.js';
import { RESOLVED_DELETION_OPTIONS } from '../deletion.constants.js';
import type { ResolvedDeletionOptions } from '../interfaces/deletion-module-options.interface.js';
import { DeletionRequest } from '../outbox/deletion-request.entity.js';
import { RequestWriter } from '../outbox/request-writer.js';
import { PolicyRegistry, type RelationPolicy } from '../registry/policy-registry.js';

/** What one sweep found and filed. */
export interface SweepReport {
  /** Per relation (`Author.books`): parents found missing, and the request filed for them. */
  relations: { relation: string; missingParents: number; requestId?: string }[];
}

/**
 * Finds child rows whose parent no longer exists, for relations under `destroyAsync` or
 * `deleteAllAsync` without tombstone mode (rows inserted during the orphan window, or cascades lost
 * before the module was installed), and files a deletion request for those parents, so the rows go
 * through the relation's own policy, batches, validators and status like any other cascade.
 *
 * It never touches a child whose parent exists, and skips parents an open request already covers.
 */
@Injectable()
export class OrphanSweeper {
  private readonly logger = new Logger(OrphanSweeper.name);

  constructor(
    @Inject(MikroORM) private readonly orm: MikroORM,
    @Inject(PolicyRegistry) private readonly registry: PolicyRegistry,
    @Inject(RequestWriter) private readonly writer: RequestWriter,
    @Inject(RESOLVED_DELETION_OPTIONS) private readonly options: ResolvedDeletionOptions,
  ) {}

  /** The relations the sweeper watches. */
  relations(): RelationPolicy[] {
    return this.registry
      .all()
      .filter((policy) => policy.tombstone === undefined)
      .flatMap((policy) => policy.relations.filter((r) => r.policy === 'destroyAsync' || r.policy === 'deleteAllAsync'));
  }

  async sweep(): Promise<SweepReport> {
    const report: SweepReport = { relations: [] };
    for (const relation of this.relations()) {
      const name = `${relation.entity}.${relation.relation}`;
      const requestId = await this.orm.em.fork().transactional(async (em) => {
        const missing = await this.missingParents(em, relation);
        report.relations.push({ relation: name, missingParents: missing.length });
        return missing.length > 0 ? this.writer.writeSweep(em, relation, missing) : undefined;
      });
      if (requestId) {
        report.relations.at(-1)!.requestId = requestId;
        this.logger.warn(`Sweeper: ${report.relations.at(-1)!.missingParents} missing ${relation.entity} parent(s) left ${relation.childMeta.className} rows behind; filed deletion request ${requestId}.`);
      }
    }
    return report;
  }

  /**
   * One statement: distinct foreign-key values of the child table with no parent row, not listed
   * in an open request that walks the same relation. It reads one snapshot, so a parent deleted by a
   * transaction that commits meanwhile is seen either with its row or with its request.
   */
  private async missingParents(em: EntityManager, relation: RelationPolicy): Promise<unknown[]> {
    const q = (name: string) => em.getPlatform().quoteIdentifier(name);
    const { childMeta, parentMeta } = relation;
    const fk = q(fieldOf(childMeta.properties[relation.childProperty as never]));
    const parentPk = q(fieldOf(parentMeta.properties[parentMeta.primaryKeys[0] as never]));
    const requests = em.getMetadata().get(DeletionRequest);
    const col = (prop: string) => q(fieldOf(requests.properties[prop as never]));
    const sql =
      `select distinct c.${fk} as parent_id from ${qualifiedTable(em, childMeta.tableName, childMeta.schema)} c ` +
      `where c.${fk} is not null ` +
      `and not exists (select 1 from ${qualifiedTable(em, parentMeta.tableName, parentMeta.schema)} p where p.${parentPk} = c.${fk}) ` +
      `and not exists (select 1 from ${qualifiedTable(em, requests.tableName, requests.schema)} r ` +
      `where r.${col('entity')} = ? and r.${col('state')} in ('pending', 'running') and jsonb_exists(r.${col('progress')}, ?) ` +
      `and r.${col('parentIds')} @> jsonb_build_array(c.${fk})) ` +
      `order by 1 limit ?`;
    const rows = await em.getConnection().execute<{ parent_id: unknown }[]>(sql, [relation.entity, relation.relation, this.options.sweeper.batchSize], 'all', em.getTransactionContext());
    return rows.map((row: { parent_id: unknown }) => row.parent_id);
  }
}
