import { MikroORM, type EntityManager } from '@mikro-orm/core';
import { Inject, Injectable, Logger } from '@nestjs/common';
import { semanticsOf } from '../policies/policy-semantics.js';
import { missingParents } from '../sql/request-statements.js';
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
      .relations()
      .filter((relation) => semanticsOf(relation.policy).deletedAfterParent && this.registry.forEntityName(relation.entity)?.tombstone === undefined);
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

  /** Parents gone whose children remain, not walked by an open request (see `missingParents`). */
  private async missingParents(em: EntityManager, relation: RelationPolicy): Promise<unknown[]> {
    const walkers = this.registry
      .all()
      .filter((policy) => policy.relations.includes(relation))
      .map((policy) => policy.meta.className);
    return missingParents(em, relation, walkers, em.getMetadata().get(DeletionRequest), this.options.sweeper.batchSize);
  }
}
