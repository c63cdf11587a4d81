export { DeletionModule } from './deletion.module.js';
export { DeletionService } from './deletion.service.js';
export { Dependent } from './decorators/dependent.decorator.js';
export { definePolicy, type PolicyDefinition, type RelationKeys } from './policies/define-policy.js';
export { POLICY_NAMES, ASYNC_POLICIES, type PolicyName } from './policies/policy-names.js';
export { PolicyRegistry, type EntityPolicy, type RelationPolicy } from './registry/policy-registry.js';
export * from './errors/index.js';
export * from './interfaces/index.js';
