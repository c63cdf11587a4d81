import { DeletionOrphanSchema } from './deletion-orphan.entity.js';
import { DeletionRequestSchema } from './deletion-request.entity.js';

/**
 * The entities the module keeps its durable state in. Add them to your MikroORM `entities` so that
 * schema generation and migrations create `deletion_request` and `deletion_orphan`.
 *
 * @example
 * MikroOrmModule.forRoot({ entities: [Author, Book, ...DELETION_ENTITIES] })
 */
export const DELETION_ENTITIES = [DeletionRequestSchema, DeletionOrphanSchema] as const;
