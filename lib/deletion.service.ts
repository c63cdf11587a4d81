import { MikroORM, type EntityClass, type EntityMetadata, type FilterQuery } from '@mikro-orm/core';
import { Inject, Injectable } from '@nestjs/common';
import { DeletionConfigurationError } from './errors/deletion-configuration.error.js';
import { DeletionTargetNotFoundError } from './errors/deletion-target-not-found.error.js';
import type { DeletionReceipt } from './interfaces/deletion-receipt.interface.js';

/**
 * The programmatic entry point: deletes one row through its declared policies, in one transaction.
 *
 * @example
 * const receipt = await deletions.destroy(Author, 42);
 * // { entity: 'Author', id: 42, status: 'completed' }
 */
@Injectable()
export class DeletionService {
  constructor(@Inject(MikroORM) private readonly orm: MikroORM) {}

  /**
   * Loads the row (honouring the application's filters, so a hidden row is "not found"), removes it
   * and flushes in a new transaction; the module's subscriber applies the policies in that flush.
   *
   * @throws DeletionTargetNotFoundError (404) when no such row exists.
   * @throws DeletionRestrictedError (409) when a `restrict` relation still has children.
   */
  async destroy<T extends object>(entity: EntityClass<T>, id: unknown): Promise<DeletionReceipt> {
    const meta = this.metadataOf(entity);
    const pk = meta.primaryKeys[0]!;
    await this.orm.em.fork().transactional(async (em) => {
      const target = await em.findOne(entity, { [pk]: id } as FilterQuery<NoInfer<T>>);
      if (!target) {
        throw DeletionTargetNotFoundError.create(meta.className, id);
      }
      em.remove(target);
    });
    return { entity: meta.className, id, status: 'completed' };
  }

  private metadataOf<T extends object>(entity: EntityClass<T>): EntityMetadata<T> {
    const meta = typeof entity === 'function' ? this.orm.getMetadata().find(entity) : undefined;
    if (!meta || meta.embeddable || meta.virtual) {
      const name = typeof entity === 'function' ? entity.name : String(entity);
      throw DeletionConfigurationError.create(
        'DELETION_UNKNOWN_ENTITY',
        { entity: name },
        `${name} is not an entity known to MikroORM.`,
        `pass an entity class registered in your MikroORM configuration.`,
      );
    }
    return meta;
  }
}
