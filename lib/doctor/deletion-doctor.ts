import { MikroORM, type EntityMetadata } from '@mikro-orm/core';
import type { QBFilterQuery, SqlEntityManager } from '@mikro-orm/postgresql';
import { Inject, Injectable, Logger, type OnApplicationBootstrap } from '@nestjs/common';
import { RESOLVED_DELETION_OPTIONS } from '../deletion.constants.js';
import type { ResolvedDeletionOptions } from '../interfaces/deletion-module-options.interface.js';
import { PolicyRegistry } from '../registry/policy-registry.js';
import { formatFinding, type DoctorFinding } from './doctor-finding.js';
import { diagnose } from './doctor.rules.js';
import { DeletionDoctorError } from './deletion-doctor.error.js';
import { inspectSchema } from './schema-inspector.js';

/**
 * Compares the declared policies with the database's real schema (DESIGN 6): foreign keys that
 * defeat or block queued policies, NOT NULL columns under nullifying policies, unindexed foreign
 * keys, set-based policies that skip the children's own. Runs once at bootstrap, per the module's
 * `doctor` option, once the schema exists; `DeletionService.doctor()` runs it on demand.
 */
@Injectable()
export class DeletionDoctor implements OnApplicationBootstrap {
  private readonly logger = new Logger(DeletionDoctor.name);

  constructor(
    @Inject(MikroORM) private readonly orm: MikroORM,
    @Inject(PolicyRegistry) private readonly registry: PolicyRegistry,
    @Inject(RESOLVED_DELETION_OPTIONS) private readonly options: ResolvedDeletionOptions,
  ) {}

  /** The findings for the current schema: one catalog query, nothing written. */
  async inspect(): Promise<DoctorFinding[]> {
    const children = this.registry.all().flatMap((policy) => policy.relations.filter((r) => r.kind !== 'm:n').map((r) => r.childMeta));
    if (children.length === 0) {
      return [];
    }
    const schema = await inspectSchema(this.orm.em, children);
    return diagnose(this.registry, schema, deleteHooksOf, (meta) => this.validatorPredicates(meta));
  }

  /** Each set-based validator's `where`, rendered by MikroORM as the SQL an index predicate takes. */
  private validatorPredicates(meta: EntityMetadata): string[] {
    return (this.registry.forMeta(meta)?.validators.sets ?? []).map((set) => {
      // The query builder types its conditions apart from FilterQuery, yet runs them through the same QueryHelper.processWhere().
      const where = set.where as QBFilterQuery<object, 'v'>;
      const sql = (this.orm.em as SqlEntityManager).createQueryBuilder(meta.class as new () => object, 'v').select('*').where(where).getFormattedQuery();
      return sql.replace(/^[\s\S]*? where /i, '').replaceAll('"v".', '');
    });
  }

  /**
   * `error`: error findings stop the boot with a {@link DeletionDoctorError} listing them, and
   * warnings are logged; `warn`: every finding is logged, and so is a failure to inspect the schema;
   * `off`: nothing runs.
   */
  async onApplicationBootstrap(): Promise<void> {
    const mode = this.options.doctor;
    if (mode === 'off') {
      return;
    }
    let findings: DoctorFinding[];
    try {
      findings = await this.inspect();
    } catch (error) {
      if (mode === 'error') {
        throw error;
      }
      this.logger.warn(`Could not compare the deletion policies with the database schema: ${(error as Error).message}`);
      return;
    }
    const errors = findings.filter((finding) => finding.severity === 'error');
    const logged = mode === 'error' ? findings.filter((finding) => finding.severity !== 'error') : findings;
    for (const finding of logged) {
      this.logger.warn(formatFinding(finding));
    }
    if (mode === 'error' && errors.length > 0) {
      throw DeletionDoctorError.create(errors);
    }
  }
}

/** The entity's delete lifecycle hooks, which `deleteAll`/`deleteAllAsync` do not run. */
function deleteHooksOf(meta: EntityMetadata): string[] {
  const name = (hook: unknown) => (typeof hook === 'function' ? hook.name || 'anonymous' : String(hook));
  return [
    ...(meta.hooks.beforeDelete ?? []).map((hook) => `@BeforeDelete ${name(hook)}()`),
    ...(meta.hooks.afterDelete ?? []).map((hook) => `@AfterDelete ${name(hook)}()`),
  ];
}
